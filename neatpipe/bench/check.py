"""Run reference solutions or model samples through assembly and the sandbox, like a reference harness.

``check_references`` proves the benchmark plumbing: every reference solution, written as a model would
answer in either style, must pass. ``check_samples`` scores a JSONL file of model answers
(``{"task_id": ..., "completion": ...}`` per line, completion in either style). On HumanEval+ and
MBPP+ every answer runs twice, on the base inputs and on base plus the added inputs, and the report
gives both pass counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neatpipe.bench.assemble import assemble, reference_answer
from neatpipe.bench.problem import ProblemSet
from neatpipe.errors import NeatpipeError, shown
from neatpipe.io import FileError, read_text
from neatpipe.sandbox.program import ExecResult


@dataclass(frozen=True)
class SampleResult:
    task_id: str
    result: ExecResult  # on the hidden tests (HumanEval+ / MBPP+: the base inputs)
    plus: ExecResult | None = None  # HumanEval+ / MBPP+: on base and plus inputs

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        extra: dict[str, Any] = {}
        if self.plus is not None:
            extra = {
                "plus_passed": self.plus.passed,
                "plus_status": self.plus.status.value,
                "plus_failing_test": self.plus.failing_test,
                "plus_message": self.plus.message,
            }
        return {
            "task_id": self.task_id,
            "passed": r.passed,
            "status": r.status.value,
            "error_type": r.error_type,
            "message": r.message,
            "failing_test": r.failing_test,
            "duration_s": round(r.duration_s, 4),
            "cpu_s": r.extra.get("cpu_s"),
            "cpu_limit_s": r.cpu_limit_s,
            "wall_limit_s": r.wall_limit_s,
            **extra,
        }


@dataclass(frozen=True)
class CheckReport:
    benchmark: str
    what: str  # "references (chat style)" or the samples file
    results: tuple[SampleResult, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(s.result.passed for s in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def failures(self) -> list[SampleResult]:
        return [s for s in self.results if not s.result.passed]

    @property
    def plus_passed(self) -> int | None:
        """How many passed base and plus inputs (None for a benchmark without plus tests)."""
        if not self.results or any(s.plus is None for s in self.results):
            return None
        return sum(bool(s.plus and s.plus.passed) for s in self.results)

    @property
    def plus_failures(self) -> list[SampleResult]:
        """Answers that pass the base inputs and fail the plus ones."""
        return [s for s in self.results if s.result.passed and s.plus is not None and not s.plus.passed]

    @property
    def all_passed(self) -> bool:
        return self.passed == self.total and self.plus_passed in (None, self.total)

    def to_dict(self) -> dict[str, Any]:
        plus = {}
        if self.plus_passed is not None:
            plus = {
                "plus_passed": self.plus_passed,
                "plus_failures": [s.to_dict() for s in self.plus_failures],
            }
        return {
            "benchmark": self.benchmark,
            "checked": self.what,
            "passed": self.passed,
            "total": self.total,
            **plus,
            "failures": [s.to_dict() for s in self.failures],
            "results": [s.to_dict() for s in self.results],
            "options": self.options,
        }


class SamplesFileError(NeatpipeError, ValueError):
    """A samples file line is not a JSON object with ``task_id`` and ``completion``; names file and line."""


def read_samples(path: str | Path, problems: ProblemSet) -> list[tuple[str, str]]:
    """``(task_id, completion)`` pairs from a JSONL samples file, each task id checked against ``problems``."""
    p = Path(path)
    known = set(problems.task_ids)
    samples: list[tuple[str, str]] = []
    try:
        lines = read_text(p).splitlines()
    except FileError as exc:
        raise SamplesFileError(f"samples file {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SamplesFileError(f"{p}, line {n}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("task_id"), str | int):
            raise SamplesFileError(f"{p}, line {n}: needs a 'task_id' field")
        if not isinstance(record.get("completion"), str):
            raise SamplesFileError(f"{p}, line {n}: needs a 'completion' string")
        task_id = str(record["task_id"])
        if task_id not in known and f"Mbpp/{task_id}" in known:
            task_id = f"Mbpp/{task_id}"  # MBPP files often give the bare number
        if task_id not in known:
            raise SamplesFileError(
                f"{p}, line {n}: unknown task_id {shown(record['task_id'])} for {problems.benchmark}"
            )
        samples.append((task_id, record["completion"]))
    if not samples:
        raise SamplesFileError(f"samples file {p}: no samples (expected one JSON object per line)")
    return samples


def _run(
    problems: ProblemSet,
    answers: Iterable[tuple[str, str]],
    style: str,
    sandbox,
    progress: Callable[[int, int], None] | None,
) -> tuple[SampleResult, ...]:
    pairs = list(answers)
    programs = [assemble(problems[t], a, style=style) for t, a in pairs]
    plus = [i for i, (t, _) in enumerate(pairs) if problems[t].plus_tests]
    programs += [assemble(problems[pairs[i][0]], pairs[i][1], tests="plus", style=style) for i in plus]
    results = list(sandbox.run_many(programs, progress=progress))  # base and plus runs in one batch
    plus_results: dict[int, ExecResult] = dict(zip(plus, results[len(pairs) :], strict=True))
    return tuple(
        SampleResult(t, r, plus_results.get(i))
        for i, ((t, _), r) in enumerate(zip(pairs, results[: len(pairs)], strict=True))
    )


def check_references(problems: ProblemSet, style: str, sandbox, progress=None) -> CheckReport:
    """Every reference solution, answered in ``style`` (``completion`` or ``chat``), through the sandbox."""
    answers = [(p.task_id, reference_answer(p, style)) for p in problems]
    results = _run(problems, answers, style, sandbox, progress)
    return CheckReport(
        problems.benchmark, f"reference solutions ({style} style)", results, problems.describe()
    )


def check_samples(
    problems: ProblemSet, path: str | Path, sandbox, style: str = "auto", progress=None
) -> CheckReport:
    """Model answers from a JSONL samples file, each assembled in its own style unless ``style`` is fixed."""
    results = _run(problems, read_samples(path, problems), style, sandbox, progress)
    return CheckReport(problems.benchmark, str(path), results, problems.describe())
