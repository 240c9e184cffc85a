"""The evolution loop: neat-python's ``Population`` scoring genomes through the evaluator, with a run
directory that survives crashes.

One generation is: pick the generation's problem subset, evaluate the population (identical genomes
and results already paid for are reused), log the generation and its best genome, let neat-python
reproduce and speciate, then checkpoint the next population atomically. A run stopped at any point
(Ctrl-C, a killed process, a budget) resumes from its last checkpoint, and the evaluations it had
already paid for in the interrupted generation come back from ``evaluations.sqlite`` instead of being
run again. With the same seed and the same completion cache, a run is the same run.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from neatpipe.errors import NeatpipeError
from neatpipe.evolve.checkpoint import capture, load_checkpoint, save_checkpoint
from neatpipe.evolve.evaluator import NeatFitness
from neatpipe.evolve.runlog import (
    CHECKPOINT_FILE,
    GENERATIONS_FILE,
    GENOMES_DIR,
    SUMMARY_FILE,
    TRAJECTORIES_DIR,
    VALIDATION_FILE,
    GenerationLog,
    append_line,
    generation_stem,
    read_history,
    write_history,
    write_json,
    write_jsonl_gz,
)


class BudgetExhausted(Exception):
    """Raised between generations when a wall-time or token budget is spent."""


@dataclass(frozen=True)
class Budgets:
    generations: int
    wall_time_s: float | None = None
    tokens: int | None = None


@dataclass
class EvolutionRun:
    """What a finished (or stopped) run left: read it back with :meth:`load`."""

    run_dir: Path
    history: list[GenerationLog]
    champion: Any  # PipelineGenome
    champion_fitness: float | None
    validation: list[dict[str, Any]] = field(default_factory=list)
    status: str = "finished"
    synthetic: bool = False
    designs: list[dict[str, Any]] = field(default_factory=list)  # mode evaluate: one entry per design

    @property
    def statistics(self) -> dict[str, Any]:
        """Per-generation best and mean fitness and species counts, as lists (for plots and scripts)."""
        return {
            "generation": [r.generation for r in self.history],
            "best_fitness": [r.best_fitness for r in self.history],
            "mean_fitness": [r.mean_fitness for r in self.history],
            "sd_fitness": [r.sd_fitness for r in self.history],
            "species": [r.species for r in self.history],
            "tokens": [r.tokens for r in self.history],
        }

    @classmethod
    def load(cls, run_dir: str | Path) -> EvolutionRun:
        from neatpipe.evolve.runlog import read_json
        from neatpipe.genome import load_genome

        root = Path(run_dir)
        summary = read_json(root / SUMMARY_FILE) if (root / SUMMARY_FILE).exists() else {}
        champion = load_genome(root / "champion.yaml") if (root / "champion.yaml").exists() else None
        validation = read_json(root / VALIDATION_FILE) if (root / VALIDATION_FILE).exists() else []
        history = read_history(root)
        designs_file = root / "evaluation.json"
        designs = read_json(designs_file).get("evaluations", []) if designs_file.exists() else []
        return cls(
            root,
            history,
            champion,
            (summary.get("champion") or {}).get("fitness"),
            validation,
            summary.get("status", "interrupted"),
            bool(summary.get("synthetic")) or any(r.synthetic for r in history),
            designs,
        )


class Progress:
    """A line per generation, and a bar per generation's evaluations when the stream is a terminal."""

    def __init__(self, stream: TextIO | None = sys.stderr, total_generations: int | None = None) -> None:
        self.stream = stream
        self.total = total_generations
        self.bar = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def genome_done(self, generation: int, done: int, total: int) -> None:
        if not self.bar or self.stream is None:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        self.stream.write(
            f"\rgen {generation}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} genomes"
        )
        self.stream.flush()

    def generation_done(self, record: GenerationLog, started: float, done_generations: int) -> None:
        if self.stream is None:
            return
        elapsed = record.elapsed_s
        left = ""
        if self.total and done_generations:
            per = (time.monotonic() - started) / done_generations
            left = f", ~{per * max(self.total - record.generation - 1, 0):.0f} s left"
        if self.bar:
            self.stream.write("\r" + " " * 70 + "\r")
        tag = " [synthetic]" if record.synthetic else ""
        self.stream.write(
            f"gen {record.generation:>3}: best {record.best_fitness:.3f} (pass {record.best_pass_rate:.3f})"
            f"  mean {record.mean_fitness:.3f} ± {record.sd_fitness:.3f}  species {record.species}"
            f"  tokens {record.tokens:,}  cache {record.cache_hit_rate:.0%}"
            f"  paid/reused {record.evaluations_paid}/{record.evaluations_reused}"
            f"  {elapsed:.0f} s{left}{tag}\n"
        )
        self.stream.flush()


