"""The pure parts of the sandbox, without processes: verdicts, events, guard, limits, wire format."""

from __future__ import annotations

import collections
import dataclasses
import math
import signal
import types
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neatpipe.sandbox import guard as guard_module
from neatpipe.sandbox import protocol
from neatpipe.sandbox._linux import mount_flags, parse_mountinfo
from neatpipe.sandbox.classify import Outcome, classify, outcome_from_wire, parse_events
from neatpipe.sandbox.limits import Isolation, Limits
from neatpipe.sandbox.program import ExecResult, Program, Status, TestCase, TestResult
from neatpipe.sandbox.report import FEATURES, Feature, IsolationReport

TOKEN = "t0k3n"
LIMITS = Limits()
PROGRAM = Program(
    "def f(x):\n    return x + 1\n",
    tests=(TestCase("assert f(1) == 2"), TestCase("assert f(2) == 3", name="second")),
    entry_point="f",
    timeout_s=2.0,
)
LOAD, END = {"k": "load"}, {"k": "end"}
ERROR = {"type": "AssertionError", "msg": "", "tb": "Traceback...", "line": "assert f(2) == 3"}


def ran(index: int, error: dict | None = None) -> dict:
    """A ``test`` event: test ``index`` passed (or failed with ``error``)."""
    return {"k": "test", "i": index} if error is None else {"k": "test", "i": index, "err": error}


def verdict(*events: dict, program: Program = PROGRAM, **observed: object) -> ExecResult:
    fields = {"exit_code": 0, **observed}
    return classify(program, Outcome(events=list(events), **fields), LIMITS)  # type: ignore[arg-type]


# -- verdicts ------------------------------------------------------------------------------------


def test_a_complete_clean_report_passes() -> None:
    result = verdict(LOAD, ran(1), ran(2), END)
    assert result.status is Status.PASSED and result.passed
    assert [t.passed for t in result.tests] == [True, True]
    assert [t.name for t in result.tests] == ["test 1", "second"]
    assert result.phase is None and result.error_type is None


def test_the_first_failing_test_gives_type_line_and_traceback() -> None:
    result = verdict(LOAD, ran(1), ran(2, ERROR), END)
    assert (result.status, result.error_type, result.phase) == (Status.FAILED, "AssertionError", "test")
    assert result.failing_test == "assert f(2) == 3" and result.traceback == "Traceback..."
    assert result.tests[1] == TestResult("second", False, "AssertionError", "", "assert f(2) == 3")


def test_a_memory_error_in_a_test_is_out_of_memory() -> None:
    result = verdict(LOAD, ran(1, {"type": "MemoryError", "msg": "", "tb": "", "line": None}), ran(2), END)
    assert result.status is Status.OUT_OF_MEMORY and result.error_type == "MemoryError"
    assert "out of memory" in result.message


def test_load_and_harness_failures_name_their_phase() -> None:
    load = verdict({"k": "load", "err": {"type": "SyntaxError", "msg": "bad", "tb": "", "line": None}}, END)
    assert (load.status, load.error_type, load.phase, load.tests) == (
        Status.FAILED,
        "SyntaxError",
        "load",
        (),
    )
    harness = verdict(
        {"k": "harness", "err": {"type": "ImportError", "msg": "x", "tb": "", "line": None}}, END
    )
    assert (harness.error_type, harness.phase) == ("ImportError", "harness")


@pytest.mark.parametrize(
    "events",
    [
        [LOAD, ran(1), END],  # a test missing
        [LOAD, ran(2), ran(1), END],  # out of order
        [LOAD, ran(1), ran(1), ran(2), END],  # duplicated
        [LOAD, LOAD, ran(1), ran(2), END],
        [LOAD, ran(1), ran(2), END, END],
        [ran(1), ran(2), END],  # no load
        [LOAD, ran(1), ran(2), {"k": "bogus"}, END],
        [LOAD, ran(1, {"type": 3}), ran(2), END],  # malformed error
    ],
)
def test_an_incomplete_or_disordered_report_never_passes(events: list[dict]) -> None:
    result = verdict(*events)
    assert result.status is not Status.PASSED
    assert result.error_type in ("TamperingDetected", "EarlyExit")  # no end event accepted: a crash


