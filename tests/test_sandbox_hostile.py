"""Hostile and broken programs: each is contained, classified, never passes by cheating, and leaves
no process behind; the pool stays healthy afterwards.

All programs run once, in one batch (so the timeouts overlap on both workers); each test then checks
one verdict.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest

from neatpipe.sandbox import ExecResult, Limits, Program, Sandbox, Status, TestCase

TIMEOUT_S = 1.0  # CPU time
WALL_S = 4.0  # the wall-clock backstop: a fork bomb's first process gets a thin share of the CPU
CPU_SLACK_S = 0.3  # the worker reads a busy program's CPU clock at least every 0.25 s
SLACK_S = 0.75  # generous enough for a loaded 2-core CI machine
# Without RLIMIT_NPROC (root with no privilege drop, a documented fallback) a fork bomb fills its PID
# namespace before the wall clock stops it, and the kernel takes a while to tear thousands of processes down.
UNBOUNDED_FORK_SLACK_S = 5.0
LIMITS = Limits(memory_mb=256, file_size_mb=4, max_processes=32)


# -- finding leftover processes -----------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, state, uid) for every process on the machine."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            uid = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        found[int(entry)] = (int(fields[1]), fields[0], uid)
    return found


def leftover_processes(sandbox: Sandbox, wait_s: float = 2.0) -> list[str]:
    """Processes below the pool's workers (an idle worker has none) or running as a program uid,
    zombies included; empty when the pool is clean. Waits up to ``wait_s`` for processes already
    killed to disappear (a program whose worker was killed is reaped by whoever adopts it)."""
    deadline = time.monotonic() + wait_s
    while (found := _leftovers(sandbox)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _leftovers(sandbox: Sandbox) -> list[str]:
    procs = _processes()
    workers = [w.process.pid for w in sandbox._pool if w is not None]
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    below = []
    frontier = list(workers)
    while frontier:
        for child in children.get(frontier.pop(), []):
            below.append(child)
            frontier.append(child)
    # In user-namespace mode a worker is a shim whose one child is the real worker (PID 1 inside).
    shims = {
        w
        for w in workers
        if len(children.get(w, [])) == 1 and not sandbox.isolation.is_active("privilege_drop")
    }
    below = [p for p in below if not (procs[p][0] in shims and p in children.get(procs[p][0], [])[:1])]
    uids = range(sandbox._uid_base, sandbox._uid_base + sandbox.workers)
    strays = {p for p, (_, _, uid) in procs.items() if uid in uids} | set(below)
    return [f"pid {p} state {procs[p][1]} uid {procs[p][2]}" for p in sorted(strays)]


# -- the programs -------------------------------------------------------------------------------

WRONG = "def f(x):\n    return 0\n"
RIGHT = "def f(x):\n    return x + 1\n"
TEST = ("assert f(1) == 2",)

ATTEMPT = """
import os, socket
def attempt(action, *args):
    try:
        action(*args)
    except OSError as exc:
        return type(exc).__name__
    return "succeeded"
def write(path):
    with open(path, "w") as f:
        f.write("x")
def connect(host, port):
    socket.create_connection((host, port), timeout=1).close()