def _save_genome_files(genome: Any, stem: Path, description: str) -> None:
    from neatpipe.genome import save_genome

    stem.parent.mkdir(parents=True, exist_ok=True)
    copy = genome.copy(key=genome.key)
    copy.fitness = genome.fitness
    copy.description = description
    for suffix in (".yaml", ".graphml", ".svg"):
        save_genome(copy, stem.with_suffix(suffix))


def _summary_line(genome: Any) -> str:
    """One line: the nodes in topological order with their models, e.g.
    ``generator(coder-1.5b) -> executor -> refiner(coder-3b, x3, early stop)``."""
    from neatpipe.genome.structure import topological_order

    parts = []
    for key in topological_order(genome.nodes, genome.connections):
        g = genome.nodes[key]
        bits = [g.model] if g.model else []
        if g.iterations is not None:
            bits.append(f"x{g.iterations}" + (", early stop" if g.early_stop else ""))
        parts.append(f"{g.role.value}({', '.join(bits)})" if bits else g.role.value)
    return " -> ".join(parts)


def run_evolution(
    *,
    config: Any,
    evaluator: Any,
    run_dir: Path,
    subset: Callable[[int], Sequence[Any]],
    budgets: Budgets,
    held_out: Sequence[Any] = (),
    validate_top: int = 1,
    validate_repeats: int = 5,
    racing: Any = None,
    seed: int | None = 0,
    initial_genomes: Sequence[Any] = (),
    progress: Progress | None = None,
    meta: Mapping[str, Any] | None = None,
    baselines: Sequence[Any] = (),
    on_generation_done: Callable[[GenerationLog], None] | None = None,
) -> EvolutionRun:
    """Run (or continue) an evolution in ``run_dir`` until ``budgets`` are spent.

    ``subset(generation)`` gives the problems a generation is scored on. A checkpoint in ``run_dir``
    is continued; otherwise a new population is made from ``config`` (and ``initial_genomes``, which
    replace the first members of the first generation). ``held_out`` problems validate the best
    ``validate_top`` genomes with ``validate_repeats`` repeats at the end, and the ``baselines``
    (:class:`~neatpipe.evolve.designs.Design`) next to them. ``on_generation_done(log)`` is called
    after each generation is logged and checkpointed.
    """
    import neat

    run_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or Progress(None)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    meta = dict(meta or {})
    history = read_history(run_dir)
    if checkpoint_path.exists():
        population = load_checkpoint(checkpoint_path).restore(config)
        history = [r for r in history if r.generation < population.generation]
        write_history(run_dir / GENERATIONS_FILE, history)  # drop a generation logged after the checkpoint
    else:
        population = neat.Population(config, seed=seed)
        _seed_population(population, config, initial_genomes)
        history = []
        write_history(run_dir / GENERATIONS_FILE, history)
    offset = history[-1].elapsed_s if history else 0.0
    started = time.monotonic()
    done_here = 0
    status = "finished"
    tokens_spent = sum(r.tokens for r in history)
    by_hash: dict[str, Any] = {}  # the search evaluation of every distinct genome scored in this session

    def on_generation(record: Any, result: Mapping[Any, Any]) -> None:
        generation = record.generation
        genomes = list(population.population.items())
        for ev in result.values():
            if ev.genome not in by_hash or ev.fitness > by_hash[ev.genome].fitness:
                by_hash[ev.genome] = ev
        log = _record(
            generation,
            genomes,
            result,
            population,
            record.problems,
            paid=record.problem_runs,
            reused=record.problem_reuses,
            elapsed=offset + time.monotonic() - started,
        )
        best = population.population[record.best_key]
        stem = run_dir / GENOMES_DIR / generation_stem(generation)
        _save_genome_files(best, stem, f"best of generation {generation}: fitness {best.fitness:.4f}")
        if runs:
            write_jsonl_gz(
                run_dir / TRAJECTORIES_DIR / f"{generation_stem(generation)}.jsonl.gz",
                (t.to_dict() for run in runs for t in run.trajectories),
            )
            runs.clear()
        append_line(run_dir / GENERATIONS_FILE, log.to_dict())
        history.append(log)
        nonlocal tokens_spent
        tokens_spent += log.tokens

    fitness = NeatFitness(
        evaluator,
        subset,
        racing=racing,
        start_generation=population.generation,
        on_generation=on_generation,
        progress=progress.genome_done,
    )
    try:
        with evaluator.collecting_runs() as runs:
            while population.generation < budgets.generations:
                if (
                    budgets.wall_time_s is not None
                    and offset + time.monotonic() - started >= budgets.wall_time_s
                ):
                    status = "stopped: wall-time budget spent"
                    break
                if budgets.tokens is not None and tokens_spent >= budgets.tokens:
                    status = "stopped: token budget spent"
                    break
                population.run(fitness, 1)
                done_here += 1
                save_checkpoint(checkpoint_path, capture(population, config))
                if on_generation_done is not None:
                    on_generation_done(history[-1])
                progress.generation_done(history[-1], started, done_here)
    except KeyboardInterrupt:
        status = "interrupted"
        _write_summary(run_dir, history, population, status, meta, evaluator)
        raise

    champions = _champions(population, history, validate_top)
    for g in champions:  # an elite re-scored on a later subset: its fitness is the one it was chosen with
        best = by_hash.get(g.behaviour_hash())
        if best is not None:
            g.fitness = float(best.fitness)
    validation: list[dict[str, Any]] = []
    if held_out and champions:
        validation = _validate(evaluator, champions, held_out, validate_repeats, run_dir, by_hash)
    if held_out and baselines:
        validation += _validate_baselines(evaluator, baselines, held_out, validate_repeats)
        write_json(run_dir / VALIDATION_FILE, validation)
    champion = champions[0] if champions else None
    if champion is not None:
        _save_genome_files(champion, run_dir / "champion", f"champion: search fitness {champion.fitness:.4f}")
    _write_summary(run_dir, history, population, status, meta, evaluator, champion, validation)
    return EvolutionRun(
        run_dir,
        history,
        champion,
        None if champion is None else champion.fitness,
        validation,
        status,
        any(r.synthetic for r in history),
    )