def test_lines_without_the_token_or_a_tamper_event_fail_the_program() -> None:
    assert verdict(LOAD, ran(1), ran(2), END, bad_lines=1).error_type == "TamperingDetected"
    tampered = verdict(LOAD, ran(1), ran(2), {"k": "tamper", "what": "math.isclose"}, END)
    assert tampered.status is Status.FAILED and "math.isclose" in tampered.message


def test_without_an_end_event_or_a_clean_exit_the_program_crashed() -> None:
    early = verdict(LOAD, ran(1))
    assert (early.status, early.error_type, early.phase) == (Status.CRASHED, "EarlyExit", "test")
    assert early.failing_test == "assert f(2) == 3"  # the test that was running
    assert [t.passed for t in early.tests] == [True, False]
    signalled = verdict(LOAD, exit_code=None, signal=signal.SIGSEGV)
    assert (signalled.status, signalled.error_type) == (Status.CRASHED, "Crash")
    assert "SIGSEGV" in signalled.message and "stack overflow" in signalled.message
    nonzero = verdict(LOAD, ran(1), ran(2), END, exit_code=3)
    assert nonzero.status is Status.CRASHED


def test_a_signal_death_with_a_memory_error_on_stderr_is_out_of_memory() -> None:
    result = verdict(LOAD, exit_code=None, signal=signal.SIGABRT, stderr="Fatal Python error: MemoryError")
    assert (result.status, result.error_type) == (Status.OUT_OF_MEMORY, "MemoryError")


def test_cpu_and_wall_clock_limits_are_timeouts() -> None:
    wall = verdict(LOAD, exit_code=None, signal=signal.SIGKILL, killed_by="wall", cpu_s=0.01)
    assert (wall.status, wall.error_type, wall.phase) == (Status.TIMEOUT, "Timeout", "test")
    assert wall.failing_test == "assert f(1) == 2" and "wall-clock limit of 13 s" in wall.message
    cpu = verdict(LOAD, ran(1), exit_code=None, signal=signal.SIGKILL, killed_by="cpu", cpu_s=2.001)
    assert (cpu.status, cpu.error_type) == (Status.TIMEOUT, "Timeout")
    assert "CPU-time limit of 2 s" in cpu.message and cpu.failing_test == "assert f(2) == 3"
    rlimit = verdict(LOAD, ran(1), exit_code=None, signal=signal.SIGKILL, cpu_s=3.0)  # RLIMIT_CPU: 3 s
    assert (rlimit.status, rlimit.error_type) == (Status.TIMEOUT, "Timeout") and "CPU" in rlimit.message
    loading = verdict(exit_code=None, signal=signal.SIGKILL, killed_by="cpu", cpu_s=2.0)
    assert loading.phase == "load" and loading.tests == ()
    assert (wall.cpu_limit_s, wall.wall_limit_s) == (cpu.cpu_limit_s, cpu.wall_limit_s) == (2.0, 13.0)


def test_a_program_that_ended_over_its_cpu_limit_is_a_timeout_even_if_its_tests_passed() -> None:
    # it finished between two readings of its CPU clock: the accounting, not the timing, decides
    over = verdict(LOAD, ran(1), ran(2), END, cpu_s=2.05)
    assert (over.status, over.error_type) == (Status.TIMEOUT, "Timeout")
    assert verdict(LOAD, ran(1), ran(2), END, cpu_s=1.99).passed


def test_a_kill_at_the_wall_clock_backstop_counts_only_when_the_worker_killed_it() -> None:
    # a SIGKILL from elsewhere (the kernel's OOM killer) with little CPU used is a crash, not a timeout
    other = verdict(LOAD, exit_code=None, signal=signal.SIGKILL, cpu_s=0.2)
    assert (other.status, other.error_type) == (Status.CRASHED, "Crash")


