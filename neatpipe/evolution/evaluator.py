"""Scoring genomes: repeats with derived seeds, reuse of earlier results, racing, subsets per
generation, the neat-python fitness function, and champion validation on held-out problems.

The unit of work is one *problem evaluation*: a genome (by behaviour hash) on one problem with one
repeat seed, under one evaluation context (feedback policy and the exact models). Every problem
evaluation is kept in a ``ResultStore``; an evaluation only runs what the store lacks, so identical
genomes, elites carried into the next generation and a request for more repeats pay only for what
is new, and a store on disk (SQLite) carries that across runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.bench.subsets import SubsetSchedule
from neatpipe.errors import NeatpipeError
from neatpipe.evolution.fitness import (
    BOUNDS,
    STUDY_PENALTY,
    Evaluation,
    Penalty,
    fitness_of,
    mean_sd,
)
from neatpipe.genome.errors import GenomeError
from neatpipe.seeds import derive_seed

FEEDBACK_POLICIES = ("visible", "hidden", None)


# -- one problem evaluation and the store that keeps them -----------------------------------------


@dataclass(frozen=True)
class ProblemResult:
    """One genome on one problem with one repeat seed: what the final candidate did on the hidden
    tests and what the run cost."""

    task_id: str
    seed: int
    passed: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    cache_hits: int = 0
    duration_s: float = 0.0
    error_type: str | None = None
    synthetic: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProblemResult:
        return cls(**data)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """An attribute of a dataclass-like object or a key of a mapping."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def result_from_trajectory(trajectory: Any, seed: int, synthetic: bool = False) -> ProblemResult:
    """The ``ProblemResult`` of one runtime trajectory (object or its JSON dictionary)."""
    steps = _get(trajectory, "steps", ()) or ()
    final = _get(trajectory, "final")
    calls = _get(trajectory, "model_calls")
    cached = sum(1 for s in steps if _get(s, "cached", False))
    if calls is None:
        calls = sum(1 for s in steps if _get(s, "model") is not None)
    return ProblemResult(
        task_id=str(_get(trajectory, "task_id")),
        seed=int(seed),
        passed=bool(_get(trajectory, "passed", False)),
        prompt_tokens=int(_get(trajectory, "prompt_tokens", 0) or 0),
        completion_tokens=int(_get(trajectory, "completion_tokens", 0) or 0),
        model_calls=int(calls or 0),
        cache_hits=int(cached),
        duration_s=float(_get(trajectory, "duration_s", 0.0) or 0.0),
        error_type=_get(final, "error_type") if final is not None else None,
        synthetic=bool(_get(trajectory, "synthetic", synthetic)),
    )