def _seed_population(population: Any, config: Any, initial: Sequence[Any]) -> None:
    """Put renumbered copies of ``initial`` genomes in place of the first members, then re-speciate."""
    if not initial:
        return
    keys = sorted(population.population)
    for key, genome in zip(keys, initial, strict=False):
        population.population[key] = genome.renumbered(config.genome_config, key=key)
    population.species = config.species_set_type(config.species_set_config, population.reporters)
    population.species.speciate(config, population.population, population.generation)


def _record(
    generation: int,
    genomes: list[tuple[int, Any]],
    evaluations: Mapping[Any, Any],
    population: Any,
    problems: Sequence[str],
    *,
    paid: int,
    reused: int,
    elapsed: float,
) -> GenerationLog:
    fits = [float(g.fitness) for _, g in genomes]
    best_key, best = max(genomes, key=lambda kg: kg[1].fitness)
    ev = evaluations[best_key]
    unique = {evaluations[k].genome: evaluations[k] for k, _ in genomes}.values()
    sizes = sorted((len(s.members) for s in population.species.species.values()), reverse=True)
    return GenerationLog(
        generation=generation,
        best_fitness=float(best.fitness),
        mean_fitness=statistics.fmean(fits),
        sd_fitness=statistics.stdev(fits) if len(fits) > 1 else 0.0,
        best_pass_rate=float(ev.mean),
        best_genome=best.behaviour_hash(),
        best_summary=_summary_line(best),
        species=len(population.species.species),
        species_sizes=sizes,
        mean_nodes=statistics.fmean(len(g.nodes) for _, g in genomes),
        best_nodes=len(best.nodes),
        best_model_calls=int(best.complexity().model_calls),
        problems=list(problems),
        evaluations_paid=paid,
        evaluations_reused=reused,
        prompt_tokens=sum(e.prompt_tokens for e in unique if e.new_evaluations),
        completion_tokens=sum(e.completion_tokens for e in unique if e.new_evaluations),
        model_calls=sum(e.model_calls for e in unique if e.new_evaluations),
        cache_hits=sum(e.cache_hits for e in unique if e.new_evaluations),
        elapsed_s=elapsed,
        synthetic=any(e.synthetic for e in unique),
    )