@pytest.mark.parametrize(
    ("observed", "later"),
    [
        ({"signal": signal.SIGKILL, "killed_by": "cpu", "cpu_s": 2.0}, "Timeout"),
        ({"signal": signal.SIGKILL, "killed_by": "wall", "cpu_s": 0.1}, "Timeout"),
        ({"signal": signal.SIGSEGV}, "Crash"),
        ({"signal": signal.SIGABRT, "stderr": "MemoryError"}, "MemoryError"),
        ({"exit_code": 0}, "EarlyExit"),
    ],
)
def test_an_earlier_failing_test_is_the_verdict_when_a_later_one_hangs_or_dies(
    observed: dict, later: str
) -> None:
    program = dataclasses.replace(PROGRAM, tests=(*PROGRAM.tests, TestCase("assert f(3) == 4")))
    result = verdict(LOAD, ran(1), ran(2, ERROR), program=program, **{"exit_code": None, **observed})
    assert (result.status, result.error_type, result.phase) == (Status.FAILED, "AssertionError", "test")
    assert result.failing_test == "assert f(2) == 3" and result.traceback == "Traceback..."
    assert [(t.passed, t.error_type) for t in result.tests] == [(True, None), (False, "AssertionError"),
                                                                (False, later)]  # fmt: skip


def test_tampering_is_not_hidden_behind_an_earlier_failure() -> None:
    result = verdict(LOAD, ran(2, ERROR), ran(1), END)  # out of order
    assert (result.status, result.error_type) == (Status.FAILED, "TamperingDetected")


def test_output_beyond_the_file_size_limit_is_an_output_flood() -> None:
    result = verdict(LOAD, ran(1), ran(2), END, stdout_bytes=LIMITS.file_size_bytes)
    assert (result.status, result.error_type) == (Status.FAILED, "OutputLimitExceeded")


def test_setup_and_runner_failures_are_crashes_with_their_own_type() -> None:
    assert verdict(exit_code=112, stderr="privilege_drop: EPERM").error_type == "SandboxError"
    runner = verdict(LOAD, exit_code=113, stderr="\nneatpipe sandbox runner error: OSError: bad fd\n")
    assert runner.error_type == "RunnerError" and "bad fd" in runner.message


EVENT = st.sampled_from(
    [LOAD, END, ran(1), ran(2), ran(3), ran(1, ERROR), {"k": "tamper", "what": "m.x"}, {"k": "harness"}]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=7), st.sampled_from([0, 1, None]), st.integers(0, 2))
def test_only_the_exact_clean_sequence_passes(events: list[dict], exit_code: int | None, bad: int) -> None:
    sig = None if exit_code is not None else signal.SIGKILL
    result = verdict(*events, exit_code=exit_code, signal=sig, bad_lines=bad)
    clean = events == [LOAD, ran(1), ran(2), END] and exit_code == 0 and bad == 0
    assert result.passed == clean


# -- events and wire format ----------------------------------------------------------------------


def test_events_need_the_token_and_valid_json() -> None:
    data = b"\n".join(
        [
            f'{TOKEN} {{"k": "load"}}'.encode(),
            b'{"k": "end"}',  # no token
            f"{TOKEN} not json".encode(),
            f"{TOKEN} [1, 2]".encode(),
            f'{TOKEN} {{"k": "end"}}'.encode(),
            b"",
        ]
    )
    events, bad = parse_events(data, TOKEN)
    assert events == [LOAD, END] and bad == 3


def test_worker_observations_round_trip_through_the_wire() -> None:
    raw = {
        "channel": f'{TOKEN} {{"k":"load"}}\n{TOKEN} {{"k":"test","i":1}}\n\xff'.encode("latin-1").decode("latin-1"),
        "exit_code": 0, "signal": None, "killed": False, "cpu_s": 0.01, "duration_s": 0.02,
        "stdout": "hi\n", "stdout_bytes": 3, "stderr": "", "stderr_bytes": 0,
    }  # fmt: skip
    outcome = outcome_from_wire(protocol.decode(protocol.encode(raw)), TOKEN)
    assert outcome.events == [LOAD, ran(1)] and outcome.bad_lines == 1 and outcome.stdout == "hi\n"


