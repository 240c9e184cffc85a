"""The per-generation work of an evolution run, as neat-python reporters (observers added with
``population.add_reporter``, as neat-python's own ``Checkpointer`` is): the run log, the species-count
controller, the checkpoint and the progress line. They are added in that order, so a checkpoint holds
what the controller changed, and the progress line comes once the generation is safe on disk.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from neat.reporting import BaseReporter

from neatpipe.costs import Cost
from neatpipe.evolution.checkpoint import CHECKPOINTS_DIR, capture, checkpoint_name, save_checkpoint
from neatpipe.evolution.runlog import (
    GENERATIONS_FILE,
    GENOMES_DIR,
    RUN_STATE_FILE,
    TRAJECTORIES_DIR,
    GenerationLog,
    append_line,
    append_lines,
    generation_stem,
    read_jsonl,
    read_run_state,
    write_jsonl,
    write_jsonl_gz,
    write_run_state,
)
from neatpipe.evolution.store import SearchRecord
from neatpipe.io import atomic_write_text

PROGRESS_FILE = "progress.json"


class RunRecorder(BaseReporter):
    """Writes each evaluated generation into the run directory, right after its evaluation: the log line,
    the best genome's files, every genome's search score (into the result store, where champions are
    chosen from) and the generation's trajectory file. ``history`` holds the log lines of the run."""

    def __init__(
        self,
        run_dir: Path,
        store: Any,
        fitness: Any,
        history: list[GenerationLog],
        elapsed: Callable[[], float],
    ) -> None:
        self.run_dir, self.store, self.fitness = run_dir, store, fitness
        self.history = history
        self.elapsed = elapsed

    def post_evaluate(self, config: Any, population: Any, species: Any, best_genome: Any) -> None:
        from neatpipe.genome.fileio import genome_to_json

        record, result = self.fitness.history[-1], self.fitness.evaluations
        generation = record.generation
        genomes = list(population.items())
        log = generation_log(generation, genomes, result, species, record, self.elapsed())
        scored: dict[str, SearchRecord] = {}
        for key, genome in sorted(genomes):
            ev = result[key]
            if ev.genome not in scored:
                scored[ev.genome] = SearchRecord(
                    generation, ev.genome, float(ev.fitness), float(ev.mean), int(ev.rests_on),
                    genome_to_json(_with_fitness(genome, ev.fitness)),
                )  # fmt: skip
        self.store.record_search(generation, scored.values())
        best = population[record.best_key]
        stem = self.run_dir / GENOMES_DIR / generation_stem(generation)
        save_genome_files(best, stem, f"best of generation {generation}: fitness {best.fitness:.4f}")
        seal_trajectories(self.run_dir, generation)
        append_line(self.run_dir / GENERATIONS_FILE, log.to_dict())
        self.history.append(log)

    def keep_trajectories(self, run: Any) -> None:
        """An evaluator observer: a run's trajectories go to the generation's partial file as soon as they
        are made, so a crash loses none of them; their prompts and answers go to the text store first, so
        no line names a text the store lacks."""
        from neatpipe.runtime.texts import store_texts

        store_texts(self.run_dir, run.trajectories)
        append_lines(
            partial_trajectories(self.run_dir, self.fitness.generation),
            [t.to_dict() for t in run.trajectories],
        )


class SpeciesTarget(BaseReporter):
    """A neat-python reporter that moves the compatibility threshold after each speciation toward a
    target number of species (down by ``step`` when there are fewer, up when more). It changes the live
    config, which the checkpoint taken right after the generation records."""

    def __init__(self, target: int | None, step: float) -> None:
        self.target, self.step = target, step

    def end_generation(self, config: Any, population: Any, species_set: Any) -> None:
        if self.target is None:
            return
        sc = config.species_set_config
        count = len(species_set.species)
        if count < self.target:
            sc.compatibility_threshold = max(self.step, sc.compatibility_threshold - self.step)
        elif count > self.target:
            sc.compatibility_threshold += self.step


class Checkpointer(BaseReporter):
    """After each generation's reproduction and speciation (and after the reporters added before it,
    such as :class:`SpeciesTarget`, changed what they change), checkpoints the next generation."""

    def __init__(self, run_dir: Path, population: Any) -> None:
        self.run_dir, self.population = run_dir, population

    def end_generation(self, config: Any, population: Any, species_set: Any) -> None:
        # neat-python counts the generation up after its reporters: the checkpoint starts the next one
        save_run_checkpoint(self.run_dir, self.population, config, self.population.generation + 1)


