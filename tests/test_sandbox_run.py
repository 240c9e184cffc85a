"""What programs see and what results say: error types, tracebacks, per-test results, seeds, output."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest

from neatpipe.sandbox import ExecResult, Limits, Program, Sandbox, Status, TestCase, run_program

HUMANEVAL = Path(__file__).resolve().parents[1] / "neatpipe" / "data" / "HumanEval.jsonl.gz"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2, limits=Limits(memory_mb=512, output_bytes=4096)) as pool:
        yield pool


def program(code: str, *tests: str, entry_point: str | None = "f", **fields: object) -> Program:
    return Program(code, tuple(TestCase(t) for t in tests), entry_point=entry_point, **fields)  # type: ignore[arg-type]


def run(sandbox: Sandbox, code: str, *tests: str, **fields: object) -> ExecResult:
    return sandbox.run(program(code, *tests, **fields))


def test_a_correct_program_passes_with_output_and_timing(sandbox: Sandbox) -> None:
    result = run(
        sandbox,
        "import sys\nprint('out')\nsys.stderr.write('err')\ndef f(x):\n    return x + 1",
        "assert f(1) == 2",
    )
    assert result.status is Status.PASSED, result
    assert (result.stdout, result.stderr, result.phase, result.error_type) == ("out\n", "err", None, None)
    assert 0 < result.duration_s < 1 and result.tests[0].passed


@pytest.mark.parametrize(
    ("code", "test", "error_type", "phase"),
    [
        ("def f(x) return x", "f(1)", "SyntaxError", "load"),
        ("def f(x):\nreturn x", "f(1)", "IndentationError", "load"),
        ("def f(x):\n    return y", "f(1)", "NameError", "test"),
        ("def f(x):\n    return x + 'a'", "f(1)", "TypeError", "test"),
        ("def f(x):\n    return [][x]", "f(1)", "IndexError", "test"),
        ("def f(x):\n    return {}[x]", "f(1)", "KeyError", "test"),
        ("def f(x):\n    return int('z')", "f(1)", "ValueError", "test"),
        ("def f(x):\n    return x / 0", "f(1)", "ZeroDivisionError", "test"),
        ("def f(x):\n    return f(x)", "f(1)", "RecursionError", "test"),
        ("def f(x):\n    return x", "assert f(1) == 2", "AssertionError", "test"),
        ("def f(x):\n    raise SystemExit(0)", "f(1)", "SystemExit", "test"),
        ("import sys\nsys.exit(0)", "f(1)", "SystemExit", "load"),
        ("raise KeyboardInterrupt", "f(1)", "KeyboardInterrupt", "load"),
        ("def g(x):\n    return x", "g(1)", "NameError", "load"),  # entry point f missing
    ],
)
def test_failures_report_the_exception_type_and_phase(
    sandbox: Sandbox, code: str, test: str, error_type: str, phase: str
) -> None:
    result = run(sandbox, code, test)
    assert (result.status, result.error_type, result.phase) == (Status.FAILED, error_type, phase), result


def test_the_traceback_shows_only_candidate_frames_and_the_failing_test_line(sandbox: Sandbox) -> None:
    code = "def helper(x):\n    return x[3]\n\ndef f(x):\n    return helper(x)\n"
    result = run(sandbox, code, "assert f([1]) == 1", "assert f([1, 2, 3, 4]) == 4")
    assert result.error_type == "IndexError" and result.message == "list index out of range"
    assert result.failing_test == "assert f([1]) == 1"
    assert 'File "<test 1>", line 1, in <module>\n    assert f([1]) == 1' in result.traceback
    assert 'File "<candidate>", line 5, in f\n    return helper(x)' in result.traceback
    assert 'File "<candidate>", line 2, in helper\n    return x[3]' in result.traceback
    assert "neatpipe" not in result.traceback and "guard.py" not in result.traceback
    assert result.traceback.rstrip().endswith("IndexError: list index out of range")
    assert [t.passed for t in result.tests] == [False, True]


def test_a_syntax_error_points_at_the_candidate_line(sandbox: Sandbox) -> None:
    result = run(sandbox, "x = 1\ndef f(:\n    pass", "f()")
    assert result.error_type == "SyntaxError" and result.tests == ()
    assert 'File "<candidate>", line 2' in result.traceback and "def f(:" in result.traceback


def test_a_bare_assert_is_an_assertion_error_with_its_line(sandbox: Sandbox) -> None:
    result = run(sandbox, "def f(x):\n    return 0", "assert f(1)")
    assert (result.error_type, result.message, result.failing_test) == ("AssertionError", "", "assert f(1)")


def test_humaneval_style_check_failures_name_the_test_line(sandbox: Sandbox) -> None:
    harness = "def check(candidate):\n    assert candidate(1) == 2, 'f(1) should be 2'\n"
    result = sandbox.run(Program("def f(x):\n    return 0", (TestCase("check(f)"),), harness, "f"))
    assert (result.error_type, result.message, result.failing_test) == (
        "AssertionError",
        "f(1) should be 2",
        "check(f)",
    )
    assert "<harness>" not in result.traceback  # hidden tests stay hidden


def test_each_test_is_reported_and_stop_on_failure_stops(sandbox: Sandbox) -> None:
    tests = ("assert f(1) == 2", "assert f(2) == 4", "assert f(3) == 4")
    result = run(sandbox, "def f(x):\n    return x + 1", *tests)
    assert [t.passed for t in result.tests] == [True, False, True]
    assert result.failing_test == "assert f(2) == 4" and result.tests[1].line == "assert f(2) == 4"
    stopped = run(sandbox, "def f(x):\n    return x + 1", *tests, stop_on_failure=True)
    assert [t.passed for t in stopped.tests] == [True, False]


def test_harness_names_win_and_public_candidate_names_are_copied(sandbox: Sandbox) -> None:
    code = "def check(c):\n    pass\n\nclass Box:\n    def __init__(self, v):\n        self.v = v\n\ndef f(b):\n    return b.v\n"
    harness = "def check(candidate):\n    assert candidate(Box(1)) == 2\n"
    result = sandbox.run(Program(code, (TestCase("check(f)"),), harness, "f"))
    assert result.error_type == "AssertionError"  # the harness's check ran, with the candidate's Box
    shadow = run(
        sandbox,
        "len = lambda x: 0\n_private = 1\ndef f(x):\n    return x",
        "assert len([1]) == 1",
        "_private",
    )
    assert [t.passed for t in shadow.tests] == [True, False]  # builtins and private names are not replaced


def test_a_private_or_builtin_named_entry_point_is_still_exported(sandbox: Sandbox) -> None:
    assert run(sandbox, "def sum(a, b):\n    return a - b", "assert sum(3, 1) == 2", entry_point="sum").passed
    assert run(sandbox, "def _f():\n    return 1", "assert _f() == 1", entry_point="_f").passed


def test_random_is_seeded_before_loading_and_before_the_tests(sandbox: Sandbox) -> None:
    code = "import random\nAT_LOAD = random.random()\ndef f():\n    return AT_LOAD, random.random()\n"
    test = "print(f())"
    first = [sandbox.run(program(code, test, seed=s)).stdout for s in (1, 1, 2)]
    assert first[0] == first[1] != first[2]
    tests = (TestCase("import random; print(random.random())"),)
    untouched = sandbox.run(Program("", tests, seed=5)).stdout
    assert untouched == sandbox.run(Program("import random; random.random()", tests, seed=5)).stdout


def test_programs_get_the_cyclic_garbage_collector(sandbox: Sandbox) -> None:
    assert sandbox.run(Program("import gc\nassert gc.isenabled()")).passed


def test_hashing_is_deterministic_across_workers(sandbox: Sandbox) -> None:
    programs = [Program("print(hash('neatpipe'), list({'a', 'b', 'c', 'd'}))")] * 6
    assert len({r.stdout for r in sandbox.run_many(programs)}) == 1


def test_a_memory_error_is_out_of_memory(sandbox: Sandbox) -> None:
    result = run(sandbox, "def f():\n    return bytearray(2 * 1024**3)", "f()")
    assert (result.status, result.error_type) == (Status.OUT_OF_MEMORY, "MemoryError")


def test_long_output_is_truncated_to_the_capture_bound(sandbox: Sandbox) -> None:
    result = run(sandbox, "print('a' * 100000 + 'END')", entry_point=None)
    assert result.passed and result.extra["stdout_bytes"] == 100004
    assert len(result.stdout) < 4200 and "bytes omitted" in result.stdout and result.stdout.endswith("END\n")


def test_each_program_gets_a_private_empty_working_directory(sandbox: Sandbox) -> None:
    writer = Program(
        "import os\nos.makedirs('d/e')\nos.chmod('d', 0)\nos.symlink('/etc', 'etc')\n"
        "open('note.txt', 'w').write('x')\nos.chmod('.', 0o500)\nprint(sorted(os.listdir('.')))"
    )
    reader = Program(
        "import os, tempfile\nprint(sorted(os.listdir('.')), tempfile.gettempdir() == os.getcwd())"
    )
    results = sandbox.run_many([writer, reader] * 3)
    assert all(r.passed for r in results), results
    assert results[0].stdout == "['d', 'etc', 'note.txt']\n"
    assert all(r.stdout == "[] True\n" for r in results[1::2])
    assert os.path.isdir("/etc")  # the link was removed, not followed


def test_hostile_exception_messages_are_still_reported(sandbox: Sandbox) -> None:
    code = "class E(Exception):\n    def __str__(self):\n        raise ValueError\ndef f():\n    raise E()"
    result = run(sandbox, code, "f()")
    assert (result.error_type, result.message) == ("E", "<unprintable>")


def test_a_sleeping_program_times_out_at_its_wall_clock_backstop(sandbox: Sandbox) -> None:
    start = time.monotonic()
    result = run(
        sandbox, "import time\ndef f():\n    time.sleep(30)", "f()", timeout_s=0.5, wall_timeout_s=1.0
    )
    assert (result.status, result.error_type, result.failing_test) == (Status.TIMEOUT, "Timeout", "f()")
    assert "wall-clock limit of 1 s" in result.message and result.extra["cpu_s"] < 0.5
    assert (result.cpu_limit_s, result.wall_limit_s) == (0.5, 1.0)
    assert result.duration_s < 1.5 and time.monotonic() - start < 4


def test_a_busy_program_is_stopped_by_its_cpu_time_to_the_tenth_of_a_second(sandbox: Sandbox) -> None:
    result = run(sandbox, "def f():\n    while True:\n        pass", "f()", timeout_s=0.3)
    assert (result.status, result.error_type, result.failing_test) == (Status.TIMEOUT, "Timeout", "f()")
    assert "CPU-time limit of 0.3 s" in result.message
    assert 0.3 <= result.extra["cpu_s"] < 0.45  # not RLIMIT_CPU's whole seconds
    assert (result.cpu_limit_s, result.wall_limit_s) == (0.3, 4 * 0.3 + 5)


def test_every_result_records_the_limits_it_ran_under(sandbox: Sandbox) -> None:
    result = run(sandbox, "def f(x):\n    return x + 1", "assert f(1) == 2", timeout_s=3)
    assert result.passed and (result.cpu_limit_s, result.wall_limit_s) == (3, 17)
    assert result.to_dict()["cpu_limit_s"] == 3 and ExecResult.from_dict(result.to_dict()) == result


def test_run_many_keeps_input_order_and_reports_progress(sandbox: Sandbox) -> None:
    programs = [Program(f"import time\ntime.sleep({0.05 * (i % 3)})\nprint({i})") for i in range(12)]
    calls: list[tuple[int, int]] = []
    results = sandbox.run_many(programs, progress=lambda done, total: calls.append((done, total)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(12)]
    assert calls == [(i, 12) for i in range(1, 13)]
    assert sandbox.run_many([]) == []


def humaneval_programs(wrong: bool = False) -> list[Program]:
    programs = []
    for row in map(json.loads, gzip.open(HUMANEVAL, "rt")):
        imports = "\n".join(
            line for line in row["prompt"].splitlines() if line.startswith(("import ", "from "))
        )
        body = "    return None\n" if wrong else row["canonical_solution"]
        tests = (TestCase(f"check({row['entry_point']})"),)
        programs.append(
            Program(row["prompt"] + body, tests, imports + "\n" + row["test"], row["entry_point"])
        )
    return programs


def test_every_humaneval_reference_solution_passes_and_stubs_fail(sandbox: Sandbox) -> None:
    results = sandbox.run_many(humaneval_programs())
    failed = [(r.error_type, r.message[:80]) for r in results if not r.passed]
    assert len(results) == 164 and not failed
    wrong = sandbox.run_many(humaneval_programs(wrong=True))
    assert not any(r.passed for r in wrong)
    assert {r.error_type for r in wrong} <= {"AssertionError", "TypeError"}


def test_run_program_starts_a_sandbox_for_one_program() -> None:
    result = run_program(Program("print(6 * 7)"), limits=Limits(memory_mb=128))
    assert result.passed and result.stdout == "42\n"
