"""The result store: every problem evaluation paid for, and every genome's search score per generation.

The unit of work is one *problem evaluation*: a genome (by behaviour hash) on one problem with one
repeat seed, under one evaluation context (feedback policy and the exact models). Its key also holds a
digest of the problem's text, tests and time limit, so a store never answers for another model or a
changed problem. A store in memory is an explicit memo; one on disk (SQLite, WAL) carries results
across generations, sessions and runs, and keeps the search scores champions are chosen from.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from neatpipe.bench.problem import Problem
from neatpipe.errors import NeatpipeError


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


def get_field(obj: Any, name: str, default: Any = None) -> Any:
    """An attribute of a dataclass-like object or a key of a mapping."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def result_from_trajectory(trajectory: Any, seed: int, synthetic: bool = False) -> ProblemResult:
    """The ``ProblemResult`` of one runtime trajectory (object or its JSON dictionary)."""
    steps = get_field(trajectory, "steps", ()) or ()
    final = get_field(trajectory, "final")
    calls = get_field(trajectory, "model_calls")
    cached = sum(1 for s in steps if get_field(s, "cached", False))
    if calls is None:
        calls = sum(1 for s in steps if get_field(s, "model") is not None)
    return ProblemResult(
        task_id=str(get_field(trajectory, "task_id")),
        seed=int(seed),
        passed=bool(get_field(trajectory, "passed", False)),
        prompt_tokens=int(get_field(trajectory, "prompt_tokens", 0) or 0),
        completion_tokens=int(get_field(trajectory, "completion_tokens", 0) or 0),
        model_calls=int(calls or 0),
        cache_hits=int(cached),
        duration_s=float(get_field(trajectory, "duration_s", 0.0) or 0.0),
        error_type=get_field(final, "error_type") if final is not None else None,
        synthetic=bool(get_field(trajectory, "synthetic", synthetic)),
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