def test_the_workers_plain_encoder_writes_what_the_general_one_writes() -> None:
    message = {
        "id": 7, "o": {"channel": '\xff tok {"k":"load"}\n\x00', "exit_code": None, "signal": 9, "killed": True,
                       "cpu_s": 0.0123, "duration_s": 1e-07, "stdout": 'a"\\\udce9 é\u2028', "stdout_bytes": 3,
                       "list": [1, 2.5, float("nan"), float("inf"), -float("inf"), [], {}], "flag": False},
    }  # fmt: skip
    assert protocol.encode_plain(message) == protocol.encode(message)
    with pytest.raises(TypeError):
        protocol.encode_plain({"x": object()})


def test_results_round_trip_through_their_dict() -> None:
    result = verdict(LOAD, ran(1), ran(2, ERROR), END)
    assert ExecResult.from_dict(result.to_dict()) == result


# -- guard ---------------------------------------------------------------------------------------

TRUSTED = ("<frozen ", collections.__file__.rsplit("/", 2)[0] + "/")


class AlwaysEqual:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class EqualInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class Truthy:
    def __bool__(self) -> bool:
        return True


class PlainInt(int):
    pass


@dataclasses.dataclass
class Point:
    x: int


Pair = collections.namedtuple("Pair", "a b")


def generate_evil():
    yield 1
    yield AlwaysEqual()


@pytest.mark.parametrize(
    "value",
    [
        AlwaysEqual(),
        [1, [2, AlwaysEqual()]],
        (AlwaysEqual(),),
        {"k": AlwaysEqual()},
        {AlwaysEqual(): 1},
        {AlwaysEqual()},
        collections.deque([AlwaysEqual()]),
        collections.OrderedDict(a=AlwaysEqual()),
        EqualInt(3),
        [EqualInt(3)],
        Truthy(),
        type("S", (str,), {"__eq__": lambda self, other: True, "__hash__": str.__hash__})("x"),
        type("L", (list,), {"__eq__": lambda self, other: True})([1]),
        type("Faker", (), {"__class__": property(lambda self: int)})(),
        Point(1),  # dataclass-generated __eq__ is exec'd code: not from a library file
    ],
    ids=lambda v: type(v).__name__,
)
def test_the_guard_rejects_values_whose_comparisons_are_program_code(value: object) -> None:
    guard = guard_module.Guard(TRUSTED)
    with pytest.raises(guard_module.UntrustedReturnValue):
        guard.check(value, "the value")
    assert guard.violation and "defined by the program" in guard.violation


@pytest.mark.parametrize(
    "value",
    [1, 2.5, "s", b"b", None, True, [1, (2, "x")], {"a": [1]}, {1, 2}, frozenset(), range(3), PlainInt(4),
     Fraction(1, 3), collections.Counter("aab"), Pair(1, 2), collections.deque([1]), {}.keys(), math.pi,
     type, int, types.SimpleNamespace(a=1), object()],
    ids=lambda v: type(v).__name__,
)  # fmt: skip
def test_the_guard_accepts_builtin_and_library_values(value: object) -> None:
    guard_module.Guard(TRUSTED).check(value, "the value")


def test_wrapped_functions_check_returns_and_iterator_items() -> None:
    guard = guard_module.Guard(TRUSTED)
    honest = guard.wrap(lambda x: [x, x + 1], "f")
    assert honest(1) == [1, 2] and honest.__name__ == "f"
    cheat = guard.wrap(lambda: AlwaysEqual(), "g")
    with pytest.raises(guard_module.UntrustedReturnValue, match=r"returned by g\(\)"):
        cheat()
    items = guard.wrap(generate_evil, "h")()
    assert next(items) == 1
    with pytest.raises(guard_module.UntrustedReturnValue):
        next(items)
    assert list(guard.wrap(lambda: iter([1, 2]), "i")()) == [1, 2]


