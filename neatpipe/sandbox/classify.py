"""From what a worker observed about one child to an :class:`ExecResult`: a pure function.

The child reports events over its result channel (see :mod:`neatpipe.sandbox.child`); the worker
adds what only the outside can see: how the process ended, whether its CPU-time limit or the
wall-clock backstop killed it, how much CPU it used and how much it wrote. Keeping this step free of processes makes every verdict
unit-testable.

A program passes only when the event sequence is complete and well-ordered (``load``, one ``test``
event per test in order, ``end``), every test passed, nothing was tampered with, the process exited
with status 0 by itself, within its CPU-time limit, and its output stayed within the file-size limit.

The verdict is the first thing that went wrong, in the order the program ran: a test that failed
before a later one timed out, crashed or ran out of memory is reported as that failure (the later
test is still listed in ``tests``, with its own error).
"""

from __future__ import annotations

import json
import signal as signal_module
from dataclasses import dataclass, field
from typing import Any

from neatpipe.sandbox.limits import Limits
from neatpipe.sandbox.program import ExecResult, Program, Status, TestResult

EXIT_SETUP_FAILED = 112  # neatpipe.sandbox.isolation
EXIT_RUNNER_ERROR = 113  # neatpipe.sandbox.child

TIMEOUT = "Timeout"
OUTPUT_LIMIT = "OutputLimitExceeded"
TAMPERING = "TamperingDetected"
CRASH = "Crash"
EARLY_EXIT = "EarlyExit"
RUNNER_ERROR = "RunnerError"
SANDBOX_ERROR = "SandboxError"
MEMORY_ERROR = "MemoryError"

_OOM_MARKERS = ("MemoryError", "Cannot allocate memory", "out of memory", "std::bad_alloc")


@dataclass
class Outcome:
    """What the worker observed about one child process."""

    events: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: int = 0  # result-channel lines without the token or not valid events
    exit_code: int | None = None
    signal: int | None = None
    killed_by: str | None = None  # "cpu" or "wall": the worker killed it at that limit
    cpu_s: float = 0.0
    duration_s: float = 0.0
    stdout: str = ""
    stdout_bytes: int = 0
    stderr: str = ""
    stderr_bytes: int = 0


def parse_events(data: bytes, token: str) -> tuple[list[dict[str, Any]], int]:
    """The valid events on the result channel, and how many lines were not valid events."""
    prefix = token.encode() + b" "
    events: list[dict[str, Any]] = []
    bad = 0
    for line in data.split(b"\n"):
        if not line:
            continue
        if not line.startswith(prefix):
            bad += 1
            continue
        try:
            event = json.loads(line[len(prefix) :])
        except (ValueError, RecursionError):
            bad += 1
            continue
        if type(event) is dict and isinstance(event.get("k"), str):
            events.append(event)
        else:
            bad += 1
    return events, bad


def outcome_from_wire(raw: dict[str, Any], token: str) -> Outcome:
    """The worker's raw observations (see ``Worker.run``) as an :class:`Outcome`, events parsed."""
    events, bad = parse_events(raw["channel"].encode("latin-1"), token)
    return Outcome(
        events=events, bad_lines=bad, exit_code=raw["exit_code"], signal=raw["signal"],
        killed_by=raw["killed"] or None, cpu_s=raw["cpu_s"], duration_s=raw["duration_s"],
        stdout=raw["stdout"], stdout_bytes=raw["stdout_bytes"], stderr=raw["stderr"], stderr_bytes=raw["stderr_bytes"],
    )  # fmt: skip


@dataclass
class _Report:
    """The event sequence, checked for order."""

    harness: dict[str, Any] | None = None
    load_ok: bool | None = None  # None: the candidate never finished loading
    load_error: dict[str, Any] | None = None
    tests: list[dict[str, Any] | None] = field(default_factory=list)  # per test run: its error or None
    tamper: str | None = None
    end: bool = False
    ordered: bool = True

    @classmethod
    def of(cls, events: list[dict[str, Any]]) -> _Report:
        report = cls()
        for event in events:
            if not report._accept(event):
                report.ordered = False
        return report

    def _accept(self, event: dict[str, Any]) -> bool:
        kind, error = event["k"], event.get("err")
        if self.end or (error is not None and not _valid_error(error)):
            return False
        if kind == "harness" and self.load_ok is None and self.harness is None and error:
            self.harness = error
        elif kind == "load" and self.load_ok is None and self.harness is None:
            self.load_ok, self.load_error = error is None, error
        elif (
            kind == "test" and self.load_ok and self.tamper is None and event.get("i") == len(self.tests) + 1
        ):
            self.tests.append(error)
        elif kind == "tamper" and self.load_ok and self.tamper is None and isinstance(event.get("what"), str):
            self.tamper = event["what"]
        elif kind == "end" and (self.harness is not None or self.load_ok is not None):
            self.end = True
        else:
            return False
        return True


