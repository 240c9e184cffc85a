"""What the sandbox runs and what it reports: plain, serialisable data.

The sandbox knows nothing about models or benchmarks. A :class:`Program` is candidate code plus
trusted harness code and tests; the result of running it is an :class:`ExecResult`.

Execution semantics (the contract every executor in :mod:`neatpipe.sandbox` implements):

1. Random seeds (``random``, and ``numpy`` when it is loaded) are set from ``Program.seed``.
2. ``Program.harness`` (trusted: prompt helpers, test imports, a ``check`` function) runs in a separate
   harness namespace whose builtins are a private copy, so the candidate cannot patch what tests use.
   It runs *before* the candidate, so every module object the tests use is bound before untrusted
   code exists; an exception here is a failure in the ``harness`` phase (a broken benchmark).
3. Seeds are set again, and ``Program.code`` (untrusted) runs as a module named ``__candidate__`` in
   its own namespace, compiled with the file name ``<candidate>``. An exception here is a failure in
   the ``load`` phase.
4. ``Program.entry_point`` is copied from the candidate namespace into the harness namespace (its
   absence is a ``NameError`` failure in the ``load`` phase); every other public candidate name that
   the harness does not define (and that is not a builtin) is copied too (classes an MBPP test
   constructs, for example). Harness names always win. Copied callables are wrapped so that a value
   whose comparisons come from candidate code is rejected (``UntrustedReturnValue``).
5. Seeds are set again and each test runs in order in the harness namespace (file name ``<test N>``,
   N counting from 1); every test runs even after a failure unless ``stop_on_failure`` is set. A
   program passes only when every test ran to the end and the runner reported it; exiting early,
   killing processes or tampering is never a pass.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

CANDIDATE_FILENAME = "<candidate>"
CANDIDATE_MODULE = "__candidate__"


def test_filename(index: int) -> str:
    """The file name test number ``index`` is compiled with (used in tracebacks)."""
    return f"<test {index}>"


HARNESS_FILENAME = "<harness>"

# The wall-clock backstop of a program whose ``wall_timeout_s`` is not given: this many times its CPU
# limit plus this many seconds. Generous on purpose: on a loaded machine a program gets a fraction of a
# core, and the CPU limit (not the wall clock) is what should decide that a program is too slow.
WALL_FACTOR = 4.0
WALL_SLACK_S = 5.0


def wall_backstop(timeout_s: float) -> float:
    """The default wall-clock limit of a program whose CPU-time limit is ``timeout_s``."""
    return WALL_FACTOR * timeout_s + WALL_SLACK_S


@dataclass(frozen=True)
class TestCase:
    """One separately reported test: trusted code run in the harness namespace."""

    __test__ = False  # not a pytest test class, despite the name

    source: str
    name: str = ""


@dataclass(frozen=True)
class Program:
    """Candidate code with its harness and tests.

    ``timeout_s`` is the CPU time (user plus system seconds, every thread of the program's process and
    the child processes it waited for) that the whole program (load plus all tests) may use: the limit
    that decides a ``Timeout`` verdict. CPU time, unlike wall time, barely changes when other processes
    compete for the cores, so a verdict does not depend on how busy the machine is. ``wall_timeout_s``
    is a backstop for programs that wait instead of computing (``time.sleep``, a blocked read); by
    default :func:`wall_backstop` of ``timeout_s``.
    """

    code: str
    tests: tuple[TestCase, ...] = ()
    harness: str = ""
    entry_point: str | None = None
    timeout_s: float = 10.0
    seed: int = 0
    stop_on_failure: bool = False
    label: str = ""
    wall_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"Program.timeout_s must be positive, got {self.timeout_s!r}")
        if self.wall_timeout_s is not None and self.wall_timeout_s <= 0:
            raise ValueError(f"Program.wall_timeout_s must be positive or None, got {self.wall_timeout_s!r}")
        if not isinstance(self.tests, tuple):
            object.__setattr__(self, "tests", tuple(self.tests))

    @property
    def wall_limit_s(self) -> float:
        """The wall-clock limit in force: ``wall_timeout_s``, or the backstop derived from ``timeout_s``."""
        return self.wall_timeout_s if self.wall_timeout_s is not None else wall_backstop(self.timeout_s)


class Status(str, enum.Enum):
    """How a program ended."""

    PASSED = "passed"
    FAILED = "failed"  # an exception in load or in a test (AssertionError, NameError, SystemExit, ...)
    TIMEOUT = "timeout"  # CPU-time limit, or the wall-clock backstop
    OUT_OF_MEMORY = "out_of_memory"
    CRASHED = "crashed"  # the process died without reporting (signal, os._exit, killed harness...)

    def __str__(self) -> str:  # "passed", not "Status.PASSED"
        return self.value


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test of a program."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    passed: bool
    error_type: str | None = None
    message: str = ""
    line: str | None = None  # the source line of the test that failed


@dataclass(frozen=True)
class ExecResult:
    """Everything a refiner or a score needs to know about one run."""

    status: Status
    error_type: str | None = None  # exception class name, "Timeout", "MemoryError", "Crash", ...
    message: str = ""
    traceback: str = ""  # trimmed to the candidate's own frames and the failing test line
    failing_test: str | None = None  # source line of the first failing test
    phase: str | None = None  # "load" or "test" for a failure, None when passed
    tests: tuple[TestResult, ...] = ()
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_limit_s: float | None = None  # the limits the program ran under (None: it never ran)
    wall_limit_s: float | None = None

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def tests_passed(self) -> int:
        return sum(t.passed for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["passed"] = self.passed
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExecResult:
        d = dict(d)
        d.pop("passed", None)
        d["status"] = Status(d["status"])
        d["tests"] = tuple(TestResult(**t) for t in d.get("tests", ()))
        return cls(**d)
