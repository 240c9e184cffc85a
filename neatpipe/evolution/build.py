"""The builder: an experiment (plain data, :mod:`neatpipe.experiment`) turned into the objects of a run:
its backends behind the completion cache (asked once before any work), the problems with their CPU-time
limits, the penalty, racing, the initial genomes and the evaluator. ``neatpipe evolve`` (and an
experiment in ``mode: evaluate``) build through here, so an experiment means the same run everywhere.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError


class SetupError(NeatpipeError, RuntimeError):
    """The run cannot start: a model is not available, a run directory is not resumable, ..."""


OFFLINE_HINT = (
    "To run without downloads, use an offline experiment: `make evolve EXPERIMENT=experiments/smoke.yaml` "
    "(a tiny model built on the spot) or `make evolve EXPERIMENT=experiments/synthetic.yaml` (the "
    "synthetic coder, labelled synthetic)."
)


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    host = os.environ.get("NEATPIPE_HUB_HOST", "huggingface.co")
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def preflight_models(specs: Mapping[str, Any]) -> None:
    """Fail at once, before any work, when a Hugging Face model is neither on disk nor downloadable."""
    from neatpipe.models.spec import HFSpec

    missing = []
    for name, spec in specs.items():
        if not isinstance(spec, HFSpec):
            continue
        local = Path(spec.model).expanduser()
        if local.exists():
            continue
        from neatpipe.models.hf import cached_snapshot, hub_cache_dir

        if cached_snapshot(spec.model, spec.revision, hub_cache_dir(spec.cache_dir)) is None:
            missing.append(f"{name} ({spec.to_string()})")
    if not missing:
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not _hub_reachable():
        raise SetupError(
            "these models are not on this machine and the Hugging Face hub cannot be reached"
            f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {', '.join(missing)}. Download them on a "
            "machine with internet access (`huggingface-cli download <id>`), or point the experiment's "
            "models at local folders. " + OFFLINE_HINT
        )


def build_models(experiment: Any, runner: Any = None) -> dict[str, Any]:
    """The experiment's backends (behind its completion cache); ``runner`` runs the programs of backends
    that run code (the run's sandbox). Fails at once when a model is missing or a server does not answer."""
    from neatpipe.models import load_backend
    from neatpipe.models.cache import CompletionCache

    specs = experiment.backend_specs()
    for entry in experiment.models:
        kwargs = entry.make_tiny_kwargs
        folder = Path(getattr(entry.spec, "model", ""))
        if kwargs is not None and not (folder / "config.json").exists():
            from neatpipe.models.tiny import make_tiny_model

            make_tiny_model(folder, **kwargs)
    preflight_models(specs)
    b = experiment.backend
    cache = None
    if b.cache is not None and b.cache_mode != "off":
        cache = CompletionCache(None if b.cache == "default" else b.cache, mode=b.cache_mode)
    models: dict[str, Any] = {}
    try:
        for name, spec in specs.items():
            models[name] = load_backend(spec, cache, runner=runner)
            models[name].preflight()  # a server is asked here: an absent one stops the run before any work
    except BaseException:
        close_all(models)
        raise
    return models


def close_all(models: Mapping[str, Any]) -> None:
    for backend in models.values():
        backend.close()


def penalty(experiment: Any) -> Any:
    from neatpipe.evolution.fitness import Penalty

    p = experiment.fitness.penalty
    return Penalty.of(p.kind, p.weight)


def racing(experiment: Any) -> Any:
    from neatpipe.evolution.racing import Racing

    r = experiment.fitness.racing
    if not r.enabled:
        return None
    return Racing(first=r.size, margin=r.margin)


def initial_genomes(experiment: Any) -> list[Any]:
    from neatpipe.genome import load_genome

    return [load_genome(p) for p in experiment.genome.initial if p != "minimal"]


def time_limited(problems: Any, sandbox: Any, state: dict[str, Any]) -> Any:
    """The problems with their CPU-time limits: the ones the run started with (kept in ``run.json``, so a
    resumed run judges programs as before), else derived from the references' cost on this machine
    (``neatpipe.bench.limits``) and kept in ``state``."""
    from dataclasses import replace

    from neatpipe.bench.limits import with_time_limits
    from neatpipe.bench.problem import ProblemSet

    kept = state.get("time_limits")
    if kept is None:
        problems = with_time_limits(problems, sandbox)
        state["time_limits"] = {p.task_id: p.time_limit_s for p in problems}
        return problems
    limited = tuple(replace(p, time_limit_s=float(kept.get(p.task_id, p.time_limit_s))) for p in problems)
    return ProblemSet(problems.benchmark, limited, {**problems.options, "time_limits": "kept in run.json"})


def evaluator(exp: Any, models: Mapping[str, Any], sandbox: Any, store: Any, repeats: int) -> Any:
    """The evaluator an experiment asks for, over its models, a started sandbox and the run's store."""
    from neatpipe.evolution.evaluator import Evaluator

    return Evaluator(
        models,
        sandbox,
        feedback=None if exp.feedback == "genome" else exp.feedback,
        penalty=penalty(exp),
        repeats=repeats,
        seed=exp.seed,
        result_cache=store,
    )
