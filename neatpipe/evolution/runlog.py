"""The run directory of an evolution run: its layout, the per-generation log, and reading it back.

::

    RUN_DIR/
      experiment.yaml          the resolved experiment (every field explicit); --resume reads it
      neat-config.ini          the neat-python config generated from it
      generations.jsonl        one line per evaluated generation (GenerationLog)
      genomes/gen-0007.yaml    the best genome of each generation (+ .graphml, .svg)
      trajectories/gen-0007.jsonl.gz   trajectories of the genomes evaluated in that generation
      texts.sqlite             every prompt and answer the trajectories name, once per distinct text
                               (SHA-256 keys; see neatpipe.runtime.texts)
      evaluations.sqlite       every (genome, problem, repeat) result paid for, reused on resume, and
                               every genome's search score per generation (champions are chosen from it)
      checkpoints/gen-0008.pkl.gz   the population of the next generation (atomic; see checkpoint.py)
      run.json                 the run's state: the experiment's digest, the options it was started or
                               resumed with, and the latest checkpoint with its SHA-256
      .lock                    held by the process writing the run (released when it exits)
      progress.json            what the run is doing now (phase, generation, done / total), replaced
                               atomically at every step, for a dashboard to poll
      champion.yaml/.graphml/.svg, validation.json, summary.json   written when the run ends
      report.md, report.html, plots/   written by ``neatpipe report``

Every file is written atomically (temporary file, then rename) or appended one whole line at a time,
so a killed run never leaves a half-written file that reads as whole.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError, shown
from neatpipe.io import FileError, atomic_write_text, atomic_write_with, read_text

EXPERIMENT_FILE = "experiment.yaml"
NEAT_CONFIG_FILE = "neat-config.ini"
GENERATIONS_FILE = "generations.jsonl"
RUN_STATE_FILE = "run.json"
LOCK_FILE = ".lock"
RUN_STATE_FORMAT = "neatpipe-run/1"
EVALUATIONS_FILE = "evaluations.sqlite"
SUMMARY_FILE = "summary.json"
VALIDATION_FILE = "validation.json"
GENOMES_DIR = "genomes"
TRAJECTORIES_DIR = "trajectories"


class RunDirError(NeatpipeError, RuntimeError):
    """A run directory that is missing files or holds unreadable ones; names the path."""


@dataclass(frozen=True)
class GenerationLog:
    """What one evaluated generation looked like."""

    generation: int
    best_fitness: float
    mean_fitness: float
    sd_fitness: float
    best_pass_rate: float
    best_genome: str  # behaviour hash of the generation's best genome
    best_summary: str  # one line: roles and models of the best genome
    species: int
    species_sizes: list[int]
    mean_nodes: float
    best_nodes: int
    best_model_calls: int  # worst-case model calls per problem of the best genome
    problems: list[str]  # the task ids the generation was scored on
    evaluations_paid: int  # (genome, problem, repeat) results computed in this generation
    evaluations_reused: int  # results taken from earlier generations or identical genomes
    prompt_tokens: int
    completion_tokens: int
    model_calls: int
    cache_hits: int
    elapsed_s: float  # since the run started (wall time of all sessions of the run)
    synthetic: bool = False
    compatibility_threshold: float | None = None  # the species threshold this generation was split with
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.model_calls if self.model_calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationLog:
        """The record in ``data`` (unknown keys ignored); ``ValueError`` names a missing field or a
        number field that holds something else."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        for f in fields(cls):
            if f.name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise ValueError(f"field '{f.name}' is missing")
                continue
            value = data[f.name]
            if f.type in ("int", "float") and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ValueError(f"field '{f.name}' must be a number, got {shown(value)}")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (a line is whole or absent after a crash)."""
    append_lines(path, [record])


def append_lines(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append JSON lines and flush them to disk (after a crash the last one may be torn; readers skip it)."""
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    if not text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """A JSONL file, written atomically."""
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every whole JSON line of ``path``; a torn last line (a crash mid-write) is ignored."""
    if not path.exists():
        return []
    out = []
    try:
        lines = read_text(path).splitlines(keepends=True)
    except FileError as exc:
        raise RunDirError(str(exc)) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines) and not line.endswith("\n"):
                break  # torn last line
            raise RunDirError(f"{path}, line {n}: not JSON ({exc.msg})") from None
    return out


def write_history(path: Path, records: Iterable[GenerationLog]) -> None:
    write_jsonl(path, (r.to_dict() for r in records))


def read_history(run_dir: str | os.PathLike[str]) -> list[GenerationLog]:
    """The generation records of a run, in order, one per generation (a repeated generation, from a
    run resumed after a crash between its log line and its checkpoint, keeps its last line)."""
    by_gen: dict[int, GenerationLog] = {}
    path = Path(run_dir) / GENERATIONS_FILE
    for n, data in enumerate(read_jsonl(path), 1):
        try:
            record = GenerationLog.from_dict(data)
        except ValueError as exc:
            raise RunDirError(f"{path}, record {n}: {exc}") from None
        by_gen[record.generation] = record
    return [by_gen[g] for g in sorted(by_gen)]


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    if not path.exists():
        raise RunDirError(f"{path}: missing")
    try:
        return json.loads(read_text(path))
    except FileError as exc:
        raise RunDirError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not JSON ({exc.msg})") from None


def write_jsonl_gz(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """A gzipped JSONL file, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:
        with gzip.open(tmp, "wb") as f:
            for r in records:
                f.write((json.dumps(r, sort_keys=True) + "\n").encode("utf-8"))

    atomic_write_with(path, write)


def generation_stem(generation: int) -> str:
    return f"gen-{generation:04d}"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_run_state(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run directory (see the module's layout)."""
    state = read_json(run_dir / RUN_STATE_FILE)
    if not isinstance(state, dict) or state.get("format") != RUN_STATE_FORMAT:
        raise RunDirError(f"{run_dir / RUN_STATE_FILE}: not a neatpipe run state ({RUN_STATE_FORMAT})")
    return state


def write_run_state(run_dir: Path, state: dict[str, Any]) -> None:
    write_json(run_dir / RUN_STATE_FILE, {**state, "format": RUN_STATE_FORMAT})


class RunLock:
    """The one writer of a run directory: an exclusive ``flock`` on ``RUN_DIR/.lock``, taken at once or
    refused. The operating system releases it when the process exits, however it exits, so a lock left by
    a dead process never blocks a resume; the file keeps the holder's process id for the message."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot take the run's lock: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = self.path.read_text(encoding="utf-8", errors="replace").strip()[:20] or "?"
            raise RunDirError(
                f"{self.path.parent}: another process (pid {holder}) is writing this run; wait for it to "
                "finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
