"""Verdicts on a busy machine: with busy loops on every core, wall times grow and verdicts do not.

Each busy loop runs in a session of its own, as another user's test run or another evolution worker
would, so the scheduler gives it the same share as a sandbox worker (with one session for all of
them, Linux's autogroups would shield the workers).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from neatpipe.bench import load_mbpp
from neatpipe.bench.check import check_references
from neatpipe.sandbox import Limits, Program, Sandbox, Status, TestCase, default_workers

LOOPS_PER_CORE = 2
# Mbpp/123's reference needs about 2.7 s of CPU time, and over 6 s of wall time with two busy loops per
# core on a 2-core machine, where a 6 s wall-clock limit judged it a timeout. The others are every
# 20th problem.
SLOW_REFERENCE = "Mbpp/123"


@pytest.fixture(scope="module")
def busy_cores():
    loops = [
        subprocess.Popen([sys.executable, "-S", "-c", "while True: pass"], start_new_session=True)
        for _ in range(LOOPS_PER_CORE * default_workers())
    ]
    time.sleep(0.2)
    yield len(loops)
    for loop in loops:
        loop.kill()
        loop.wait()


def test_the_reference_check_passes_with_every_core_busy(busy_cores: int, mbpp_path: Path) -> None:
    mbpp = load_mbpp(mbpp_path)
    problems = mbpp.select(sorted({SLOW_REFERENCE, *mbpp.task_ids[::20]}))
    assert all(p.time_limit_s == 6.0 for p in problems)  # the loader's default: 6 s of CPU time
    with Sandbox() as sandbox:
        report = check_references(problems, "chat", sandbox)
    assert report.passed == report.total == len(problems), [
        (f.task_id, f.result.status.value, f.result.message) for f in report.failures
    ]
    slow = next(s.result for s in report.results if s.task_id == SLOW_REFERENCE)
    assert slow.cpu_limit_s == 6.0 and slow.extra["cpu_s"] < 6.0
    # the load was real: the slow reference waited for a core a good part of the time
    assert slow.duration_s > 1.5 * slow.extra["cpu_s"], (slow.duration_s, slow.extra)


def test_hostile_and_slow_programs_get_their_idle_machine_verdicts_with_every_core_busy(
    busy_cores: int,
) -> None:
    tests = (TestCase("assert f(1) == 2"),)
    burn = "import time\nend = time.process_time() + 0.8\nwhile time.process_time() < end:\n    pass\n"
    programs = {
        # 0.8 s of CPU under a 1.5 s limit: slower than that in wall time here, and still correct
        "slow but within its CPU time": Program(burn + "def f(x):\n    return x + 1\n", tests, entry_point="f",
                                                timeout_s=1.5),
        "infinite loop": Program("def f(x):\n    while True:\n        pass", tests, entry_point="f", timeout_s=1.0),
        "memory bomb": Program("def f(x):\n    hog = []\n    while True:\n        hog.append(bytearray(10**7))",
                               tests, entry_point="f", timeout_s=1.0),
    }  # fmt: skip
    with Sandbox(workers=2, limits=Limits(memory_mb=256)) as sandbox:
        results = dict(zip(programs, sandbox.run_many(list(programs.values())), strict=True))
    slow, loop, bomb = results.values()
    assert slow.passed, slow
    assert slow.duration_s > slow.cpu_limit_s, slow  # a wall-clock limit would have killed it
    assert (loop.status, loop.error_type) == (Status.TIMEOUT, "Timeout") and "CPU-time" in loop.message
    assert 1.0 <= loop.extra["cpu_s"] < 1.3
    assert (bomb.status, bomb.error_type) == (Status.OUT_OF_MEMORY, "MemoryError"), bomb
