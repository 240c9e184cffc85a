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
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from neatpipe.evolution import build
from neatpipe.evolution.build import SetupError
from neatpipe.evolution.checkpoint import (
    load_checkpoint,
)
from neatpipe.evolution.neat_fitness import NeatFitness
from neatpipe.evolution.reporters import (
    Checkpointer,
    Progress,
    RunRecorder,
    SpeciesTarget,
    clean_partial_trajectories,
    save_genome_files,
    summary_line,
)
from neatpipe.evolution.runlog import (
    GENERATIONS_FILE,
    RUN_STATE_FILE,
    SUMMARY_FILE,
    TRAJECTORIES_DIR,
    VALIDATION_FILE,
    GenerationLog,
    RunDirError,
    file_sha256,
    read_history,
    read_run_state,
    write_history,
    write_json,
    write_jsonl_gz,
    write_run_state,
)


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
    def champion_validation(self) -> dict[str, Any] | None:
        """The champion's row of :attr:`validation` (None when the run was not validated)."""
        return next((v for v in self.validation if v.get("champion")), None)

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
        from neatpipe.evolution.runlog import read_json
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


def run_evolution(
    *,
    config: Any,
    evaluator: Any,
    run_dir: Path,
    subset: Any,
    budgets: Budgets,
    held_out: Sequence[Any] = (),
    validate_top: int = 1,
    validate_repeats: int = 5,
    validate_temperature: float | None = None,
    racing: Any = None,
    seed: int | None = 0,
    initial_genomes: Sequence[Any] = (),
    progress: Progress | None = None,
    meta: Mapping[str, Any] | None = None,
    baselines: Sequence[Any] = (),
    reporters: Sequence[Any] = (),
) -> EvolutionRun:
    """Run (or continue) an evolution in ``run_dir`` until ``budgets`` are spent.

    ``subset`` gives the problems a generation is scored on: a ``neatpipe.bench.SubsetSchedule`` or a
    function of the generation. The checkpoint named in ``run_dir/run.json`` is continued; otherwise a
    new population is made from ``config`` (and ``initial_genomes``, which replace the first members of
    the first generation). The per-generation work is done by neat-python reporters
    (:mod:`neatpipe.evolution.reporters`): the run log, then ``reporters`` (e.g. :class:`SpeciesTarget`),
    then the checkpoint, so what they change is checkpointed, then ``progress``.

    At the end the best ``validate_top`` distinct genomes by search fitness over *every* generation (kept
    in the evaluator's result store, so a resumed run chooses what the uninterrupted run chose) are
    re-scored on ``held_out`` with ``validate_repeats`` repeats, with the ``baselines``
    (:class:`~neatpipe.evolution.designs.Design`) next to them; the champion is the best validated of them.
    With ``validate_temperature`` every model node of champions and baselines samples at that temperature
    in the validation (0: greedy) instead of the genome's own; the champion file keeps the evolved ones.
    """
    import neat

    from neatpipe.evolution.store import ResultStore

    run_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or Progress(None)
    progress.attach(run_dir)
    meta = dict(meta or {})
    state = read_run_state(run_dir) if (run_dir / RUN_STATE_FILE).exists() else {}
    store = evaluator.store if evaluator.store is not None else ResultStore()
    pointer = state.get("checkpoint")
    if pointer:
        population = load_checkpoint(run_dir / pointer["file"], pointer["sha256"]).restore(config)
        history = [r for r in read_history(run_dir) if r.generation < population.generation]
    else:
        population = neat.Population(config, seed=seed)
        _seed_population(population, config, initial_genomes)
        history = []
    if population.generation > 0 and not any(
        r.generation == population.generation - 1 for r in store.searched()
    ):
        raise RunDirError(
            f"{store.path or 'the result store'}: holds no search scores of generation "
            f"{population.generation - 1}, which the checkpoint follows; was the file replaced? Put back the "
            "run's own evaluations.sqlite"
        )
    write_history(run_dir / GENERATIONS_FILE, history)  # drops a generation logged after the checkpoint
    store.forget_search_from(population.generation)  # and its search scores: it is scored again
    offset = history[-1].elapsed_s if history else 0.0
    started = time.monotonic()
    fitness = NeatFitness(
        evaluator,
        subset,
        racing=racing,
        start_generation=population.generation,
        progress=progress.genome_done,
    )
    recorder = RunRecorder(run_dir, store, fitness, history, lambda: offset + time.monotonic() - started)
    for reporter in (recorder, *reporters, Checkpointer(run_dir, population), progress):
        population.add_reporter(reporter)
    progress.watch(history)
    status = "finished"
    clean_partial_trajectories(run_dir, population.generation)
    try:
        with evaluator.observing_runs(recorder.keep_trajectories):
            while population.generation < budgets.generations:
                if (
                    budgets.wall_time_s is not None
                    and offset + time.monotonic() - started >= budgets.wall_time_s
                ):
                    status = "stopped: wall-time budget spent"
                    break
                if budgets.tokens is not None and sum(r.tokens for r in history) >= budgets.tokens:
                    status = "stopped: token budget spent"
                    break
                generation = population.generation
                population.run(fitness, 1)
                if population.generation == generation:  # neat-python stopped at the fitness threshold
                    status = "stopped: fitness threshold reached"
                    break
    except KeyboardInterrupt:
        status = "interrupted"
        champion = _write_champion(run_dir, _candidates(store, 1), [])
        _write_summary(run_dir, history, population, status, meta, evaluator, champion)
        progress.finished(status)
        raise

    candidates = _candidates(store, validate_top)
    validation: list[dict[str, Any]] = []
    if held_out and (candidates or baselines):
        validation = _validate_all(
            evaluator,
            candidates,
            baselines,
            held_out,
            validate_repeats,
            run_dir,
            progress,
            validate_temperature,
        )
    if validation:
        write_json(run_dir / VALIDATION_FILE, validation)
    champion = _write_champion(run_dir, candidates, validation)
    _write_summary(run_dir, history, population, status, meta, evaluator, champion, validation)
    progress.finished(status)
    return EvolutionRun(
        run_dir,
        history,
        champion,
        None if champion is None else champion.fitness,
        validation,
        status,
        any(r.synthetic for r in history),
    )