def _champions(population: Any, history: list[GenerationLog], top: int) -> list[Any]:
    """The best ``top`` distinct genomes: the best ever seen first, then the last population's best."""
    seen: set[str] = set()
    out = []
    candidates = [population.best_genome] if population.best_genome is not None else []
    candidates += sorted(
        (g for g in population.population.values() if g.fitness is not None),
        key=lambda g: g.fitness,
        reverse=True,
    )
    for g in candidates:
        if g is None or g.fitness is None or not math.isfinite(g.fitness):
            continue
        h = g.behaviour_hash()
        if h not in seen:
            seen.add(h)
            out.append(g)
        if len(out) >= top:
            break
    return out


def _validate(
    evaluator: Any,
    champions: list[Any],
    held_out: Sequence[Any],
    repeats: int,
    run_dir: Path,
    search: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    known = {g.key: search[g.behaviour_hash()] for g in champions if search and g.behaviour_hash() in search}
    with evaluator.collecting_runs() as runs:
        results = evaluator.validate_champions(
            [(g.key, g) for g in champions], held_out, repeats, search=known
        )
    if runs:
        champion_hash = champions[0].behaviour_hash()
        write_jsonl_gz(
            run_dir / TRAJECTORIES_DIR / "validation.jsonl.gz",
            (t.to_dict() for run in runs for t in run.trajectories if t.genome == champion_hash),
        )
    rows = []
    for i, r in enumerate(results):
        v = r.validated
        rows.append(
            {
                "label": f"champion ({r.label})" if i == 0 else r.label,
                "hash": r.genome,
                "search_fitness": r.search_fitness,
                "search_pass_rate": r.search_pass_rate,
                "mean": v.mean,
                "sd": v.sd or 0.0,
                "pass_rates": list(v.pass_rates),
                "repeats": v.repeats,
                "problems": len(v.problems),
                "validated_fitness": v.fitness,
                "inflation": r.inflation,
                "synthetic": v.synthetic,
                "feedback": v.feedback,
            }
        )
    write_json(run_dir / VALIDATION_FILE, rows)
    return rows


def _validate_baselines(
    evaluator: Any, baselines: Sequence[Any], held_out: Sequence[Any], repeats: int
) -> list[dict[str, Any]]:
    """Fixed designs scored on the same held-out problems as the champions (no search fitness)."""
    from neatpipe.evolve.designs import evaluate_designs

    rows = []
    for r in evaluate_designs(evaluator, baselines, list(held_out), repeats=repeats):
        v = r.evaluation
        rows.append(
            {
                "label": f"baseline: {r.design.label}",
                "hash": v.genome,
                "search_fitness": None,
                "search_pass_rate": None,
                "mean": v.mean,
                "sd": v.sd or 0.0,
                "pass_rates": list(v.pass_rates),
                "repeats": v.repeats,
                "problems": len(v.problems),
                "validated_fitness": v.fitness,
                "inflation": None,
                "synthetic": v.synthetic,
                "feedback": v.feedback,
                "baseline": True,
            }
        )
    return rows


def _write_summary(
    run_dir: Path,
    history: list[GenerationLog],
    population: Any,
    status: str,
    meta: Mapping[str, Any],
    evaluator: Any,
    champion: Any = None,
    validation: list[dict[str, Any]] | None = None,
) -> None:
    summary: dict[str, Any] = dict(meta)
    summary.update(
        {
            "status": status,
            "generations": len(history),
            "next_generation": population.generation,
            "feedback": evaluator.feedback_source,
            "synthetic": any(r.synthetic for r in history),
            "tokens": sum(r.tokens for r in history),
            "evaluations_paid": sum(r.evaluations_paid for r in history),
            "evaluations_reused": sum(r.evaluations_reused for r in history),
        }
    )
    if champion is not None:
        summary["champion"] = {
            "hash": champion.behaviour_hash(),
            "fitness": champion.fitness,
            "summary": _summary_line(champion),
            "file": "champion.yaml",
        }
    if validation:
        summary["validation"] = validation
    write_json(run_dir / SUMMARY_FILE, summary)


# -----------------------------------------------------------------------------------------------------
# from an experiment file


class SetupError(NeatpipeError, RuntimeError):
    """The run cannot start: a model is not available, a run directory is not resumable, ..."""


OFFLINE_HINT = (
    "To run without downloads, use an offline experiment: `make evolve EXPERIMENT=experiments/smoke.yaml` "
    "(a tiny model built on the spot) or `make evolve EXPERIMENT=experiments/synthetic.yaml` (the "
    "synthetic coder, labelled synthetic)."
)


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    import socket

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


def _build_models(experiment: Any) -> dict[str, Any]:
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
    return {name: load_backend(spec, cache) for name, spec in specs.items()}


def _penalty(experiment: Any) -> Any:
    from neatpipe.evolve.fitness import Penalty

    p = experiment.fitness.penalty
    return Penalty.of(p.kind, p.weight)


def _racing(experiment: Any) -> Any:
    from neatpipe.evolve.evaluator import Racing

    r = experiment.fitness.racing
    if not r.enabled:
        return None
    return Racing(first=r.size, margin=r.margin)


def _initial_genomes(experiment: Any) -> list[Any]:
    from neatpipe.genome import load_genome

    return [load_genome(p) for p in experiment.genome.initial if p != "minimal"]


class _SpeciesTarget:
    """Moves the compatibility threshold each generation toward a target number of species."""

    def __init__(self, config: Any, target: int | None, step: float) -> None:
        self.config, self.target, self.step = config, target, step

    def adjust(self, species: int) -> None:
        if self.target is None:
            return
        sc = self.config.species_set_config
        if species < self.target:
            sc.compatibility_threshold = max(self.step, sc.compatibility_threshold - self.step)
        elif species > self.target:
            sc.compatibility_threshold += self.step


def evolve(
    experiment: Any = None,
    *,
    resume: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    generations: int | None = None,
    progress: bool | Progress = True,
    model_set: str | None = None,
) -> EvolutionRun:
    """Run an experiment (an ``Experiment``, or the path of its YAML file), or continue ``resume``.

    ``model_set`` picks one of the experiment's ``model_alternatives`` (e.g. ``ollama``). An experiment
    with ``mode: evaluate`` scores its fixed designs instead of evolving (``EvolutionRun.designs``).

    Returns the :class:`EvolutionRun` with the champion, the history and the validation. The run
    directory is the experiment's ``output`` (or ``out``); ``resume`` reads the resolved experiment kept
    there, so a resumed run uses the settings it started with.
    """
    from neatpipe.evolve.runlog import EXPERIMENT_FILE, NEAT_CONFIG_FILE
    from neatpipe.experiment import Experiment, load_experiment

    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / EXPERIMENT_FILE).exists():
            raise SetupError(f"{run_dir}: not a run directory (no {EXPERIMENT_FILE}); nothing to resume")
        exp = load_experiment(run_dir / EXPERIMENT_FILE)
    else:
        if experiment is None:
            raise SetupError("give an experiment or a run directory to resume")
        if isinstance(experiment, Experiment):
            exp = experiment.using(model_set) if model_set else experiment
        else:
            exp = load_experiment(experiment, models=model_set)
        run_dir = Path(out) if out is not None else exp.run_dir()
        if (run_dir / CHECKPOINT_FILE).exists() or (run_dir / SUMMARY_FILE).exists():
            raise SetupError(f"{run_dir} already holds a run; continue it with --resume {run_dir}")
    evolve.last_run_dir = run_dir  # type: ignore[attr-defined]
    models = _build_models(exp)  # fails fast when a model is missing, before the run directory exists
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume is None:
            exp.write(run_dir / EXPERIMENT_FILE)
            if exp.mode == "evolve":
                exp.write_neat_config(run_dir / NEAT_CONFIG_FILE)
        if exp.mode == "evaluate":
            return _evaluate_experiment(
                exp, models, run_dir, reporter_stream=sys.stderr if progress else None
            )
        return _evolve_experiment(exp, models, run_dir, generations, progress)
    finally:
        for backend in models.values():
            backend.close()


