"""The builder: an experiment (plain data, :mod:`neatpipe.experiment`) turned into the objects of a run:
its backends behind the completion cache (asked once before any work), the problems with their CPU-time
limits, the penalty, racing, the initial genomes and the evaluator. ``neatpipe evolve`` (and an
experiment in ``mode: evaluate``) build through here, so an experiment means the same run everywhere.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from neatpipe.errors import NeatpipeError
from neatpipe.experiment import ExperimentError, FieldProblem
from neatpipe.io import FileError, load_yaml, read_text
from neatpipe.seeds import derive_seed


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
        from neatpipe.models.hf import hub_download_command

        raise SetupError(
            "these models are not on this machine and the Hugging Face hub cannot be reached"
            f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {', '.join(missing)}. Download them on a "
            f"machine with internet access (`{hub_download_command()} <id>`), or point the experiment's "
            "models at local folders. " + OFFLINE_HINT
        )


class LocalEngine:
    """``engine: local``: the run's sandbox pool and its models live in this process."""

    name = "local"

    def __init__(self) -> None:
        from neatpipe.sandbox import Sandbox

        self.sandbox = Sandbox()

    def backend(self, spec: Any, runner: Any = None) -> Any:
        from neatpipe.models import load_backend

        return load_backend(spec, None, runner=runner)

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def ray_options(experiment: Any) -> Any:
    """The experiment's ``ray`` section as the engine's options."""
    from dataclasses import asdict

    from neatpipe.distributed.cluster import RayOptions

    return RayOptions(**asdict(experiment.ray))


def engine(experiment: Any, name: str | None = None) -> Any:
    """Where the run's evaluation runs (``name``, else the experiment's ``engine``): a ``LocalEngine``
    or a ``neatpipe.distributed.RayEngine`` (connected, its sandbox actors started). Either has a
    ``sandbox`` with ``run_many`` and makes backends with ``backend(spec, runner)``; close it at the end."""
    chosen = name or experiment.engine
    if chosen == "local":
        return LocalEngine()
    if chosen == "ray":
        from neatpipe.distributed.cluster import import_ray

        import_ray()  # the one-line install hint, before anything starts
        from neatpipe.distributed.engine import RayEngine

        return RayEngine(ray_options(experiment))
    from neatpipe.vocab import ENGINES

    raise SetupError(f"engine must be one of {', '.join(ENGINES)}, got {chosen!r:.40}")


def build_models(experiment: Any, runner: Any = None, engine: Any = None) -> dict[str, Any]:
    """The experiment's backends (behind its completion cache, which stays in this process); ``runner``
    runs the programs of backends that run code (the run's sandbox); ``engine`` (see :func:`engine`) makes
    each backend, by default in this process. Fails at once when a model is missing or a server does not
    answer."""
    from neatpipe.models import load_backend
    from neatpipe.models.cache import CachedBackend, CompletionCache

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
            if engine is None:
                models[name] = load_backend(spec, cache, runner=runner)
            else:
                inner = engine.backend(spec, runner)
                models[name] = CachedBackend(inner, cache) if cache is not None else inner
            models[name].preflight()  # a server is asked here: an absent one stops the run before any work
    except BaseException:
        close_all(models)
        raise
    return models


def close_all(models: Mapping[str, Any]) -> None:
    for backend in models.values():
        backend.close()


def check_genome_files(exp: Any) -> None:
    """The genome files the experiment names (initial genomes, designs) read and checked against it."""
    from neatpipe.experiment import genome_file_problems

    problems = genome_file_problems(exp)
    if problems:
        raise ExperimentError(problems, exp.source)


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


# -- problems, subsets, the neat-python config and the run directory ------------------------------------


def neat_config(exp: Any) -> Any:
    """A ``neat.Config`` with ``PipelineGenome`` and neat-python's default reproduction, species set
    and stagnation, built through ``neatpipe.genome.make_neat_config``."""
    from neatpipe.genome import make_neat_config

    return make_neat_config(exp.genome_settings, exp.neat_sections())


def write_neat_config(exp: Any, path: str | os.PathLike[str]) -> None:
    """Writes the neat-python config file (atomically)."""
    from neatpipe.genome.settings import write_neat_config

    write_neat_config(path, exp.genome_settings, exp.neat_sections())


def run_dir(exp: Any, now: datetime | None = None) -> Path:
    """``output.dir``, or ``<output.root>/<name>-<YYYYmmdd-HHMMSS>`` (relative to the working directory)."""
    if exp.output.dir is not None:
        return Path(exp.output.dir)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path(exp.output.root) / f"{exp.name}-{stamp}"