def _candidates(store: Any, top: int) -> list[tuple[Any, Any]]:
    """``(genome, search record)`` of the ``top`` best distinct genomes ever scored in the search,
    rebuilt from the result store; each genome's ``fitness`` is the search fitness it was chosen with."""
    from neatpipe.genome.fileio import genome_from_json

    out = []
    for record in store.best_searched(max(top, 1)):
        genome = genome_from_json(record.data, source=f"search record of genome {record.genome}").genome
        genome.fitness = record.fitness
        out.append((genome, record))
    return out


def _write_champion(
    run_dir: Path, candidates: list[tuple[Any, Any]], validation: list[dict[str, Any]]
) -> Any:
    """The champion, with its files written: the best validated of ``candidates`` when they were validated,
    else the best by search fitness (a run interrupted before its validation)."""
    if not candidates:
        return None
    champion = candidates[0][0]
    row = next((v for v in validation if v.get("champion")), None)
    if row is not None:
        champion = next(g for g, _ in candidates if g.behaviour_hash() == row["hash"])
        at = "" if row.get("temperature") is None else f" at temperature {row['temperature']:g}"
        description = (
            f"champion: validated pass@1 {row['mean']:.4f}{at} on {row['problems']} held-out problems x "
            f"{row['repeats']} repeats; search fitness {champion.fitness:.4f}"
        )
    else:
        description = (
            f"best genome of the search so far (not validated): search fitness {champion.fitness:.4f}"
        )
    save_genome_files(champion, run_dir / "champion", description)
    return champion


def _seed_population(population: Any, config: Any, initial: Sequence[Any]) -> None:
    """Put renumbered copies of ``initial`` genomes in place of the first members, then re-speciate."""
    if not initial:
        return
    keys = sorted(population.population)
    for key, genome in zip(keys, initial, strict=False):
        population.population[key] = genome.renumbered(config.genome_config, key=key)
    population.species = config.species_set_type(config.species_set_config, population.reporters)
    population.species.speciate(config, population.population, population.generation)