def problem_digest(problem: Problem) -> str:
    """A short digest of what decides a problem's results: its text, its tests and its time limit."""
    parts = [
        problem.benchmark,
        problem.task_id,
        problem.prompt,
        problem.entry_point,
        problem.context,
        list(problem.visible_tests),
        list(problem.hidden_tests),
        problem.test_setup,
        problem.time_limit_s,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def result_key(context: str, genome_hash: str, problem: Problem, seed: int) -> str:
    """Store key of one problem evaluation."""
    return f"{context}|{genome_hash}|{problem.task_id}|{problem_digest(problem)}|{seed}"


class ResultStoreError(NeatpipeError):
    """A result store file that SQLite cannot use (damaged, or not a result store); names the file."""


@dataclass(frozen=True)
class SearchRecord:
    """One genome's search score in one generation: fitness, pass rate, how many problem evaluations
    it rests on, and the genome itself (its JSON document, so a champion can be rebuilt from the store)."""

    generation: int
    genome: str
    fitness: float
    pass_rate: float
    rests_on: int
    data: str

    @property
    def mean(self) -> float:
        """The pass rate, under the name an ``Evaluation`` gives it."""
        return self.pass_rate


_SCHEMA = {
    "results": ("key", "genome", "task_id", "seed", "data"),
    "searched": ("generation", "genome", "fitness", "pass_rate", "rests_on", "data"),
}


class ResultStore:
    """Every problem evaluation made so far, by ``result_key``; an explicit memo, optionally kept
    in an SQLite file so that a resumed run does not pay again.

    Writes go in one transaction per batch (a run of one genome, one repeat), so a crash leaves the
    file with whole batches only. ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._memory: dict[str, ProblemResult] = {}
        self._searched: dict[tuple[int, str], SearchRecord] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._guard():
                self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
                self._check_schema()  # before anything is written: a foreign file is left as it was
                with self._db:
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute(
                        "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, genome TEXT, task_id TEXT,"
                        " seed INTEGER, data TEXT NOT NULL)"
                    )
                    self._db.execute(
                        "CREATE TABLE IF NOT EXISTS searched (generation INTEGER, genome TEXT, fitness REAL,"
                        " pass_rate REAL, rests_on INTEGER, data TEXT, PRIMARY KEY (generation, genome))"
                    )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's errors as one error that names the file: a damaged or foreign file, or a disk that
        cannot take the writes."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name.startswith(
                ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
            ):
                raise ResultStoreError(
                    f"{self.path}: cannot read or write the result store ({exc}): disk full, or a read-only "
                    "folder?"
                ) from None
            raise ResultStoreError(
                f"{self.path}: not a usable result store ({exc}). Move the file aside to start afresh "
                "(its results are then paid for again), or put back a good copy"
            ) from None

    def _check_schema(self) -> None:
        """The tables a result store has, where they exist, have the store's columns."""
        assert self._db is not None
        for table, wanted in _SCHEMA.items():
            columns = [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]
            if columns and columns != list(wanted):
                raise sqlite3.DatabaseError(f"table {table} has columns {columns}, not {list(wanted)}")

    def get(self, key: str) -> ProblemResult | None:
        with self._lock:
            found = self._memory.get(key)
            if found is None and self._db is not None:
                with self._guard():
                    row = self._db.execute("SELECT data FROM results WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    found = ProblemResult.from_dict(json.loads(row[0]))
                    self._memory[key] = found
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
            return found

    def put_many(self, items: Iterable[tuple[str, ProblemResult]]) -> None:
        batch = list(items)
        with self._lock:
            if self._db is not None:
                rows = [
                    (k, k.split("|")[1], r.task_id, r.seed, json.dumps(r.to_dict(), separators=(",", ":")))
                    for k, r in batch
                ]
                with self._guard(), self._db:  # one transaction: all of the batch or none of it
                    self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)", rows)
            self._memory.update(batch)

    def put(self, key: str, result: ProblemResult) -> None:
        self.put_many([(key, result)])

    # -- search scores, per generation ------------------------------------------------------------

    def record_search(self, generation: int, records: Iterable[SearchRecord]) -> None:
        """Keep the search scores of ``generation`` (replacing what an interrupted attempt left)."""
        rows = [r for r in records if r.generation == generation]
        with self._lock:
            for k in [k for k in self._searched if k[0] == generation]:
                del self._searched[k]
            self._searched.update({(r.generation, r.genome): r for r in rows})
            if self._db is not None:
                with self._guard(), self._db:
                    self._db.execute("DELETE FROM searched WHERE generation = ?", (generation,))
                    self._db.executemany(
                        "INSERT INTO searched VALUES (?, ?, ?, ?, ?, ?)",
                        [(r.generation, r.genome, r.fitness, r.pass_rate, r.rests_on, r.data) for r in rows],
                    )

    def forget_search_from(self, generation: int) -> None:
        """Drop the search scores of ``generation`` and later (a resumed run scores them again)."""
        with self._lock:
            for k in [k for k in self._searched if k[0] >= generation]:
                del self._searched[k]
            if self._db is not None:
                with self._guard(), self._db:
                    self._db.execute("DELETE FROM searched WHERE generation >= ?", (generation,))

    def searched(self) -> list[SearchRecord]:
        """Every search score kept, by generation then genome hash."""
        with self._lock:
            if self._db is None:
                return sorted(self._searched.values(), key=lambda r: (r.generation, r.genome))
            with self._guard():
                rows = self._db.execute(
                    "SELECT generation, genome, fitness, pass_rate, rests_on, data FROM searched"
                    " ORDER BY generation, genome"
                ).fetchall()
            return [
                SearchRecord(int(g), str(h), float(f), float(p), int(n), str(d)) for g, h, f, p, n, d in rows
            ]

    def best_searched(self, top: int) -> list[SearchRecord]:
        """The ``top`` best distinct genomes by search fitness over every generation: each genome's best
        score (on a tie, its earliest), best first; ties between genomes go to the earlier generation,
        then the smaller hash, so the choice depends on nothing but the scores."""
        best: dict[str, SearchRecord] = {}
        for r in self.searched():
            held = best.get(r.genome)
            if held is None or r.fitness > held.fitness:
                best[r.genome] = r
        ranked = sorted(best.values(), key=lambda r: (-r.fitness, r.generation, r.genome))
        return ranked[:top]

    def __contains__(self, key: str) -> bool:
        with self._lock:
            if key in self._memory:
                return True
            if self._db is None:
                return False
            return self._db.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            if self._db is None:
                return len(self._memory)
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "memory"
        return f"ResultStore({where}, {len(self)} results)"


# -- seeds ---------------------------------------------------------------------------------------


def repeat_seeds(seed: int, repeats: int) -> tuple[int, ...]:
    """The sampling seed of each repeat: repeat r always gets the same seed for the same ``seed``,
    so asking for more repeats adds seeds and keeps the earlier ones."""
    return tuple(derive_seed("neatpipe-repeat", seed, r) for r in range(repeats))


# -- racing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Racing:
    """Score everyone on a first slice of the problems, then extend only the genomes that could
    still be among the ``top_k`` best.

    After each round, a genome's fitness interval is the confidence interval of its pass rate
    (``bound``: ``wilson`` or ``hoeffding``, over problems x repeats) minus its penalty. The
    threshold is the ``top_k``-th largest lower bound; a genome whose upper bound is below it is
    dropped and keeps the evaluation it has. Survivors get ``growth`` times more problems next
    round, until the whole set is used. The genome with the highest current fitness is never
    dropped: its upper bound is at least its mean, which is at least everyone's lower bound.
    ``margin`` (optional) also keeps every genome whose current fitness is within ``margin`` of
    the best current fitness, whatever the bounds say.
    """

    first: int = 10
    growth: float = 2.0
    confidence: float = 0.95
    bound: str = "wilson"
    top_k: int = 1
    shuffle: bool = True  # race on a seeded shuffle of the problems, so slices are not benchmark order
    margin: float | None = None

    def __post_init__(self) -> None:
        if self.first < 1:
            raise ValueError(f"racing: first slice must hold at least one problem, got {self.first}")
        if self.growth <= 1:
            raise ValueError(f"racing: growth must be above 1, got {self.growth}")
        if self.bound not in BOUNDS:
            raise ValueError(f"racing: unknown bound {self.bound!r}; choose one of {', '.join(BOUNDS)}")
        if self.top_k < 1:
            raise ValueError(f"racing: top_k must be at least 1, got {self.top_k}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"racing: confidence must be between 0 and 1, got {self.confidence}")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"racing: margin must not be negative, got {self.margin}")

    def sizes(self, total: int) -> list[int]:
        """Slice sizes round by round for ``total`` problems."""
        out = [min(self.first, total)]
        while out[-1] < total:
            out.append(min(total, max(out[-1] + 1, math.ceil(out[-1] * self.growth))))
        return out


@dataclass(frozen=True)
class RaceRound:
    """One round of a race: the slice size, how many genomes (distinct pipelines) it scored, and
    which were dropped after it, with the threshold they missed."""

    problems: int
    scored: int
    dropped: tuple[str, ...]
    threshold: float | None


# -- the evaluator -------------------------------------------------------------------------------


def _as_problems(problems: ProblemSet | Sequence[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if p.task_id not in seen:
            seen.add(p.task_id)
            out.append(p)
    if not out:
        raise ValueError("no problems to evaluate on")
    return out


def _identity(backend: Any) -> str:
    try:
        ident = backend.identity()
    except (AttributeError, NotImplementedError, TypeError):
        ident = None
    return str(ident) if ident else f"{type(backend).__module__}.{type(backend).__qualname__}"


def _genome_models(genome: Any) -> set[str]:
    nodes = getattr(genome, "nodes", {}) or {}
    return {g.model for g in nodes.values() if getattr(g, "model", None)}


def _default_runner() -> Callable[..., Any]:
    from neatpipe.runtime import run_pipeline

    return run_pipeline


def _label(key: Any, genome: Any) -> str:
    description = getattr(genome, "description", "") or ""
    return description or (f"genome {key}" if key is not None else genome.behaviour_hash()[:12])


class Evaluator:
    """Scores genomes on problems with ``repeats`` repeats, reusing every earlier problem evaluation.

    ``models`` maps the model names genomes use to backends; ``sandbox`` is a started sandbox;
    ``feedback`` is the experiment's feedback policy (``visible``, ``hidden``, or ``None`` for each
    executor's own setting). ``result_cache``: ``True`` (a store in memory), ``False`` (no reuse),
    a ``ResultStore``, or a path to an SQLite store. ``runner`` is the function that runs a genome
    over problems (default ``neatpipe.runtime.run_pipeline``); ``on_run`` is called with every
    ``PipelineRun`` (e.g. to write trajectories). ``context`` is extra text that separates stored
    results (e.g. a prompt-pool version); the feedback policy and every model's identity are
    always part of it.

    Counters: ``runner_calls`` (calls to ``runner``), ``problem_runs`` (problem evaluations run)
    and ``problem_reuses`` (problem evaluations served by the store).
    """

    def __init__(
        self,
        models: Mapping[str, Any],
        sandbox: Any,
        *,
        feedback: str | None = "visible",
        penalty: Penalty = STUDY_PENALTY,
        repeats: int = 1,
        seed: int = 0,
        result_cache: bool | ResultStore | str | os.PathLike[str] = True,
        runner: Callable[..., Any] | None = None,
        on_run: Callable[[Any], None] | None = None,
        context: str = "",
    ) -> None:
        if feedback not in FEEDBACK_POLICIES:
            raise ValueError(f"feedback must be 'visible', 'hidden' or None, got {feedback!r}")
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        self.models = models
        self.sandbox = sandbox
        self.feedback = feedback
        self.penalty = penalty
        self.repeats = repeats
        self.seed = seed
        self.runner = runner if runner is not None else _default_runner()
        self.on_run = on_run
        if isinstance(result_cache, ResultStore):
            self.store: ResultStore | None = result_cache
        elif result_cache is True:
            self.store = ResultStore()
        elif result_cache is False or result_cache is None:
            self.store = None
        else:
            self.store = ResultStore(result_cache)
        identities = {name: _identity(b) for name, b in sorted(models.items())}
        self.context = hashlib.sha256(
            json.dumps({"feedback": self.feedback, "models": identities, "extra": context}).encode()
        ).hexdigest()[:16]
        self._synthetic = {name: bool(getattr(b, "synthetic", False)) for name, b in models.items()}
        self.runner_calls = 0
        self.problem_runs = 0
        self.problem_reuses = 0
        self.last_race: list[RaceRound] = []

    # -- seeds and keys ----------------------------------------------------------------------

    def seeds(self, repeats: int | None = None) -> tuple[int, ...]:
        return repeat_seeds(self.seed, repeats or self.repeats)

    @property
    def feedback_source(self) -> str:
        return self.feedback or "genome"

    @contextmanager
    def observing_runs(self, observer: Callable[[Any], None]) -> Iterator[None]:
        """Inside the block, ``observer(run)`` sees every ``PipelineRun`` as soon as it is made, before
        its results are stored (``on_run`` is still called)."""
        previous = self.on_run

        def both(run: Any) -> None:
            observer(run)
            if previous is not None:
                previous(run)

        self.on_run = both
        try:
            yield
        finally:
            self.on_run = previous

    @contextmanager
    def collecting_runs(self) -> Iterator[list[Any]]:
        """Every ``PipelineRun`` made inside the block, in a list (``on_run`` is still called)."""
        runs: list[Any] = []
        with self.observing_runs(runs.append):
            yield runs

    def _uses_synthetic(self, genome: Any) -> bool:
        used = _genome_models(genome) & set(self._synthetic)
        return any(self._synthetic[m] for m in (used or self._synthetic))

    # -- running what is missing -------------------------------------------------------------

    def _ensure(
        self,
        genome: Any,
        genome_hash: str,
        problems: list[Problem],
        seeds: tuple[int, ...],
        store: ResultStore | None,
        label: str,
    ) -> tuple[dict[tuple[str, int], ProblemResult], int, float]:
        """Results for every (problem, seed), running only what ``store`` lacks: one runner call per
        repeat over that repeat's missing problems. Returns the results, how many were run, and the
        wall time of the runs."""
        found: dict[tuple[str, int], ProblemResult] = {}
        ran = 0
        wall = 0.0
        synthetic = self._uses_synthetic(genome)
        for repeat, seed in enumerate(seeds):
            keys = {p.task_id: result_key(self.context, genome_hash, p, seed) for p in problems}
            missing = []
            for p in problems:
                hit = store.get(keys[p.task_id]) if store is not None else None
                if hit is None:
                    missing.append(p)
                else:
                    found[(p.task_id, seed)] = hit
                    self.problem_reuses += 1
            if not missing:
                continue
            started = time.perf_counter()
            run = self.runner(
                genome,
                missing,
                self.models,
                self.sandbox,
                feedback=self.feedback,
                seed=seed,
                repeat=repeat,
                label=label,
            )
            elapsed = time.perf_counter() - started
            self.runner_calls += 1
            if self.on_run is not None:
                self.on_run(run)
            trajectories = list(_get(run, "trajectories", ()))
            if len(trajectories) != len(missing):
                raise RuntimeError(
                    f"runner returned {len(trajectories)} trajectories for {len(missing)} problems"
                )
            batch = []
            for p, t in zip(missing, trajectories, strict=True):
                result = result_from_trajectory(t, seed, synthetic)
                if result.task_id != p.task_id:
                    raise RuntimeError(f"runner returned {result.task_id!r} where {p.task_id!r} was expected")
                found[(p.task_id, seed)] = result
                batch.append((keys[p.task_id], result))
            if store is not None:
                store.put_many(batch)
            ran += len(missing)
            self.problem_runs += len(missing)
            wall += float(_get(run, "wall_s", elapsed) or elapsed)
        return found, ran, wall

    def _score(
        self,
        genome: Any,
        problems: list[Problem],
        repeats: int,
        label: str,
        store: ResultStore | None,
        racing_rounds: int = 0,
    ) -> Evaluation:
        ghash = genome.behaviour_hash()
        seeds = self.seeds(repeats)
        benchmark = ",".join(sorted({p.benchmark for p in problems}))
        try:
            found, ran, wall = self._ensure(genome, ghash, problems, seeds, store, label)
        except GenomeError as exc:  # a genome that cannot run scores 0, explicitly
            penalty = self.penalty.value(genome, 0.0)
            return Evaluation(
                genome=ghash,
                label=label,
                benchmark=benchmark,
                problems=tuple(p.task_id for p in problems),
                repeats=repeats,
                seeds=seeds,
                pass_rates=tuple(0.0 for _ in seeds),
                mean=0.0,
                sd=0.0 if repeats > 1 else None,
                per_problem={p.task_id: 0 for p in problems},
                prompt_tokens=0,
                completion_tokens=0,
                model_calls=0,
                cache_hits=0,
                wall_s=0.0,
                feedback=self.feedback_source,
                synthetic=self._uses_synthetic(genome),
                penalty=penalty,
                fitness=fitness_of(0.0, penalty),
                rests_on=0,
                penalty_spec=self.penalty.to_dict(),
                racing_rounds=racing_rounds,
                error=f"{type(exc).__name__}: {exc}",
            )
        results = list(found.values())
        pass_rates = tuple(sum(found[(p.task_id, s)].passed for p in problems) / len(problems) for s in seeds)
        mean, sd = mean_sd(pass_rates)
        rests_on = len(results)
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in results)
        penalty = self.penalty.value(genome, tokens / rests_on if rests_on else 0.0)
        return Evaluation(
            genome=ghash,
            label=label,
            benchmark=benchmark,
            problems=tuple(p.task_id for p in problems),
            repeats=repeats,
            seeds=seeds,
            pass_rates=pass_rates,
            mean=mean,
            sd=sd,
            per_problem={p.task_id: sum(found[(p.task_id, s)].passed for s in seeds) for p in problems},
            prompt_tokens=sum(r.prompt_tokens for r in results),
            completion_tokens=sum(r.completion_tokens for r in results),
            model_calls=sum(r.model_calls for r in results),
            cache_hits=sum(r.cache_hits for r in results),
            wall_s=wall,
            feedback=self.feedback_source,
            synthetic=any(r.synthetic for r in results) or self._uses_synthetic(genome),
            penalty=penalty,
            fitness=fitness_of(mean, penalty),
            rests_on=rests_on,
            new_evaluations=ran,
            penalty_spec=self.penalty.to_dict(),
            racing_rounds=racing_rounds,
        )

    # -- public API --------------------------------------------------------------------------

    def evaluate(
        self,
        genome: Any,
        problems: ProblemSet | Sequence[Problem],
        repeats: int | None = None,
        *,
        label: str | None = None,
    ) -> Evaluation:
        """``genome`` on ``problems`` with ``repeats`` repeats (default: the evaluator's), paying only
        for the problem evaluations the store does not hold yet."""
        repeats = repeats or self.repeats
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        return self._score(
            genome,
            _as_problems(problems),
            repeats,
            label or _label(getattr(genome, "key", None), genome),
            self.store,
        )

    def evaluate_population(
        self,
        genomes: Iterable[tuple[Any, Any]],
        problems: ProblemSet | Sequence[Problem],
        repeats: int | None = None,
        *,
        racing: Racing | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[Any, Evaluation]:
        """Evaluations of ``(key, genome)`` pairs, by key, in input order. Genomes with the same
        behaviour hash are scored once. With ``racing``, genomes that cannot be among the best are
        dropped early (``Evaluation.problems`` and ``rests_on`` say how far each was scored;
        ``last_race`` has the rounds). ``progress(done, total)`` is called after each distinct genome
        is scored (with racing: after each genome's score in each round, over all rounds' work)."""
        pairs = list(genomes)
        repeats = repeats or self.repeats
        plist = _as_problems(problems)
        groups: dict[str, list[tuple[Any, Any]]] = {}
        for key, genome in pairs:
            groups.setdefault(genome.behaviour_hash(), []).append((key, genome))
        by_hash: dict[str, Evaluation]
        if racing is None:
            self.last_race = []
            by_hash = {}
            for done, (h, members) in enumerate(groups.items(), start=1):
                by_hash[h] = self._score(members[0][1], plist, repeats, _label(*members[0]), self.store)
                if progress is not None:
                    progress(done, len(groups))
        else:
            by_hash = self._race(groups, plist, repeats, racing, progress)
        out = {}
        for key, genome in pairs:
            ev = by_hash[genome.behaviour_hash()]
            label = _label(key, genome)
            out[key] = ev if ev.label == label else _relabel(ev, label)
        return out

    def _race(
        self,
        groups: Mapping[str, list[tuple[Any, Any]]],
        plist: list[Problem],
        repeats: int,
        racing: Racing,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Evaluation]:
        order = list(plist)
        if racing.shuffle:
            random.Random(derive_seed("neatpipe-race", self.seed, *(p.task_id for p in plist))).shuffle(order)
        store = self.store if self.store is not None else ResultStore()
        alive = list(groups)
        latest: dict[str, Evaluation] = {}
        self.last_race = []
        sizes = racing.sizes(len(order))
        for round_no, size in enumerate(sizes, start=1):
            part = order[:size]
            for i, h in enumerate(alive, start=1):
                key, genome = groups[h][0]
                latest[h] = self._score(
                    genome, part, repeats, _label(key, genome), store, racing_rounds=round_no
                )
                if progress is not None:
                    progress(i, len(alive))
            if size == len(order) or len(alive) <= racing.top_k:
                self.last_race.append(RaceRound(size, len(alive), (), None))
                if size == len(order):
                    break
                continue
            lower = {}
            upper = {}
            for h in alive:
                ev = latest[h]
                lo, hi = ev.interval(racing.confidence, racing.bound)
                lower[h], upper[h] = lo - ev.penalty, hi - ev.penalty
            threshold = sorted(lower.values(), reverse=True)[racing.top_k - 1]
            best = max(latest[h].fitness for h in alive)
            dropped = tuple(
                h
                for h in alive
                if upper[h] < threshold
                and (racing.margin is None or latest[h].fitness < best - racing.margin)
            )
            self.last_race.append(RaceRound(size, len(alive), dropped, threshold))
            alive = [h for h in alive if h not in dropped]
        return latest

    def validate_champions(
        self,
        genomes: Iterable[Any],
        held_out_problems: ProblemSet | Sequence[Problem],
        repeats: int = 5,
        *,
        search: Mapping[Any, Evaluation] | None = None,
    ) -> list[ValidationResult]:
        """Re-scores each genome (or ``(key, genome)`` pair) on held-out problems with ``repeats``
        repeats and sets the result next to its search score. ``search`` maps keys to the search
        evaluations; without it the genome's own ``fitness`` is the search score."""
        out = []
        for item in genomes:
            key, genome = item if isinstance(item, tuple) else (getattr(item, "key", None), item)
            label = _label(key, genome)
            validated = self._score(genome, _as_problems(held_out_problems), repeats, label, self.store)
            found = search.get(key) if search is not None else None
            if found is not None:
                out.append(
                    ValidationResult(
                        key, validated.genome, label, found.fitness, found.mean, found.rests_on, validated
                    )
                )
            else:
                fitness = getattr(genome, "fitness", None)
                if fitness is None:
                    raise ValueError(f"{label}: no search evaluation given and the genome has no fitness")
                out.append(
                    ValidationResult(key, validated.genome, label, float(fitness), None, None, validated)
                )
        return out


def _relabel(ev: Evaluation, label: str) -> Evaluation:
    from dataclasses import replace

    return replace(ev, label=label)


# -- champion validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationResult:
    """A champion's search score next to its score on held-out problems with n repeats.

    ``inflation`` is the search pass rate minus the validated mean pass rate when the search
    evaluation is known (``inflation_basis == "pass_rate"``), else the search fitness minus the
    validated fitness (``"fitness"``; the same number under a node or call penalty, which does not
    depend on the problems)."""

    key: Any
    genome: str
    label: str
    search_fitness: float
    search_pass_rate: float | None
    search_rests_on: int | None
    validated: Evaluation

    @property
    def validated_mean(self) -> float:
        return self.validated.mean

    @property
    def validated_sd(self) -> float | None:
        return self.validated.sd

    @property
    def validated_fitness(self) -> float:
        return self.validated.fitness

    @property
    def inflation_basis(self) -> str:
        return "pass_rate" if self.search_pass_rate is not None else "fitness"

    @property
    def inflation(self) -> float:
        if self.search_pass_rate is not None:
            return self.search_pass_rate - self.validated.mean
        return self.search_fitness - self.validated.fitness

    def summary(self) -> str:
        sd = f" +/- {self.validated_sd:.3f}" if self.validated_sd is not None else ""
        search = self.search_pass_rate if self.search_pass_rate is not None else self.search_fitness
        return (
            f"{self.label}: search {self.inflation_basis.replace('_', ' ')} {search:.3f}, held-out"
            f" {self.validated_mean:.3f}{sd} ({len(self.validated.problems)} problems x"
            f" {self.validated.repeats}), inflation {self.inflation:+.3f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "genome": self.genome,
            "label": self.label,
            "search_fitness": self.search_fitness,
            "search_pass_rate": self.search_pass_rate,
            "search_rests_on": self.search_rests_on,
            "validated_mean": self.validated_mean,
            "validated_sd": self.validated_sd,
            "validated_fitness": self.validated_fitness,
            "inflation": self.inflation,
            "inflation_basis": self.inflation_basis,
            "validated": self.validated.to_dict(),
        }


def validate_champions(
    evaluator: Evaluator,
    genomes: Iterable[Any],
    held_out_problems: ProblemSet | Sequence[Problem],
    repeats: int = 5,
    *,
    search: Mapping[Any, Evaluation] | None = None,
) -> list[ValidationResult]:
    """``evaluator.validate_champions(...)`` as a function."""
    return evaluator.validate_champions(genomes, held_out_problems, repeats, search=search)


# -- subsets per generation and the neat-python fitness function ---------------------------------


@dataclass
class GenerationRecord:
    """What one call of the neat fitness function did."""

    generation: int
    problems: tuple[str, ...]
    genomes: int
    distinct: int
    problem_runs: int
    problem_reuses: int
    best_key: Any
    best_fitness: float
    race: list[RaceRound] = field(default_factory=list)


class NeatFitness:
    """neat-python 2.0's fitness function: ``population.run(fitness, n)`` calls
    ``fitness(genomes, config)`` with a list of ``(genome_id, genome)`` pairs once per generation;
    this sets each ``genome.fitness``. ``evaluations`` holds the last generation's evaluations by
    genome id and ``history`` one ``GenerationRecord`` per generation."""

    def __init__(
        self,
        evaluator: Evaluator,
        problems: SubsetSchedule | ProblemSet | Sequence[Problem] | Callable[[int], Sequence[Problem]],
        *,
        repeats: int | None = None,
        racing: Racing | None = None,
        start_generation: int = 0,
        on_generation: Callable[[GenerationRecord, dict[Any, Evaluation]], None] | None = None,
        progress: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.schedule = problems
        self.repeats = repeats
        self.racing = racing
        self.generation = start_generation
        self.on_generation = on_generation
        self.progress = progress  # progress(generation, done, total) per distinct genome scored
        self.evaluations: dict[Any, Evaluation] = {}
        self.history: list[GenerationRecord] = []

    def problems_for(self, generation: int) -> ProblemSet | Sequence[Problem]:
        """The generation's problems: from a ``SubsetSchedule``, a function of the generation, or fixed."""
        if isinstance(self.schedule, SubsetSchedule):
            return self.schedule.for_generation(generation)
        if callable(self.schedule):
            return self.schedule(generation)
        return self.schedule

    def __call__(self, genomes: list[tuple[Any, Any]], config: Any) -> None:
        problems = self.problems_for(self.generation)
        runs, reuses = self.evaluator.problem_runs, self.evaluator.problem_reuses
        generation, progress = self.generation, self.progress
        evaluations = self.evaluator.evaluate_population(
            genomes,
            problems,
            self.repeats,
            racing=self.racing,
            progress=None if progress is None else lambda done, total: progress(generation, done, total),
        )
        for key, genome in genomes:
            genome.fitness = float(evaluations[key].fitness)
        best_key = max(evaluations, key=lambda k: evaluations[k].fitness)
        record = GenerationRecord(
            generation=self.generation,
            problems=tuple(p.task_id for p in problems),
            genomes=len(genomes),
            distinct=len({e.genome for e in evaluations.values()}),
            problem_runs=self.evaluator.problem_runs - runs,
            problem_reuses=self.evaluator.problem_reuses - reuses,
            best_key=best_key,
            best_fitness=evaluations[best_key].fitness,
            race=list(self.evaluator.last_race) if self.racing else [],
        )
        self.evaluations = evaluations
        self.history.append(record)
        if self.on_generation is not None:
            self.on_generation(record, evaluations)
        self.generation += 1


#: The callable to hand to ``neat.Population.run(fitness_function, n)`` (the class itself).
neat_fitness_function = NeatFitness