def _evaluator(exp: Any, models: Mapping[str, Any], sandbox: Any, store: Any, repeats: int) -> Any:
    """The evaluator an experiment asks for, over its models, a started sandbox and the run's store."""
    from neatpipe.evolve.evaluator import Evaluator

    return Evaluator(
        models,
        sandbox,
        feedback=None if exp.feedback == "genome" else exp.feedback,
        penalty=_penalty(exp),
        repeats=repeats,
        seed=exp.seed,
        result_cache=store,
    )


def _evolve_experiment(
    exp: Any, models: Mapping[str, Any], run_dir: Path, generations: int | None, progress: bool | Progress
) -> EvolutionRun:
    from neatpipe.evolve.designs import experiment_designs
    from neatpipe.evolve.evaluator import ResultStore
    from neatpipe.evolve.runlog import EVALUATIONS_FILE
    from neatpipe.sandbox import Sandbox

    config = exp.neat_config()
    pool, held_out = exp.split_problems(exp.load_problems())
    budgets = Budgets(generations or exp.budget.generations, exp.budget.wall_time, exp.budget.tokens)
    reporter = progress if isinstance(progress, Progress) else Progress(sys.stderr if progress else None,
                                                                        budgets.generations)  # fmt: skip
    species_target = _SpeciesTarget(config, exp.neat.target_species, exp.neat.threshold_step)
    for record in read_history(run_dir):  # a resumed run replays the threshold's walk
        species_target.adjust(record.species)
    meta = {
        "experiment": exp.name,
        "description": exp.description,
        "benchmark": exp.benchmark.name,
        "search_pool": len(pool),
        "held_out": len(held_out),
        "seed": exp.seed,
        "models": {m.name: m.spec.to_string() for m in exp.models},
    }
    with Sandbox() as sandbox, ResultStore(run_dir / EVALUATIONS_FILE) as store:
        return run_evolution(
            config=config,
            evaluator=_evaluator(exp, models, sandbox, store, exp.fitness.repeats),
            run_dir=run_dir,
            subset=lambda generation: list(exp.search_subset(pool, generation)),
            budgets=budgets,
            held_out=list(held_out) if exp.validation.champions else [],
            validate_top=max(exp.validation.champions, 1),
            validate_repeats=exp.validation.repeats,
            racing=_racing(exp),
            seed=exp.seed,
            initial_genomes=_initial_genomes(exp),
            progress=reporter,
            meta=meta,
            baselines=experiment_designs(exp) if exp.validation.champions else [],
            on_generation_done=lambda log: species_target.adjust(log.species),
        )