# -- problems ---------------------------------------------------------------------------------


def load_problems(exp: Any) -> Any:
    """Every problem of the benchmark split (a ``neatpipe.bench.ProblemSet``)."""
    from neatpipe.bench import load_humaneval, load_mbpp

    b = exp.benchmark
    if b.name == "humaneval":
        return load_humaneval(b.path)
    if b.name in ("humaneval+", "mbpp+"):  # the EvalPlus release files: one split, the prompt's examples
        from neatpipe.bench import load_benchmark

        return load_benchmark(b.name, b.path)
    return load_mbpp(b.path, split=b.split, visible=b.visible_tests or "first")


def difficulty_labels(exp: Any) -> dict[str, str] | None:
    """``subset.labels`` read as task id -> label (None without a file or with stratified off)."""
    if exp.subset.labels is None or not exp.subset.stratified:
        return None
    where = exp.subset.labels
    try:
        text = read_text(where)
        data = json.loads(text) if where.endswith(".json") else load_yaml(text)
    except FileError as exc:
        raise ExperimentError([FieldProblem("subset.labels", str(exc))], exp.source) from None
    except (ValueError, yaml.YAMLError) as exc:
        problem = FieldProblem("subset.labels", f"{where}: not valid JSON or YAML: {exc}")
        raise ExperimentError([problem], exp.source) from None
    if not isinstance(data, Mapping):
        raise ExperimentError(
            [FieldProblem("subset.labels", f"{where}: the file must map task ids to labels")], exp.source
        )
    return {str(k): str(v) for k, v in data.items()}


def subset_tasks(exp: Any, problems: Any) -> Any:
    """The problems named in ``subset.tasks`` (None without the field); an id the benchmark split does
    not have is an error naming the experiment, the field and the file."""
    from neatpipe.bench.subsets import SubsetFileError, read_task_ids, select_tasks

    where = exp.subset.tasks
    if where is None:
        return None
    try:
        return select_tasks(problems, read_task_ids(where), where)
    except (SubsetFileError, FileError) as exc:
        raise ExperimentError([FieldProblem("subset.tasks", str(exc))], exp.source) from None


def search_pool(exp: Any, problems: Any) -> Any:
    """The problems of ``subset.tasks``, or all of ``problems`` without the field (``mode: evaluate``)."""
    tasks = subset_tasks(exp, problems)
    return problems if tasks is None else tasks


def split_problems(exp: Any, problems: Any) -> tuple[Any, Any]:
    """``(search_pool, held_out)``: ``validation.size`` problems drawn (stratified) once by the seed and
    kept out of the search; with ``validation.size`` null the held-out set is every problem. With
    ``subset.tasks`` the search pool keeps only the file's problems; the held-out set is drawn from the
    whole benchmark all the same (so runs with and without the file validate on the same problems), and
    a file's problems that were held out are not searched."""
    from neatpipe.bench import subset

    tasks = subset_tasks(exp, problems)
    if exp.validation.size is None:
        return (problems if tasks is None else tasks), problems
    labels = difficulty_labels(exp)
    held = subset(
        problems,
        exp.validation.size,
        seed=derive_seed("neatpipe-validation", exp.subset.seed),
        labels=labels,
    )
    chosen = set(held.task_ids)
    searched = problems if tasks is None else tasks
    pool = searched.select([t for t in searched.task_ids if t not in chosen])
    if not len(pool):
        problem = FieldProblem(
            "subset.tasks",
            f"every problem of {exp.subset.tasks} is among the {len(chosen)} held out for validation; "
            "nothing is left to search (give more task ids or a smaller validation.size)",
        )
        raise ExperimentError([problem], exp.source)
    pool.options.update({"held_out": len(chosen)})
    return pool, held


def subset_schedule(exp: Any, pool: Any) -> Any:
    """The one subset policy (a ``neatpipe.bench.SubsetSchedule``) over ``pool``: ``subset.size``
    problems, the same every generation (fixed) or a new draw each (rotating); all of ``pool`` when
    size is null."""
    from neatpipe.bench.subsets import SubsetSchedule

    s = exp.subset
    return SubsetSchedule(
        pool,
        s.size,
        rotate=s.policy == "rotating",
        seed=int(s.seed if s.seed is not None else exp.seed),
        labels=difficulty_labels(exp) if s.stratified else None,
        stratified=s.stratified,
    )


def search_subset(exp: Any, pool: Any, generation: int = 0) -> Any:
    """The problems that score genomes in ``generation`` (see :meth:`subset_schedule`)."""
    return subset_schedule(exp, pool).for_generation(generation)