def _valid_error(error: object) -> bool:
    return (
        type(error) is dict
        and isinstance(error.get("type"), str)
        and all(isinstance(error.get(k, ""), str) for k in ("msg", "tb"))
        and (error.get("line") is None or isinstance(error.get("line"), str))
    )


def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def _signal_name(number: int) -> str:
    try:
        return signal_module.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Builder:
    """Assembles an ExecResult from a program, its outcome and the parsed report."""

    def __init__(self, program: Program, outcome: Outcome, limits: Limits) -> None:
        self.program, self.outcome, self.limits = program, outcome, limits
        self.report = _Report.of(outcome.events)

    def _name(self, index: int) -> str:
        test = self.program.tests[index - 1]
        return test.name or f"test {index}"

    def _reported_tests(self) -> list[TestResult]:
        results = []
        for index, error in enumerate(self.report.tests[: len(self.program.tests)], 1):
            if error is None:
                results.append(TestResult(self._name(index), True))
            else:
                line = error.get("line") or _first_line(self.program.tests[index - 1].source)
                results.append(
                    TestResult(self._name(index), False, error["type"], error.get("msg", ""), line)
                )
        return results

    def _running(self) -> int | None:
        """The 1-based index of the test in progress when the process stopped (None: not testing)."""
        if not self.report.load_ok:
            return None
        index = len(self.report.tests) + 1
        return index if index <= len(self.program.tests) else None

    def result(self, status: Status, error_type: str | None, message: str, **fields: Any) -> ExecResult:
        outcome = self.outcome
        extra = {"exit_code": outcome.exit_code, "signal": outcome.signal, "cpu_s": round(outcome.cpu_s, 4),
                 "stdout_bytes": outcome.stdout_bytes, "stderr_bytes": outcome.stderr_bytes}  # fmt: skip
        fields.setdefault("tests", tuple(self._reported_tests()))
        return ExecResult(
            status=status, error_type=error_type, message=message, stdout=outcome.stdout, stderr=outcome.stderr,
            duration_s=round(outcome.duration_s, 6), extra=extra, cpu_limit_s=self.program.timeout_s,
            wall_limit_s=self.program.wall_limit_s, **fields,
        )  # fmt: skip

    def stopped(
        self, status: Status, error_type: str, message: str, first_failure_wins: bool = True
    ) -> ExecResult:
        """A program that did not finish: the running test (if any) fails with ``error_type``.

        With ``first_failure_wins``, a test that failed earlier is the verdict instead (the program
        was already wrong before it hung or died). Tampering passes False, since nothing the program
        reported can be trusted then, and so does an output flood, which makes writes fail.
        """
        tests = self._reported_tests()
        running = self._running()
        phase = "load" if not self.report.load_ok else "test"
        if self.report.harness is not None:
            phase = "harness"
        failing = None
        if running is not None:
            failing = _first_line(self.program.tests[running - 1].source)
            tests.append(TestResult(self._name(running), False, error_type, message, failing))
        else:
            failing = next((t.line for t in tests if not t.passed), None)
        first = next((i for i, error in enumerate(self.report.tests, 1) if error is not None), None)
        if first_failure_wins and first is not None and first <= len(self.program.tests):
            error = self.report.tests[first - 1]
            assert error is not None
            line = error.get("line") or _first_line(self.program.tests[first - 1].source)
            return self.failure(error, "test", line, tests=tuple(tests))
        return self.result(status, error_type, message, phase=phase, failing_test=failing, tests=tuple(tests))

    def failure(
        self, error: dict[str, Any], phase: str, line: str | None = None, **fields: Any
    ) -> ExecResult:
        message = error.get("msg", "")
        status = Status.FAILED
        if error["type"] == MEMORY_ERROR:
            status = Status.OUT_OF_MEMORY
            message = message or f"ran out of memory (limit {self.limits.memory_mb:g} MiB)"
        return self.result(status, error["type"], message, traceback=error.get("tb", ""),
                           phase=phase, failing_test=line, **fields)  # fmt: skip


def _output_overflow(outcome: Outcome, limits: Limits) -> str | None:
    for name, size in (("stdout", outcome.stdout_bytes), ("stderr", outcome.stderr_bytes)):
        if size >= limits.file_size_bytes:
            return f"the program wrote more than {limits.file_size_mb:g} MiB to {name}"
    return None