def _evaluate_experiment(
    exp: Any, models: Mapping[str, Any], run_dir: Path, reporter_stream: Any
) -> EvolutionRun:
    """``mode: evaluate``: score the experiment's fixed designs with repeats; results that an interrupted
    session already paid for come back from the run's result store."""
    from neatpipe.evolve.designs import (
        designs_report,
        evaluate_designs,
        experiment_designs,
        render_designs,
        write_design_files,
    )
    from neatpipe.evolve.evaluator import ResultStore
    from neatpipe.evolve.runlog import EVALUATIONS_FILE
    from neatpipe.sandbox import Sandbox

    problems = list(exp.search_subset(exp.load_problems(), 0))
    designs = experiment_designs(exp)
    with Sandbox() as sandbox, ResultStore(run_dir / EVALUATIONS_FILE) as store:
        evaluator = _evaluator(exp, models, sandbox, store, exp.evaluate.repeats)
        results = evaluate_designs(evaluator, designs, problems, seed=exp.seed)
    report = designs_report(results, exp.benchmark.name, len(problems))
    write_design_files(run_dir, results, report)
    if reporter_stream is not None:
        reporter_stream.write(render_designs(results, exp.benchmark.name, len(problems)) + "\n")
    summary = {
        "experiment": exp.name,
        "description": exp.description,
        "mode": "evaluate",
        "status": "finished",
        "benchmark": exp.benchmark.name,
        "problems": len(problems),
        "repeats": exp.evaluate.repeats,
        "feedback": results[0].evaluation.feedback if results else exp.feedback,
        "synthetic": any(r.evaluation.synthetic for r in results),
        "models": {m.name: m.spec.to_string() for m in exp.models},
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    return EvolutionRun(
        run_dir, [], None, None, [], "finished", summary["synthetic"], designs=report["evaluations"]
    )
