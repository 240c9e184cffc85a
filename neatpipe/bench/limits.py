"""Per-problem CPU-time limits derived from what each reference solution costs on this machine.

A problem's limit is ``max(floor, factor x the CPU time its reference solution needs to pass the
hidden tests)``, capped at a ceiling: a problem whose reference is slow (Mbpp/123's needs about
2.7 s) gets room in proportion, and no problem gets less than the floor.
Limits are CPU time, which other processes on the machine barely change (see ``docs/sandbox.md``),
so a verdict does not depend on how busy the machine is.

Each reference is measured once per machine and interpreter, and the cost is stored in a JSON file
(:func:`default_cache_path`): every later run, and every process on the machine, uses the same
numbers, so verdicts do not flip between runs. A cost is keyed by the problem's content (task id,
reference, test setup and tests), so an edited benchmark file is measured again.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neatpipe.bench.assemble import assemble, reference_answer
from neatpipe.bench.humaneval import BenchmarkDataError
from neatpipe.bench.mbpp import cache_dir
from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.io import atomic_write_text
from neatpipe.sandbox.program import ExecResult, Program

FORMAT = "neatpipe-reference-costs/1"


@dataclass(frozen=True)
class TimeLimitPolicy:
    """How a problem's CPU-time limit follows from its reference's cost (seconds of CPU time).

    The defaults are generous on purpose. The floor is a problem's default limit (``Problem.time_limit_s``):
    a correct program written far less efficiently than a millisecond reference (HumanEval/129's real
    answers need 2.5 s) keeps the verdict it had before limits were derived. The factor covers CPU
    time that grows on a loaded machine (shared caches, a sibling hyper-thread), which is far less than
    wall time grows but not nothing.
    """

    floor_s: float = 6.0
    factor: float = 4.0
    ceiling_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("floor_s", "factor", "ceiling_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"TimeLimitPolicy.{name} must be a positive number, got {value!r}")
        if self.ceiling_s < self.floor_s:
            raise ValueError(
                f"TimeLimitPolicy.ceiling_s ({self.ceiling_s}) is below floor_s ({self.floor_s})"
            )

    def limit(self, cost_s: float) -> float:
        """The CPU-time limit of a problem whose reference needs ``cost_s`` seconds."""
        return round(min(self.ceiling_s, max(self.floor_s, self.factor * cost_s)), 3)

    def describe(self) -> str:
        return f"max({self.floor_s:g} s, {self.factor:g} x reference CPU time), at most {self.ceiling_s:g} s"


def problem_key(problem: Problem) -> str:
    """What a measured cost belongs to: the problem's identity and everything the reference runs."""
    parts = [problem.benchmark, problem.task_id, problem.reference_solution, problem.context,
             problem.test_setup, list(problem.hidden_tests)]  # fmt: skip
    if problem.plus_tests:  # HumanEval+ / MBPP+: the plus inputs are measured too
        parts += [problem.plus_setup, list(problem.plus_tests)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def machine_tag() -> str:
    """This machine and interpreter, as a file-name part: costs measured elsewhere do not apply here."""
    tag = f"{platform.node() or 'host'}-{platform.machine() or 'cpu'}-{sys.implementation.cache_tag}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)[:120]


def default_cache_path() -> Path:
    """``$NEATPIPE_CACHE_DIR`` (or ``~/.cache/neatpipe``) ``/reference-costs/<machine>.json``."""
    return cache_dir() / "reference-costs" / f"{machine_tag()}.json"


class ReferenceCosts:
    """The CPU time each problem's reference solution needs on this machine, measured once and stored.

    :meth:`costs` measures the problems the file does not know yet (in one sandbox batch) and adds
    them. Processes that share the file take turns (an advisory lock held while measuring), so all of
    them use the same numbers; the file is replaced atomically, never left half written.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.measured = 0  # references run by this object (a figure for logs and tests)

    def costs(self, problems: Iterable[Problem], sandbox: Any) -> dict[str, float]:
        """``task_id -> CPU seconds`` for ``problems``; ``sandbox`` runs the missing references
        (anything with ``run_many``)."""
        problems = list(problems)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stored = self._read()
            keys = [problem_key(p) for p in problems]
            missing = {k: p for k, p in zip(keys, problems, strict=True) if k not in stored}
            if missing:
                stored.update(self._measure(list(missing.values()), sandbox))
                self._write(stored)
        return {p.task_id: stored[k]["cpu_s"] for k, p in zip(keys, problems, strict=True)}

    def _measure(self, problems: list[Problem], sandbox: Any) -> dict[str, dict[str, Any]]:
        limit = TimeLimitPolicy().ceiling_s
        # the largest test set a problem has: HumanEval+ / MBPP+ limits cover base and plus inputs, as
        # one limit serves both runs (the reference runs as candidate and as the oracle: twice its cost)
        programs: list[Program] = [
            assemble(
                p,
                reference_answer(p, "chat"),
                tests="plus" if p.plus_tests else "hidden",
                extract=False,
                timeout_s=limit,
            )  # fmt: skip
            for p in problems
        ]
        results: list[ExecResult] = list(sandbox.run_many(programs))
        if len(results) != len(programs):
            raise RuntimeError(f"sandbox returned {len(results)} results for {len(programs)} programs")
        self.measured += len(programs)
        return {
            problem_key(p): {
                "task_id": p.task_id,
                "cpu_s": round(float(r.extra.get("cpu_s", limit)), 4),
                "status": r.status.value,
            }  # fmt: skip
            for p, r in zip(problems, results, strict=True)
        }

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise BenchmarkDataError(f"cannot read reference costs {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
            costs = data["costs"] if data.get("format") == FORMAT else None
            if not isinstance(costs, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("cpu_s"), int | float) for v in costs.values()
            ):
                raise ValueError(f"not a {FORMAT} file")
        except (ValueError, AttributeError, KeyError) as exc:
            raise BenchmarkDataError(
                f"{self.path}: not a reference-costs file ({str(exc)[:200]}); delete it to measure again"
            ) from None
        return costs

    def _write(self, costs: dict[str, dict[str, Any]]) -> None:
        data = {"format": FORMAT, "machine": machine_tag(), "costs": dict(sorted(costs.items()))}
        atomic_write_text(self.path, json.dumps(data, indent=1))


def with_time_limits(
    problems: ProblemSet,
    sandbox: Any,
    policy: TimeLimitPolicy | None = None,
    costs: ReferenceCosts | None = None,
) -> ProblemSet:
    """``problems`` with each ``time_limit_s`` (the CPU-time limit of its hidden and visible tests) set
    from its reference's measured cost; the policy and the cost file are recorded in the set's options.

    ``sandbox`` runs the references this machine has not measured yet (once; see :class:`ReferenceCosts`).
    """
    policy = policy or TimeLimitPolicy()
    costs = costs or ReferenceCosts()
    measured = costs.costs(problems, sandbox)
    limited = tuple(dataclasses.replace(p, time_limit_s=policy.limit(measured[p.task_id])) for p in problems)
    options = {**problems.options, "time_limits": f"{policy.describe()}; costs: {costs.path}"}
    return ProblemSet(problems.benchmark, limited, options)