def _validate_all(
    evaluator: Any,
    candidates: list[tuple[Any, Any]],
    baselines: Sequence[Any],
    held_out: Sequence[Any],
    repeats: int,
    run_dir: Path,
    progress: Progress,
    temperature: float | None = None,
) -> list[dict[str, Any]]:
    """The champions' validation rows, then the baselines' (at ``temperature`` when one is given), with the
    phase shown by ``progress``: it can
    take as long as many generations, and a run that says nothing for minutes looks hung. A step is one
    pipeline run (a genome on all held-out problems, one repeat); runs already in the result store are
    not run again, so a resumed validation ends below the total."""
    total = (len(candidates) + len(baselines)) * repeats
    progress.begin(
        "validation",
        total,
        "pipeline runs",
        f"{len(candidates)} best genome(s) and {len(baselines)} baseline(s) on {len(held_out)} held-out "
        f"problems x {repeats} repeat(s)",
    )
    done = 0

    def ran(run: Any) -> None:
        nonlocal done
        done += 1
        progress.step(done)

    rows: list[dict[str, Any]] = []
    with evaluator.observing_runs(ran):
        if candidates:
            rows = _validate(evaluator, candidates, held_out, repeats, run_dir, temperature)
        if baselines:
            rows += _validate_baselines(evaluator, baselines, held_out, repeats, temperature)
    progress.end(f"{done} pipeline run(s), {total - done} reused")
    return rows


def _validate(
    evaluator: Any,
    candidates: list[tuple[Any, Any]],
    held_out: Sequence[Any],
    repeats: int,
    run_dir: Path,
    temperature: float | None = None,
) -> list[dict[str, Any]]:
    """Validation rows of the search's best genomes, the champion (best validated fitness; on a tie the
    better search rank) first and marked ``champion``. A row's ``hash`` is the searched genome's, also
    when it was validated at ``temperature`` (then ``validated_hash`` names the genome that ran)."""
    from neatpipe.evolution.designs import with_temperature

    search = {g.key: record for g, record in candidates}
    validated = [(g, g if temperature is None else with_temperature(g, temperature)) for g, _ in candidates]
    with evaluator.collecting_runs() as runs:
        results = evaluator.validate_champions(
            [(g.key, ran) for g, ran in validated], held_out, repeats, search=search
        )
    rows = []
    for (g, _), r in zip(validated, results, strict=True):
        row = _validation_row(r.label, r.validated, r.search_fitness, r.search_pass_rate, r.inflation)
        rows.append(_at_temperature(row, temperature, g.behaviour_hash()))
    ranked = sorted(range(len(rows)), key=lambda i: (-rows[i]["validated_fitness"], i))
    rows = [rows[i] for i in ranked]
    rows[0]["champion"] = True
    rows[0]["label"] = f"champion ({rows[0]['label']})"
    if runs:
        from neatpipe.runtime.texts import store_texts

        champion_hash = rows[0].get("validated_hash", rows[0]["hash"])
        kept = [t for run in runs for t in run.trajectories if t.genome == champion_hash]
        store_texts(run_dir, kept)  # before the lines that name the texts
        write_jsonl_gz(run_dir / TRAJECTORIES_DIR / "validation.jsonl.gz", (t.to_dict() for t in kept))
    return _label_temperature(rows, temperature)


def _validation_row(
    label: str, v: Any, search_fitness: float | None, search_pass_rate: float | None, inflation: float | None
) -> dict[str, Any]:
    """One row of ``validation.json``, the same for champions and baselines."""
    return {
        "label": label,
        "hash": v.genome,
        "search_fitness": search_fitness,
        "search_pass_rate": search_pass_rate,
        "mean": v.mean,
        "sd": v.sd or 0.0,
        "pass_rates": list(v.pass_rates),
        "repeats": v.repeats,
        "problems": len(v.problems),
        "benchmark": v.benchmark,
        "task_ids": list(v.problems),  # with per_problem: what neatpipe compare pairs by
        "per_problem": dict(v.per_problem),
        "validated_fitness": v.fitness,
        "inflation": inflation,
        "synthetic": v.synthetic,
        "feedback": v.feedback,
    }


def _at_temperature(row: dict[str, Any], temperature: float | None, searched_hash: str) -> dict[str, Any]:
    """``row`` with the validation temperature (None: the genome's own) and, when a temperature replaced
    the genome's own, its label saying so and ``hash`` naming the genome as it was searched or given."""
    row["temperature"] = temperature
    if temperature is not None:
        row["validated_hash"] = row["hash"]
        row["hash"] = searched_hash
    return row


def _label_temperature(rows: list[dict[str, Any]], temperature: float | None) -> list[dict[str, Any]]:
    """Labels that say the rows ran at ``temperature`` (the genomes' own when None: labels unchanged)."""
    if temperature is not None:
        for row in rows:
            row["label"] = f"{row['label']} at T={temperature:g}"
    return rows


