"""What runs inside the actors: plain classes that Ray turns into actors when the engine starts them
(so this module, like the rest of the package, imports without Ray)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from neatpipe.models.base import Backend
from neatpipe.models.spec import ModelSpec
from neatpipe.models.types import ChatRequest, Completion
from neatpipe.sandbox.limits import Isolation, Limits
from neatpipe.sandbox.program import ExecResult, Program

BackendFactory = Callable[[ModelSpec], Backend]


def build_backend(spec: ModelSpec) -> Backend:
    """The real backend of ``spec``, without a cache (the driver keeps the cache). A backend that runs
    programs itself (the synthetic coder) gets a sandbox of its own in the actor."""
    from neatpipe.models.registry import load_backend

    return load_backend(spec, None)


def _is_synthetic(backend: Any) -> bool:
    while backend is not None:
        if getattr(backend, "synthetic", False):
            return True
        backend = getattr(backend, "inner", None)
    return False


class ModelWorker:
    """One model backend in an actor. ``factory`` builds it from the spec (default: the registry's
    ``load_backend``); it is built again when Ray restarts the actor. ``calls`` and ``requests`` count
    what this actor process answered."""

    def __init__(self, spec: ModelSpec, factory: BackendFactory | None = None) -> None:
        self.backend = (factory or build_backend)(spec)
        self.calls = 0
        self.requests = 0

    def info(self) -> dict[str, Any]:
        """What the driver's stand-in shows of the backend: label, kind, identity, synthetic."""
        b = self.backend
        return {
            "label": b.label,
            "kind": b.kind,
            "identity": b.identity(),
            "synthetic": _is_synthetic(b),
        }

    def preflight(self) -> None:
        self.backend.preflight()

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        out = self.backend.generate(requests)
        self.calls += 1
        self.requests += len(requests)
        return out

    def stats(self) -> dict[str, int]:
        return {"pid": os.getpid(), "calls": self.calls, "requests": self.requests}

    def close(self) -> None:
        self.backend.close()


class SandboxWorker:
    """A sandbox pool in an actor: the worker processes of one node."""

    def __init__(self, workers: int | None, limits: Limits | None, isolation: Isolation | None) -> None:
        from neatpipe.sandbox.pool import Sandbox

        self.sandbox = Sandbox(workers, limits, isolation)
        self.batches = 0

    def workers(self) -> int:
        return self.sandbox.workers

    def where(self) -> dict[str, Any]:
        """The node this actor runs on (Ray's node id) and its process id."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def start(self) -> dict[str, Any]:
        """Starts the pool's workers; the isolation they report, as a mapping."""
        self.sandbox.start()
        return self.sandbox.isolation.to_dict()

    def run_many(self, programs: list[Program]) -> list[ExecResult]:
        out = self.sandbox.run_many(programs)
        self.batches += 1
        return out

    def stats(self) -> dict[str, int]:
        return {"pid": os.getpid(), "batches": self.batches, "restarts": self.sandbox.restarts}

    def close(self) -> None:
        self.sandbox.close()