def save_run_checkpoint(run_dir: Path, population: Any, config: Any, generation: int) -> None:
    """Checkpoint ``population`` as the start of ``generation``, record it (with its digest) in
    ``run.json``, then drop the checkpoints before the previous one: ``run.json`` always names a whole
    file that is still there."""
    name = checkpoint_name(generation)
    digest = save_checkpoint(run_dir / name, capture(population, config, generation=generation))
    state = read_run_state(run_dir) if (run_dir / RUN_STATE_FILE).exists() else {}
    previous = (state.get("checkpoint") or {}).get("file")
    state["checkpoint"] = {"file": name, "generation": generation, "sha256": digest}
    write_run_state(run_dir, state)
    keep = {name, previous}
    for old in (run_dir / CHECKPOINTS_DIR).glob("gen-*.pkl.gz"):
        if f"{CHECKPOINTS_DIR}/{old.name}" not in keep:
            old.unlink(missing_ok=True)


PROGRESS_FORMAT = "neatpipe-progress/1"


class Progress(BaseReporter):
    """What a run is doing, for a person and for a program: a line per generation (after its checkpoint)
    and a line when each later phase (validation) starts and ends, on ``stream``; a bar of the phase's
    work when the stream is a terminal; and, once :meth:`attach` names the run directory, the same state
    in ``progress.json`` there, rewritten atomically at every step so a dashboard can poll it.

    ``genome_done`` is called by the fitness function per distinct genome scored; :meth:`step` by any
    other long phase."""

    def __init__(self, stream: TextIO | None = sys.stderr, total_generations: int | None = None) -> None:
        self.stream = stream
        self.total = total_generations
        self.bar = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.path: Path | None = None
        self._history: list[GenerationLog] = []
        self._started = time.monotonic()
        self._done = 0
        self._phase: dict[str, Any] = {}

    def attach(self, run_dir: Path) -> None:
        """Write ``progress.json`` into ``run_dir`` from now on."""
        self.path = run_dir / PROGRESS_FILE

    def watch(self, history: list[GenerationLog]) -> None:
        """Report the generations logged into ``history`` (a :class:`RunRecorder`'s), from now on."""
        self._history, self._started, self._done = history, time.monotonic(), 0

    def end_generation(self, config: Any, population: Any, species_set: Any) -> None:
        if self._history:
            self._done += 1
            self.generation_done(self._history[-1], self._started, self._done)

    def genome_done(self, generation: int, done: int, total: int) -> None:
        self._write("search", {"generation": generation, "done": done, "total": total, "unit": "genomes"})
        self._draw(f"gen {generation}", done, total, "genomes")

    def begin(self, phase: str, total: int, unit: str, what: str) -> None:
        """A phase other than the search starts: ``total`` ``unit`` of work, described by ``what``."""
        self._phase = {
            "phase": phase,
            "total": total,
            "unit": unit,
            "what": what,
            "started": time.monotonic(),
        }
        self._write(phase, {"done": 0, "total": total, "unit": unit, "what": what})
        self._line(f"{phase}: {what}")

    def step(self, done: int) -> None:
        """``done`` units of the current phase's work are finished. Without a terminal (a log file) a
        line comes at each quarter of the work, so a long phase is never silent there either."""
        ph = self._phase
        if not ph:
            return
        total = ph["total"]
        self._write(ph["phase"], {"done": done, "total": total, "unit": ph["unit"], "what": ph["what"]})
        self._draw(ph["phase"], done, total, ph["unit"])
        quarter = 4 * done // max(total, 1)
        if not self.bar and done < total and quarter > ph.get("quarter", 0):
            ph["quarter"] = quarter
            self._line(f"{ph['phase']}: {done}/{total} {ph['unit']}")

    def end(self, note: str = "done") -> None:
        """The current phase is finished; ``note`` says with what."""
        ph, self._phase = self._phase, {}
        if ph:
            self._line(f"{ph['phase']}: {note} ({time.monotonic() - ph['started']:.0f} s)")

    def finished(self, status: str) -> None:
        """The run is over (``status`` as in ``summary.json``)."""
        self._write("finished", {"status": status})

    def generation_done(self, record: GenerationLog, started: float, done_generations: int) -> None:
        left_s = None
        if self.total and done_generations:
            per = (time.monotonic() - started) / done_generations
            left_s = per * max(self.total - record.generation - 1, 0)
        self._write(
            "search",
            {
                "generation": record.generation,
                "generation_done": True,
                "best_fitness": round(record.best_fitness, 4),
                "best_pass_rate": round(record.best_pass_rate, 4),
                "mean_fitness": round(record.mean_fitness, 4),
                "elapsed_s": round(record.elapsed_s, 1),
                "species": record.species,
                "tokens": record.tokens,
                "seconds_left": None if left_s is None else round(left_s, 1),
                "synthetic": record.synthetic,
            },
        )
        left = "" if left_s is None else f", ~{left_s:.0f} s left"
        tag = " [synthetic]" if record.synthetic else ""
        self._line(
            f"gen {record.generation:>3}: best {record.best_fitness:.3f} (pass {record.best_pass_rate:.3f})"
            f"  mean {record.mean_fitness:.3f} ± {record.sd_fitness:.3f}  species {record.species}"
            f"  tokens {record.tokens:,}  cache {record.cache_hit_rate:.0%}"
            f"  paid/reused {record.evaluations_paid}/{record.evaluations_reused}"
            f"  {record.elapsed_s:.0f} s{left}{tag}"
        )

    def _write(self, phase: str, fields: dict[str, Any]) -> None:
        """``progress.json``: the phase, its fields, and when; replaced whole, never torn."""
        if self.path is None:
            return
        state = {"format": PROGRESS_FORMAT, "phase": phase, "generations": self.total, **fields}
        state["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_text(self.path, json.dumps(state, sort_keys=True) + "\n")

    def _draw(self, what: str, done: int, total: int, unit: str) -> None:
        if not self.bar or self.stream is None:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        self.stream.write(f"\r{what}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}")
        self.stream.flush()

    def _line(self, text: str) -> None:
        if self.stream is None:
            return
        if self.bar:
            self.stream.write("\r" + " " * 70 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()


def generation_log(
    generation: int,
    genomes: list[tuple[int, Any]],
    evaluations: Mapping[Any, Any],
    species_set: Any,
    record: Any,
    elapsed: float,
) -> GenerationLog:
    """The log line of an evaluated generation (``record``: the fitness function's ``GenerationRecord``)."""
    fits = [float(g.fitness) for _, g in genomes]
    best_key, best = max(genomes, key=lambda kg: kg[1].fitness)
    ev = evaluations[best_key]
    unique = {evaluations[k].genome: evaluations[k] for k, _ in genomes}.values()
    sizes = sorted((len(s.members) for s in species_set.species.values()), reverse=True)
    return GenerationLog(
        generation=generation,
        best_fitness=float(best.fitness),
        mean_fitness=statistics.fmean(fits),
        sd_fitness=statistics.stdev(fits) if len(fits) > 1 else 0.0,
        best_pass_rate=float(ev.mean),
        best_genome=best.behaviour_hash(),
        best_summary=summary_line(best),
        species=len(species_set.species),
        species_sizes=sizes,
        mean_nodes=statistics.fmean(len(g.nodes) for _, g in genomes),
        best_nodes=len(best.nodes),
        best_model_calls=int(best.complexity().model_calls),
        problems=list(record.problems),
        evaluations_paid=record.problem_runs,
        evaluations_reused=record.problem_reuses,
        **Cost.total(e for e in unique if e.new_evaluations).fields(),
        elapsed_s=elapsed,
        synthetic=any(e.synthetic for e in unique),
        compatibility_threshold=float(species_set.species_set_config.compatibility_threshold),
    )


def partial_trajectories(run_dir: Path, generation: int) -> Path:
    return run_dir / TRAJECTORIES_DIR / f"{generation_stem(generation)}.partial.jsonl"


def clean_partial_trajectories(run_dir: Path, generation: int) -> None:
    """Keep the whole lines of the generation's partial trajectory file (a killed session may have torn
    its last line), so that appending goes on after a whole line."""
    path = partial_trajectories(run_dir, generation)
    if path.exists():
        write_jsonl(path, read_jsonl(path))


def seal_trajectories(run_dir: Path, generation: int) -> None:
    """The generation's trajectory file, from the lines appended while it ran (in this session and in an
    interrupted one): one line per (genome, problem, repeat), in that order, so a resumed generation's
    file holds what the uninterrupted one's does."""
    partial = partial_trajectories(run_dir, generation)
    if not partial.exists():
        return
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for t in read_jsonl(partial):
        unique.setdefault((t["genome"], t["task_id"], t["repeat"], t["seed"]), t)
    write_jsonl_gz(
        run_dir / TRAJECTORIES_DIR / f"{generation_stem(generation)}.jsonl.gz",
        (unique[k] for k in sorted(unique)),
    )
    partial.unlink()


def _with_fitness(genome: Any, fitness: float) -> Any:
    copy = genome.copy(key=genome.key)
    copy.fitness = float(fitness)
    return copy


def save_genome_files(genome: Any, stem: Path, description: str) -> None:
    from neatpipe.genome import save_genome

    stem.parent.mkdir(parents=True, exist_ok=True)
    copy = genome.copy(key=genome.key)
    copy.fitness = genome.fitness
    copy.description = description
    for suffix in (".yaml", ".graphml", ".svg"):
        save_genome(copy, stem.with_suffix(suffix))


def summary_line(genome: Any) -> str:
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