def _validate_baselines(
    evaluator: Any,
    baselines: Sequence[Any],
    held_out: Sequence[Any],
    repeats: int,
    temperature: float | None = None,
) -> list[dict[str, Any]]:
    """Fixed designs scored on the same held-out problems as the champions (no search fitness), at
    ``temperature`` when one is given."""
    import dataclasses

    from neatpipe.evolution.designs import evaluate_designs, with_temperature

    ran = [
        d if temperature is None else dataclasses.replace(d, genome=with_temperature(d.genome, temperature))
        for d in baselines
    ]
    rows = []
    for d, r in zip(
        baselines, evaluate_designs(evaluator, ran, list(held_out), repeats=repeats), strict=True
    ):
        row = _validation_row(f"baseline: {r.design.label}", r.evaluation, None, None, None)
        row["baseline"] = True
        rows.append(_at_temperature(row, temperature, d.genome.behaviour_hash()))
    return _label_temperature(rows, temperature)


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
        row = next((v for v in validation or () if v.get("champion")), None)
        summary["champion"] = {
            "hash": champion.behaviour_hash(),
            "fitness": champion.fitness,
            "summary": summary_line(champion),
            "file": "champion.yaml",
            "chosen_by": "validated fitness" if row else "search fitness (not validated)",
        }
        if row is not None:
            summary["champion"].update(
                {k: row[k] for k in ("mean", "sd", "validated_fitness", "inflation", "repeats", "problems")}
            )
    if validation:
        summary["validation"] = validation
    write_json(run_dir / SUMMARY_FILE, summary)


# -----------------------------------------------------------------------------------------------------
# from an experiment file


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM under ``neatpipe evolve``) stopped a run; ``run_dir`` is where it can be resumed."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def _budget_options(generations: Any, tokens: Any, wall_time: Any) -> dict[str, Any]:
    """The budgets given as options, checked: whole numbers of at least 1, a positive finite time."""
    out: dict[str, Any] = {}
    for name, value in (("generations", generations), ("tokens", tokens)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SetupError(f"{name} must be a whole number of at least 1, got {value!r}")
        out[name] = value
    if wall_time is not None:
        if (
            isinstance(wall_time, bool)
            or not isinstance(wall_time, int | float)
            or not (math.isfinite(wall_time) and wall_time > 0)
        ):
            raise SetupError(f"wall_time must be a positive number of seconds, got {wall_time!r}")
        out["wall_time"] = float(wall_time)
    return out


def _engine_option(engine: Any) -> str:
    from neatpipe.vocab import ENGINES

    if engine not in ENGINES:
        raise SetupError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r:.40}")
    return str(engine)