def test_the_guard_survives_self_referencing_containers() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    guard_module.Guard(TRUSTED).check(loop, "loop")


@pytest.mark.parametrize(
    "versions", [guard_module.DictVersions.create(), None], ids=["version tags", "values"]
)
def test_a_module_watch_finds_rebound_names_and_swapped_modules(
    versions: guard_module.DictVersions | None,
) -> None:
    module = types.ModuleType("fake_math")
    module.isclose = math.isclose
    module.pi = math.pi
    modules = {"fake_math": module}
    watch = guard_module.ModuleWatch(versions)
    watch.add(module, registered=True)
    assert watch.changed(modules) is None
    module.__warningregistry__ = {}  # dunder names are not watched
    module.extra = 1  # new names do not matter
    assert watch.changed(modules) is None
    module.isclose = lambda *a, **k: True
    assert watch.changed(modules) == "fake_math.isclose"
    module.isclose = math.isclose
    del module.pi
    assert watch.changed(modules) == "fake_math.pi"
    module.pi = math.pi
    modules["fake_math"] = types.ModuleType("fake_math")
    assert watch.changed(modules) == "sys.modules['fake_math']"


def test_version_tags_are_read_on_this_interpreter() -> None:
    assert guard_module.DictVersions.create() is not None  # CPython 3.10-3.13


def test_the_worker_finds_the_modules_trusted_code_imports() -> None:
    from neatpipe.sandbox.worker import imported_modules

    code = compile(
        "import math\nfrom os.path import join\ndef check(c):\n    import random as r\n", "<h>", "exec"
    )
    assert imported_modules(code) == ("math", "os", "os.path", "random")


# -- configuration and reports -------------------------------------------------------------------


@pytest.mark.parametrize("field", ["memory_mb", "file_size_mb", "max_processes", "output_bytes"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


def test_limits_derive_the_cpu_limit_from_the_timeout() -> None:
    assert Limits().cpu_seconds(2.5) == 4 and Limits(cpu_s=1.2).cpu_seconds(100) == 2
    with pytest.raises(ValueError, match="cpu_s"):
        Limits(cpu_s=-1)
    with pytest.raises(ValueError, match="unknown Limits field"):
        Limits.from_dict({"memory": 1})
    assert Limits.from_dict(Limits(network=True).to_dict()) == Limits(network=True)
    with pytest.raises(ValueError, match="uid_base"):
        Isolation(uid_base=0)


def test_isolation_reports_round_trip_and_say_why_features_are_missing() -> None:
    report = IsolationReport(
        (Feature("network_namespace", True, "empty"), Feature("pid_namespace", False, "needs root")),
        30.0,
        "linux",
    )
    assert IsolationReport.from_dict(report.to_dict()) == report
    assert report.active == ("network_namespace",) and report.missing == {"pid_namespace": "needs root"}
    assert report.is_active("network_namespace") and not report.is_active("rlimit_as")
    assert "[off] pid_namespace" in report.format()
    with pytest.raises(KeyError, match="known"):
        report["nope"]
    assert set(FEATURES) >= {"network_namespace", "readonly_filesystem", "pid_namespace", "rlimit_nproc"}


def test_mountinfo_parsing_unescapes_paths_and_reads_flags() -> None:
    text = (
        "22 27 0:21 / /proc rw,nosuid,relatime - proc proc rw\n27 1 254:0 / /a\\040b ro - ext4 /dev/vda rw\n"
    )
    assert parse_mountinfo(text) == [("/proc", "rw,nosuid,relatime"), ("/a b", "ro")]
    assert mount_flags("rw,nosuid,nodev,relatime") == 2 | 4 | (1 << 21)
    assert mount_flags("ro") & 1
