"""Ray itself: importing it with a clear error when it is missing, the engine's options, and
connecting to a cluster (or starting a Ray instance on this machine)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from neatpipe.errors import NeatpipeError, shown

INSTALL_HINT = "pip install 'neatpipe[ray]'"


class EngineError(NeatpipeError, RuntimeError):
    """The Ray engine cannot do its work: no cluster at the address, every actor of a kind is gone."""


class RayUnavailableError(EngineError):
    """``engine: ray`` without Ray installed."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            f"engine ray needs Ray, which is not installed here: {INSTALL_HINT}"
        ) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How the engine uses Ray (the experiment's ``ray:`` section).

    ``address``: None starts a Ray instance on this machine (with ``num_cpus`` CPUs, None: all); ``auto``
    joins the cluster this machine is a node of; ``host:port`` or ``ray://host:10001`` names a head node.
    ``model_actors`` actors serve each model, each reserving ``num_gpus`` GPUs and ``model_cpus`` CPUs.
    One sandbox actor runs on every node, with ``sandbox_workers`` worker processes (None: one per CPU of
    its node). A dead actor is restarted up to ``max_restarts`` times, its batch sent again each time.
    """

    address: str | None = None
    num_cpus: int | None = None
    model_actors: int = 1
    num_gpus: float = 0.0
    model_cpus: float = 1.0
    sandbox_workers: int | None = None
    max_restarts: int = 3

    def actor_options(self) -> dict[str, Any]:
        """Ray's own fault tolerance: a dead actor is restarted and the calls it had are sent again."""
        return {"max_restarts": self.max_restarts, "max_task_retries": self.max_restarts}


def connect(options: RayOptions) -> bool:
    """Connects this process to Ray as ``options`` say; True when it started Ray (and so should stop it).
    A process already connected (a notebook that called ``ray.init`` itself) stays as it is."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,  # actor logs stay in Ray's session folder, progress lines stay readable
        "logging_level": logging.WARNING,
    }
    if options.address is None:
        kwargs["num_cpus"] = options.num_cpus
    else:
        kwargs["address"] = options.address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = "a Ray instance on this machine" if options.address is None else shown(options.address)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"ray.address: cannot connect to {where}: {first[:300]}") from None
    return True


def alive_nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes (``NodeID``, ``NodeManagerAddress``, ``Resources``), in a stable order."""
    ray = import_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return sorted(nodes, key=lambda n: (n.get("NodeManagerAddress", ""), n["NodeID"]))