def _crash(b: _Builder) -> ExecResult:
    outcome = b.outcome
    if outcome.signal is not None:
        name = _signal_name(outcome.signal)
        if any(marker in outcome.stderr for marker in _OOM_MARKERS):
            message = f"ran out of memory (limit {b.limits.memory_mb:g} MiB) and was killed by {name}"
            return b.stopped(Status.OUT_OF_MEMORY, MEMORY_ERROR, message)
        message = f"the process was killed by {name}"
        if outcome.signal == signal_module.SIGSEGV:
            message += " (often a C-level stack overflow: very deep recursion after sys.setrecursionlimit)"
        elif outcome.signal == signal_module.SIGKILL:
            message += " (by the kernel or another process)"
        return b.stopped(Status.CRASHED, CRASH, message)
    if outcome.exit_code == EXIT_SETUP_FAILED:
        return b.stopped(Status.CRASHED, SANDBOX_ERROR, "the sandbox could not prepare the process: "
                         + outcome.stderr.strip()[-500:])  # fmt: skip
    if outcome.exit_code == EXIT_RUNNER_ERROR:
        lines = [line for line in outcome.stderr.splitlines() if "neatpipe sandbox runner error" in line]
        detail = (
            lines[-1].split(":", 1)[1].strip()[-500:] if lines else "its result channel was closed or broken"
        )
        return b.stopped(Status.CRASHED, RUNNER_ERROR, f"the program broke the test runner ({detail})")
    message = (
        f"the process exited with status {outcome.exit_code} before reporting its result "
        "(os._exit, a killed runner or a closed result channel)"
    )
    return b.stopped(Status.CRASHED, EARLY_EXIT, message)


def _timeout(program: Program, outcome: Outcome, limits: Limits) -> str | None:
    """Why the program is a timeout, or None.

    A program that used more CPU time than its limit is one, whoever noticed: the worker's CPU clock
    (``killed_by == "cpu"``), the kernel's RLIMIT_CPU (a SIGKILL or SIGXCPU at that many seconds), or
    the final accounting of a program that ended between two readings of the clock. The wall clock
    decides only when the program was killed at its backstop.
    """
    killer = outcome.signal in (signal_module.SIGKILL, signal_module.SIGXCPU)
    if (
        outcome.killed_by == "cpu"
        or outcome.cpu_s > program.timeout_s
        or (killer and outcome.cpu_s >= limits.cpu_seconds(program.timeout_s) - 0.05)
    ):
        return f"exceeded the CPU-time limit of {program.timeout_s:g} s"
    if outcome.killed_by == "wall" and outcome.signal == signal_module.SIGKILL:
        return (
            f"exceeded the wall-clock limit of {program.wall_limit_s:g} s after only {outcome.cpu_s:.2f} s of "
            f"CPU time (limit {program.timeout_s:g} s): it was waiting (sleep, a blocked read) or starved of CPU"
        )
    return None


def classify(program: Program, outcome: Outcome, limits: Limits) -> ExecResult:
    """The verdict for one run of ``program``."""
    b = _Builder(program, outcome, limits)
    report = b.report
    timeout = _timeout(program, outcome, limits)
    if timeout is not None:
        return b.stopped(Status.TIMEOUT, TIMEOUT, timeout)
    overflow = _output_overflow(outcome, limits)
    if overflow:
        return b.stopped(Status.FAILED, OUTPUT_LIMIT, overflow, False)  # the cause of any failure it left
    if not (report.end and outcome.exit_code == 0 and outcome.signal is None):
        return _crash(b)
    if not report.ordered or outcome.bad_lines:
        return b.stopped(
            Status.FAILED,
            TAMPERING,
            "the result channel carried messages the test runner did not send",
            False,
        )
    if report.harness is not None:
        return b.failure(report.harness, "harness")
    if report.load_error is not None:
        return b.failure(report.load_error, "load")
    if report.tamper is not None:
        message = f"the program modified {report.tamper}, which the tests may use"
        return b.result(Status.FAILED, TAMPERING, message, phase="test")
    for index, error in enumerate(report.tests, 1):
        if error is not None:
            line = error.get("line") or _first_line(program.tests[index - 1].source)
            return b.failure(error, "test", line)
    if len(report.tests) != len(program.tests):
        return b.stopped(
            Status.FAILED, TAMPERING, f"{len(report.tests)} of {len(program.tests)} tests reported", False
        )
    return b.result(Status.PASSED, None, "")
