"""Running fault candidates, so that the synthetic coder's faults fail the way they are meant to.

An edit meant to be an AssertionError may still pass the tests (the changed line is never reached) or
fail otherwise (an IndexError, a loop that never ends). The only way to know is to run it, so the coder
hands its candidates to a :class:`FaultChecker`, which runs them against the problem's hidden tests
through the runner it is given (the caller's sandbox: one pool for the evaluation's programs and these
checks) and remembers each outcome, so that every candidate runs once however many answers use it.
For standalone use (a coder built in a notebook, without a runner), the checker starts a private
sandbox on first need and stops it in :meth:`FaultChecker.close`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from neatpipe.bench.assemble import assemble, reference_answer
from neatpipe.bench.problem import Problem
from neatpipe.sandbox.program import ExecResult, Program

# Programs that check a fault candidate get this CPU-time limit (more for a problem whose reference is
# slow, see FaultChecker): candidates that loop forever are rejected quickly.
CHECK_TIMEOUT_S = 1.0

# runs a batch of programs and returns their results in order (a started Sandbox's run_many)
Runner = Callable[[Sequence[Program]], Sequence[ExecResult]]


class FaultChecker:
    """Runs fault candidates against their problem's hidden tests, once each, and remembers the outcome.

    The outcome of a program is a pure function of its code (up to timeouts on a badly overloaded
    machine), so memoising it keeps answers deterministic while paying for each run once. Share one
    checker between coders (``SyntheticCoder(..., checker=c)``) to share the memo. ``runner`` runs a
    batch of programs in order: the caller's started sandbox's ``run_many``, so that a run's programs and
    these checks share one pool. Without one (standalone use: a coder built on its own), the checker
    starts a private sandbox on first use and stops it in :meth:`close`.

    A candidate's CPU-time limit is ``timeout_s``, or three times the CPU time the problem's reference
    needs plus half a second when that is more (the reference is run once per problem to find out),
    capped at the problem's own limit: a candidate that loops forever costs little, a slow reference
    stays checkable.
    """

    def __init__(self, runner: Runner | None = None, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ValueError(f"FaultChecker timeout_s must be a number > 0, got {timeout_s!r}")
        self._runner = runner
        self._sandbox: Any = None
        self.timeout_s = float(timeout_s)
        self._memo: dict[tuple[str, str, str], str | None] = {}
        self._limits: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.programs_run = 0

    @staticmethod
    def _key(problem: Problem, code: str) -> tuple[str, str, str]:
        return (problem.benchmark, problem.task_id, hashlib.sha256(code.encode()).hexdigest())

    def known(self, problem: Problem, code: str) -> bool:
        """Whether ``code`` has been checked for ``problem`` already."""
        return self._key(problem, code) in self._memo

    def outcome(self, problem: Problem, code: str) -> str | None:
        """The error type the hidden tests gave (None: passed); the candidate must have been checked."""
        return self._memo[self._key(problem, code)]

    def check(self, items: Iterable[tuple[Problem, str]]) -> None:
        """Run every not-yet-checked ``(problem, code)`` in one batch."""
        with self._lock:
            todo: dict[tuple[str, str, str], tuple[Problem, str]] = {}
            for problem, code in items:
                key = self._key(problem, code)
                if key not in self._memo:
                    todo[key] = (problem, code)
            if not todo:
                return
            self._time_references([p for p, _ in todo.values()])
            programs = [
                assemble(
                    p,
                    code,
                    tests="hidden",
                    style="chat",
                    extract=False,
                    timeout_s=self._limits[(p.benchmark, p.task_id)],
                )
                for p, code in todo.values()
            ]
            results = self._run(programs)
            for key, result in zip(todo, results, strict=True):
                self._memo[key] = None if result.passed else (result.error_type or str(result.status))

    def _time_references(self, problems: Sequence[Problem]) -> None:
        """Run the reference of each problem not timed yet, and derive its candidates' CPU-time limit."""
        new = {(p.benchmark, p.task_id): p for p in problems if (p.benchmark, p.task_id) not in self._limits}
        if not new:
            return
        programs = [
            assemble(p, reference_answer(p, "chat"), tests="hidden", style="chat", extract=False)
            for p in new.values()
        ]
        for key, p, result in zip(new, new.values(), self._run(programs), strict=True):
            needed = 3.0 * result.extra.get("cpu_s", result.duration_s) + 0.5  # CPU time, as limits are
            self._limits[key] = min(p.time_limit_s, max(self.timeout_s, needed))

    def _run(self, programs: Sequence[Program]) -> list[ExecResult]:
        if self._runner is None:  # standalone use: a private pool, imported only then
            from neatpipe.sandbox import Sandbox

            self._sandbox = Sandbox().start()
            self._runner = self._sandbox.run_many
        results = list(self._runner(programs))
        if len(results) != len(programs):
            raise RuntimeError(f"fault checker: {len(results)} results for {len(programs)} programs")
        self.programs_run += len(programs)
        return results

    def close(self) -> None:
        """Stop the sandbox this checker started (a runner given by the caller is left alone)."""
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
            self._runner = None
