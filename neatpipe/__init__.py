"""neatpipe: evolve code-generation pipelines of small language models with NEAT, and measure what each
pipeline really does, problem by problem and error by error.

The entry points a script needs are here; each loads its part of the library on first use, so
``import neatpipe`` stays light::

    import neatpipe

    run = neatpipe.evolve("experiments/synthetic.yaml", generations=3)    # an EvolutionRun
    experiment = neatpipe.load_experiment("experiments/synthetic.yaml")
    genome = neatpipe.load_genome("genomes/self-refine.yaml")
    problems = neatpipe.load_benchmark("humaneval")
    with neatpipe.Sandbox() as sandbox:
        ...
    backend = neatpipe.load_backend("synthetic:coder-1.5b")

Every error a user can cause and fix is a :class:`NeatpipeError`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from neatpipe.errors import NeatpipeError

if TYPE_CHECKING:
    from neatpipe.bench import ProblemSet
    from neatpipe.evolution.run import EvolutionRun, Progress
    from neatpipe.experiment import Experiment
    from neatpipe.genome import PipelineGenome
    from neatpipe.models import Backend
    from neatpipe.sandbox import Sandbox

__version__ = "0.1.0"

PathLike = str | os.PathLike[str]


def evolve(
    experiment: Experiment | PathLike | None = None,
    *,
    resume: PathLike | None = None,
    out: PathLike | None = None,
    generations: int | None = None,
    tokens: int | None = None,
    wall_time: float | None = None,
    progress: bool | Progress = True,
    model_set: str | None = None,
    engine: str | None = None,
) -> EvolutionRun:
    """Run an experiment (its YAML file or an :class:`Experiment`), or continue the run in ``resume``.

    ``out`` is the run directory (default: the experiment's ``output``); ``generations``, ``tokens`` and
    ``wall_time`` override its budgets (with ``resume``: continue to the new budget); ``model_set``
    picks one of its ``model_alternatives``; ``engine`` (``local`` or ``ray``) overrides its ``engine``
    (``docs/engines.md``). Returns the :class:`~neatpipe.evolution.run.EvolutionRun`
    (champion, history, validation). Ctrl-C raises ``RunInterrupted`` naming the run directory; a
    resumed run is the same run as one never stopped. See ``docs/evolution.md``.
    """
    from neatpipe.evolution.run import evolve as run

    return run(
        experiment,
        resume=resume,
        out=out,
        generations=generations,
        tokens=tokens,
        wall_time=wall_time,
        progress=progress,
        model_set=model_set,
        engine=engine,
    )


def load_experiment(path: PathLike, models: str | None = None) -> Experiment:
    """The experiment in a YAML file, checked field by field (``ExperimentError`` lists every problem);
    ``models`` picks one of its ``model_alternatives``. See ``docs/experiments.md``."""
    from neatpipe.experiment import load_experiment as load

    return load(path, models=models)


def load_genome(path: PathLike) -> PipelineGenome:
    """A pipeline genome from a YAML, JSON or GraphML file (``GenomeError`` names every problem)."""
    from neatpipe.genome import load_genome as load

    return load(path)


def save_genome(genome: PipelineGenome, path: PathLike) -> None:
    """Write ``genome`` atomically in the format its suffix names (.yaml, .json, .graphml, .dot, .svg, .png)."""
    from neatpipe.genome import save_genome as save

    save(genome, path)


def load_benchmark(name: str, path: PathLike | None = None, **options: Any) -> ProblemSet:
    """``humaneval`` (bundled) or ``mbpp`` (sanitized; options ``split``, ``visible``, ``download``)."""
    from neatpipe.bench import load_benchmark as load

    return load(name, path, **options)


def load_backend(spec: Any, cache: Any = None) -> Backend:
    """The model backend for a spec (``hf:...``, ``ollama:...``, ``openai:...``, ``synthetic:...``), behind
    the completion cache when ``cache`` is given. See ``docs/backends.md``."""
    from neatpipe.models import load_backend as load

    return load(spec, cache)


def __getattr__(name: str) -> Any:
    if name == "Sandbox":  # a class: imported on first use
        from neatpipe.sandbox import Sandbox

        return Sandbox
    raise AttributeError(f"module 'neatpipe' has no attribute {name!r}")


__all__ = [
    "NeatpipeError",
    "Sandbox",
    "evolve",
    "load_backend",
    "load_benchmark",
    "load_experiment",
    "load_genome",
    "save_genome",
]