def evolve(
    experiment: Any = None,
    *,
    resume: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    generations: int | None = None,
    tokens: int | None = None,
    wall_time: float | None = None,
    progress: bool | Progress = True,
    model_set: str | None = None,
    engine: str | None = None,
) -> EvolutionRun:
    """Run an experiment (an ``Experiment``, or the path of its YAML file), or continue ``resume``.

    ``generations``, ``tokens`` and ``wall_time`` override the experiment's budgets; ``model_set`` picks
    one of its ``model_alternatives`` (e.g. ``ollama``); ``engine`` (``local`` or ``ray``) overrides the
    experiment's ``engine``, also when resuming (the engine does not change results). An experiment with ``mode: evaluate`` scores its
    fixed designs instead of evolving (``EvolutionRun.designs``).

    The run directory is the experiment's ``output`` (or ``out``). It keeps the resolved experiment, its
    digest and the options in ``run.json``; ``resume`` continues from them, so a resumed run is the
    run it continues (a budget given with ``resume`` replaces the stored one; an edited
    ``experiment.yaml`` is refused). Everything that can fail (the experiment, problems, genomes, models,
    servers) is checked before the run directory is created, and one process at a time writes a run.
    Ctrl-C raises :class:`RunInterrupted` after the champion so far and the summary are written.
    """
    from contextlib import ExitStack

    from neatpipe.evolution.runlog import EXPERIMENT_FILE, NEAT_CONFIG_FILE, RunLock
    from neatpipe.experiment import Experiment, load_experiment

    requested = _budget_options(generations, tokens, wall_time)
    if engine is not None:
        requested["engine"] = _engine_option(engine)
    if resume is not None:
        given = [
            n for n, v in (("an experiment", experiment), ("--out", out), ("--model-set", model_set)) if v
        ]
        if given:
            raise SetupError(
                f"--resume continues {resume} with the experiment, output and models kept in it; "
                f"do not give {' or '.join(given)} with it"
            )
        run_dir = Path(resume)
        if not (run_dir / RUN_STATE_FILE).is_file():
            raise SetupError(f"{run_dir}: not a run directory (no {RUN_STATE_FILE}); nothing to resume")
    else:
        if experiment is None:
            raise SetupError("give an experiment or a run directory to resume")
        if isinstance(
            experiment, Experiment
        ):  # load_experiment checks the genome files; an object is checked here
            exp = experiment.using(model_set) if model_set else experiment
            build.check_genome_files(exp)
        else:
            exp = load_experiment(experiment, models=model_set)
        run_dir = Path(out) if out is not None else build.run_dir(exp)
        _check_new_run_dir(run_dir)
    with ExitStack() as stack:
        if resume is not None:
            stack.enter_context(RunLock(run_dir))
            state = read_run_state(run_dir)
            exp = _kept_experiment(run_dir, state)
            options = {**state.get("options", {}), **requested}
            if not set(requested) - {"engine"} and state.get("status") in ("finished", "stopped"):
                return EvolutionRun.load(run_dir)  # nothing left to do: the run stays as it is
        else:
            state = {"experiment_sha256": None, "model_set": model_set}
            options = {
                "generations": exp.budget.generations,
                "tokens": exp.budget.tokens,
                "wall_time": exp.budget.wall_time,
                **requested,
            }
        # everything that can fail is built before a new run directory is made
        problems = build.load_problems(exp)
        build.subset_tasks(exp, problems)  # a task id the benchmark lacks stops the run here
        initial = build.initial_genomes(exp) if exp.mode == "evolve" else []
        engine = stack.enter_context(build.engine(exp, options.get("engine")))
        sandbox = engine.sandbox
        problems = build.time_limited(problems, sandbox, state)
        models = build.build_models(exp, runner=sandbox.run_many, engine=engine)
        stack.callback(build.close_all, models)
        if resume is None:
            run_dir.mkdir(parents=True, exist_ok=True)
            stack.enter_context(RunLock(run_dir))
            _check_new_run_dir(run_dir)  # another process may have started one here meanwhile
            exp.write(run_dir / EXPERIMENT_FILE)
            if exp.mode == "evolve":
                build.write_neat_config(exp, run_dir / NEAT_CONFIG_FILE)
            state["experiment_sha256"] = file_sha256(run_dir / EXPERIMENT_FILE)
        write_run_state(run_dir, {**state, "options": options, "status": "running"})
        try:
            if exp.mode == "evaluate":
                run = _evaluate_experiment(
                    exp, problems, models, sandbox, run_dir, sys.stderr if progress else None
                )
            else:
                run = _evolve_experiment(exp, problems, initial, models, sandbox, run_dir, options, progress)
        except KeyboardInterrupt:
            _set_status(run_dir, "interrupted")
            raise RunInterrupted(run_dir) from None
        _set_status(run_dir, "stopped" if run.status.startswith("stopped") else "finished")
        return run


def _set_status(run_dir: Path, status: str) -> None:
    state = read_run_state(run_dir)
    state["status"] = status
    write_run_state(run_dir, state)


def _check_new_run_dir(run_dir: Path) -> None:
    """A new run goes into a folder that is not a file and holds no run yet."""
    from neatpipe.evolution.runlog import EXPERIMENT_FILE

    if run_dir.exists() and not run_dir.is_dir():
        raise SetupError(f"{run_dir}: exists and is not a directory; choose another --out")
    if any((run_dir / f).exists() for f in (RUN_STATE_FILE, EXPERIMENT_FILE, SUMMARY_FILE)):
        raise SetupError(f"{run_dir} already holds a run; continue it with --resume {run_dir}")


def _kept_experiment(run_dir: Path, state: Mapping[str, Any]) -> Any:
    """The experiment kept in a run directory, refused when it changed since the run started."""
    from neatpipe.evolution.runlog import EXPERIMENT_FILE
    from neatpipe.experiment import load_experiment

    path = run_dir / EXPERIMENT_FILE
    if not path.is_file():
        raise SetupError(f"{path}: missing; this run directory cannot be resumed")
    recorded = state.get("experiment_sha256")
    if recorded and file_sha256(path) != recorded:
        raise SetupError(
            f"{path} was edited after the run started (its SHA-256 differs from the one in "
            f"{run_dir / RUN_STATE_FILE}); a resumed run must be the run it continues. Put the file back, "
            f"or start a new run from the edited copy: neatpipe evolve {path} --out NEW_RUN_DIR"
        )
    return load_experiment(path)