"""


@dataclass(frozen=True)
class Case:
    code: str
    status: Status
    error_type: str | None
    tests: tuple[str, ...] = TEST
    harness: str = ""
    needs: str | None = None  # an isolation feature the expectation depends on
    entry_point: str | None = "f"


CASES: dict[str, Case] = {
    # -- runaway resource use
    "infinite loop": Case("def f(x):\n    while True:\n        pass", Status.TIMEOUT, "Timeout"),
    "infinite loop, signals blocked": Case(
        "import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))\n"
        "def f(x):\n    while True:\n        pass",
        Status.TIMEOUT, "Timeout",
    ),
    "alarm ignored and reset": Case(
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.alarm(0)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0)\ndef f(x):\n    while True:\n        pass",
        Status.TIMEOUT, "Timeout",
    ),
    "fork bomb": Case(
        "import os\ndef f(x):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass",
        Status.TIMEOUT, "Timeout",
    ),
    "memory bomb": Case("def f(x):\n    hog = []\n    while True:\n        hog.append(bytearray(10**7))",
                        Status.OUT_OF_MEMORY, "MemoryError"),
    "deep recursion": Case("def f(x):\n    return f(x)", Status.FAILED, "RecursionError"),
    "C stack overflow": Case("import sys\nsys.setrecursionlimit(10**6)\ndef f(x):\n    return list(map(f, [x]))",
                             Status.CRASHED, "Crash"),
    "stdout flood": Case("import sys\ndef f(x):\n    while True:\n        sys.stdout.write('x' * 65536)",
                         Status.FAILED, "OutputLimitExceeded"),
    "stderr flood": Case("import os\ndef f(x):\n    while True:\n        os.write(2, b'x' * 65536)",
                         Status.FAILED, "OutputLimitExceeded"),
    # -- processes and threads left behind (the program itself is correct)
    "thread left running": Case(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n" + RIGHT, Status.PASSED, None
    ),
    "child left running": Case("import os, time\nif os.fork() == 0:\n    time.sleep(60)\n" + RIGHT, Status.PASSED, None),
    "setsid child left running": Case(
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n" + RIGHT, Status.PASSED, None
    ),
    "orphaned daemon": Case(
        "import os, time\nif os.fork() == 0:\n    os.setpgid(0, 0)\n    if os.fork() == 0:\n        time.sleep(60)\n"
        "    os._exit(0)\n" + RIGHT,
        Status.PASSED, None,
    ),
    "subprocess left running": Case(
        "import subprocess, sys\nsubprocess.Popen([sys.executable, '-S', '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True)\n" + RIGHT,
        Status.PASSED, None,
    ),
    # -- the filesystem and the network
    "writes outside the working directory fail": Case(
        ATTEMPT + "import os\n",
        Status.PASSED, None,
        tests=tuple(
            f"assert attempt(write, {path!r}) != 'succeeded'"
            for path in ("/etc/neatpipe-sandbox-probe", "/var/tmp/neatpipe-sandbox-probe", "../neatpipe-sandbox-probe",
                         "/dev/shm/neatpipe-sandbox-probe", "/root/neatpipe-sandbox-probe", "/neatpipe-sandbox-probe")
        ) + ("assert attempt(write, 'inside.txt') == 'succeeded'", "assert attempt(os.mkdir, 'sub') == 'succeeded'"),
        needs="readonly_filesystem", entry_point=None,
    ),
    "network connections fail": Case(
        ATTEMPT, Status.PASSED, None,
        tests=("assert attempt(connect, '127.0.0.1', 22) != 'succeeded'",
               "assert attempt(connect, '1.1.1.1', 53) != 'succeeded'"),
        needs="network_namespace", entry_point=None,
    ),
    # -- exiting early is never a pass
    "sys.exit(0) at load": Case("import sys\nsys.exit(0)\n" + WRONG, Status.FAILED, "SystemExit"),
    "exit() in the function": Case("def f(x):\n    exit()", Status.FAILED, "SystemExit"),
    "quit() in the function": Case("def f(x):\n    quit()", Status.FAILED, "SystemExit"),
    "raise SystemExit in the function": Case("def f(x):\n    raise SystemExit(0)", Status.FAILED, "SystemExit"),
    "os._exit(0) in the function": Case("import os\ndef f(x):\n    os._exit(0)", Status.CRASHED, "EarlyExit"),
    "os._exit(0) at load": Case("import os\nos._exit(0)", Status.CRASHED, "EarlyExit"),
    # -- attacking the machinery
    "kill the parent": Case("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + WRONG, Status.FAILED,
                            "AssertionError"),
    "kill every visible process": Case(
        "import os, signal\nfor p in os.listdir('/proc'):\n    if p.isdigit() and int(p) != os.getpid():\n"
        "        try:\n            os.kill(int(p), signal.SIGKILL)\n        except OSError:\n            pass\n" + WRONG,
        Status.FAILED, "AssertionError",
    ),
    "close stdout and stderr": Case("import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\n" + WRONG,
                                    Status.FAILED, "AssertionError"),
    "close every descriptor": Case("import os\nos.closerange(0, 4096)\n" + RIGHT, Status.CRASHED, "RunnerError"),
    "forged result lines": Case(
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{\"k\": \"end\"}\\n')\n"
        "    except OSError:\n        pass\n" + WRONG,
        Status.FAILED, "TamperingDetected",
    ),
    "tracer that swallows failures": Case(
        "import sys\ndef tracer(frame, event, arg):\n    return None\nsys.settrace(tracer)\nsys.setprofile(tracer)\n" + WRONG,
        Status.FAILED, "AssertionError",
    ),
    # -- patching what the tests use
    "patched builtins.abs": Case("import builtins\nbuiltins.abs = lambda x: 0\n" + WRONG, Status.FAILED,
                                 "TamperingDetected", tests=("assert abs(f(1) - 2) < 1e-9",)),
    "patched builtins.isinstance": Case(
        "import builtins\nbuiltins.isinstance = lambda *a: True\ndef f(x):\n    return 'x'", Status.FAILED,
        "TamperingDetected", tests=("assert isinstance(f(1), int)",),
    ),
    "patched builtins.sorted used by a library": Case(
        "import builtins\nbuiltins.sorted = lambda data, **k: [1, 2, 3]\ndef f(x):\n    return [9, 9, 9]",
        Status.FAILED, "TamperingDetected", tests=("assert statistics.median(f(1)) == 2",), harness="import statistics",
    ),
    "patched AssertionError": Case("import builtins\nbuiltins.AssertionError = KeyboardInterrupt\n" + WRONG,
                                   Status.FAILED, "TamperingDetected"),
    "patched math.isclose": Case(
        "import math\nmath.isclose = lambda *a, **k: True\n" + WRONG, Status.FAILED, "TamperingDetected",
        tests=("assert math.isclose(f(1), 2.0)",), harness="import math",
    ),
    "replaced sys.modules['math']": Case(
        "import sys, types\nfake = types.ModuleType('math')\nfake.isclose = lambda *a, **k: True\n"
        "sys.modules['math'] = fake\n" + WRONG,
        Status.FAILED, "TamperingDetected", tests=("assert math.isclose(f(1), 2.0)",), harness="import math",
    ),
    "fake module for an import inside the check": Case(
        "import sys, types\nfake = types.ModuleType('math')\nfake.isclose = lambda *a, **k: True\n"
        "sys.modules['math'] = fake\n" + WRONG,
        Status.FAILED, "TamperingDetected", tests=("check(f)",),
        harness="def check(candidate):\n    import math\n    assert math.isclose(candidate(1), 2.0)",
    ),
    # -- values that compare equal to anything
    "__eq__ always true": Case("class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return A()",
                               Status.FAILED, "UntrustedReturnValue"),
    "__ne__ always false": Case(
        "class A:\n    def __ne__(self, o):\n        return False\ndef f(x):\n    return A()", Status.FAILED,
        "UntrustedReturnValue", tests=("assert not (f(1) != 2)",),
    ),
    "__bool__ always true": Case("class A:\n    def __bool__(self):\n        return True\ndef f(x):\n    return A()",
                                 Status.FAILED, "UntrustedReturnValue", tests=("assert f(1)",)),
    "nested in a list": Case(
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return [1, (A(),)]", Status.FAILED,
        "UntrustedReturnValue", tests=("assert f(1) == [1, (2,)]",),
    ),
    "nested in a dict": Case(
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\n"
        "def f(x):\n    return {'k': A()}",
        Status.FAILED, "UntrustedReturnValue", tests=("assert f(1) == {'k': 2}",),
    ),
    "int subclass": Case(
        "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n"
        "def f(x):\n    return I(7)",
        Status.FAILED, "UntrustedReturnValue",
    ),
    "str subclass": Case(
        "class S(str):\n    def __eq__(self, o):\n        return True\n    __hash__ = str.__hash__\n"
        "def f(x):\n    return S('no')",
        Status.FAILED, "UntrustedReturnValue", tests=("assert f(1) == 'yes'",),
    ),
    "list subclass": Case(
        "class L(list):\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return L()",
        Status.FAILED, "UntrustedReturnValue", tests=("assert f(1) == [1, 2]",),
    ),
    "generator of cheats": Case(
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    yield A()", Status.FAILED,
        "UntrustedReturnValue", tests=("assert list(f(1)) == [2]",),
    ),
    "caught by the harness": Case(
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return A()", Status.FAILED,
        "UntrustedReturnValue", tests=("check(f)",),
        harness="def check(candidate):\n    try:\n        assert candidate(1) == 2\n    except BaseException:\n        pass",
    ),
}  # fmt: skip

NORMAL = Program(RIGHT, (TestCase("assert f(1) == 2"), TestCase("assert f(5) == 6")), entry_point="f")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2, limits=LIMITS) as pool:
        yield pool


@pytest.fixture(scope="module")
def verdicts(sandbox: Sandbox) -> dict[str, tuple[ExecResult, float]]:
    programs = [
        Program(
            case.code,
            tuple(map(TestCase, case.tests)),
            case.harness,
            case.entry_point,
            TIMEOUT_S,
            label=name,
            wall_timeout_s=WALL_S,
        )
        for name, case in CASES.items()
    ]
    start = time.monotonic()
    results = sandbox.run_many(programs)
    elapsed = time.monotonic() - start
    return {p.label: (r, elapsed) for p, r in zip(programs, results, strict=True)}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_program_is_contained_and_classified(name: str, sandbox: Sandbox, verdicts: dict) -> None:
    case = CASES[name]
    if case.needs and not sandbox.isolation.is_active(case.needs):
        pytest.skip(f"{case.needs} is not active here: {sandbox.isolation.missing.get(case.needs)}")
    result, _ = verdicts[name]
    assert (result.status, result.error_type) == (case.status, case.error_type), result
    unbounded = name == "fork bomb" and not sandbox.isolation.is_active("rlimit_nproc")
    assert result.duration_s < WALL_S + (UNBOUNDED_FORK_SLACK_S if unbounded else SLACK_S), result.duration_s
    if name != "fork bomb":
        assert result.extra["cpu_s"] < TIMEOUT_S + CPU_SLACK_S, result.extra  # the CPU-time limit holds
    else:
        # a program of many processes burns CPU on every core between two reads of its clock (later ones
        # on a loaded machine): what bounds it is its time alive (asserted above) times the cores
        assert result.extra["cpu_s"] <= (os.cpu_count() or 1) * result.duration_s + CPU_SLACK_S, result.extra
    if "CPU-time" in result.message:
        assert result.extra["cpu_s"] >= TIMEOUT_S
    if case.status is not Status.PASSED:
        assert not result.passed


def test_the_batch_took_about_as_long_as_its_timeouts(verdicts: dict) -> None:
    elapsed = next(iter(verdicts.values()))[1]
    timeouts = [r for r, _ in verdicts.values() if r.status is Status.TIMEOUT]
    assert timeouts and all(r.cpu_limit_s == TIMEOUT_S and r.wall_limit_s == WALL_S for r in timeouts)
    assert elapsed < len(timeouts) * WALL_S / 2 + 5  # two workers; everything else is quick


def test_nothing_outside_the_working_directory_was_written(sandbox: Sandbox, verdicts: dict) -> None:
    probes = ("/etc/neatpipe-sandbox-probe", "/root/neatpipe-sandbox-probe")
    if not sandbox.isolation.is_active("readonly_filesystem") and not sandbox.isolation.is_active(
        "privilege_drop"
    ):
        for path in probes:  # a documented fallback: writes elsewhere are up to file permissions
            if os.path.exists(path):
                os.unlink(path)
        pytest.skip(f"writes outside the working directory are up to file permissions here: "
                    f"{sandbox.isolation['readonly_filesystem'].detail}")  # fmt: skip
    for path in probes:
        assert not os.path.exists(path)


def test_no_process_is_left_behind_and_the_pool_still_works(sandbox: Sandbox, verdicts: dict) -> None:
    assert leftover_processes(sandbox) == []
    assert sandbox.restarts == 0  # no program managed to kill its worker
    results = sandbox.run_many([NORMAL] * 4)
    assert all(r.passed and [t.passed for t in r.tests] == [True, True] for r in results)
    assert leftover_processes(sandbox) == []