def _evolve_experiment(
    exp: Any,
    problems: Any,
    initial: Sequence[Any],
    models: Mapping[str, Any],
    sandbox: Any,
    run_dir: Path,
    options: Mapping[str, Any],
    progress: bool | Progress,
) -> EvolutionRun:
    from neatpipe.evolution.designs import experiment_designs
    from neatpipe.evolution.runlog import EVALUATIONS_FILE
    from neatpipe.evolution.store import ResultStore

    config = build.neat_config(exp)
    pool, held_out = build.split_problems(exp, problems)
    budgets = Budgets(int(options["generations"]), options.get("wall_time"), options.get("tokens"))
    reporter = progress if isinstance(progress, Progress) else Progress(sys.stderr if progress else None,
                                                                        budgets.generations)  # fmt: skip
    meta = {
        "experiment": exp.name,
        "description": exp.description,
        "benchmark": exp.benchmark.name,
        "search_pool": len(pool),
        "held_out": len(held_out),
        "seed": exp.seed,
        "models": {m.name: m.spec.to_string() for m in exp.models},
    }
    with ResultStore(run_dir / EVALUATIONS_FILE) as store:
        return run_evolution(
            config=config,
            evaluator=build.evaluator(exp, models, sandbox, store, exp.fitness.repeats),
            run_dir=run_dir,
            subset=build.subset_schedule(exp, pool),
            budgets=budgets,
            held_out=list(held_out) if exp.validation.champions else [],
            validate_top=max(exp.validation.champions, 1),
            validate_repeats=exp.validation.repeats,
            validate_temperature=exp.validation.temperature,
            racing=build.racing(exp),
            seed=exp.seed,
            initial_genomes=initial,
            progress=reporter,
            meta=meta,
            baselines=experiment_designs(exp) if exp.validation.champions else [],
            reporters=[SpeciesTarget(exp.neat.target_species, exp.neat.threshold_step)],
        )


def _evaluate_experiment(
    exp: Any, problems: Any, models: Mapping[str, Any], sandbox: Any, run_dir: Path, reporter_stream: Any
) -> EvolutionRun:
    """``mode: evaluate``: score the experiment's fixed designs with repeats; results that an interrupted
    session already paid for come back from the run's result store."""
    from neatpipe.evolution.designs import (
        designs_report,
        evaluate_designs,
        experiment_designs,
        render_designs,
        with_temperature,
        write_design_files,
    )
    from neatpipe.evolution.runlog import EVALUATIONS_FILE
    from neatpipe.evolution.store import ResultStore

    problems = list(build.search_subset(exp, build.search_pool(exp, problems), 0))
    designs = experiment_designs(exp)
    if exp.validation.temperature is not None:
        designs = [replace(d, genome=with_temperature(d.genome, exp.validation.temperature)) for d in designs]
    with ResultStore(run_dir / EVALUATIONS_FILE) as store:
        evaluator = build.evaluator(exp, models, sandbox, store, exp.evaluate.repeats)
        results = evaluate_designs(evaluator, designs, problems, seed=exp.seed)
    temperature = exp.validation.temperature
    report = designs_report(results, exp.benchmark.name, len(problems), temperature=temperature)
    write_design_files(run_dir, results, report)
    if reporter_stream is not None:
        text = render_designs(results, exp.benchmark.name, len(problems), temperature=temperature)
        reporter_stream.write(text + "\n")
    summary = {
        "experiment": exp.name,
        "description": exp.description,
        "mode": "evaluate",
        "status": "finished",
        "benchmark": exp.benchmark.name,
        "problems": len(problems),
        "repeats": exp.evaluate.repeats,
        "temperature": temperature,
        "feedback": results[0].evaluation.feedback if results else exp.feedback,
        "synthetic": any(r.evaluation.synthetic for r in results),
        "models": {m.name: m.spec.to_string() for m in exp.models},
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    return EvolutionRun(
        run_dir, [], None, None, [], "finished", summary["synthetic"], designs=report["evaluations"]
    )
