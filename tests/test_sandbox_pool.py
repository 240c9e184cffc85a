"""The pool's life: isolation report, fallbacks, dead and stuck workers, closing, the CLI, other users."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_sandbox_hostile import leftover_processes

from neatpipe.cli import main
from neatpipe.sandbox import Isolation, Limits, Program, Sandbox, SandboxError, Status, TestCase, pool
from neatpipe.sandbox.report import FEATURES

REPO = Path(__file__).resolve().parents[1]
RIGHT = Program("def f(x):\n    return x + 1\n", (TestCase("assert f(1) == 2"),), entry_point="f")
SLEEPER = Program("import time\ntime.sleep(5)", timeout_s=10)
LEFT_BEHIND = {
    "setsid child": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n",
    "orphaned grandchild": "import os, time\nif os.fork() == 0:\n    if os.fork() == 0:\n        time.sleep(60)\n"
    "    os._exit(0)\n",
    "thread": "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n",
    "stopped child": "import os, signal\nif os.fork() == 0:\n    os.kill(os.getpid(), signal.SIGSTOP)\n",
}


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2) as pool_:
        yield pool_


def test_the_report_names_every_feature_and_explains_the_missing_ones(sandbox: Sandbox) -> None:
    report = sandbox.isolation
    assert {f.name for f in report.features} == set(FEATURES)
    assert all(reason for reason in report.missing.values())
    assert report.is_active("wall_clock_kill") and report.baseline_mb > 0
    print(report.format())


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0, reason="needs root on Linux")
def test_as_root_on_linux_the_full_isolation_is_active(sandbox: Sandbox) -> None:
    report = sandbox.isolation
    if "unshare failed" in report["mount_namespace"].detail:
        pytest.skip(f"no namespaces in this container: {report['mount_namespace'].detail}")
    if "lies under /tmp" in report["private_tmp"].detail:  # the documented fallback for a checkout under /tmp
        pytest.skip(f"neatpipe runs from under /tmp here: {report['private_tmp'].detail}")
    for name in ("network_namespace", "mount_namespace", "readonly_filesystem", "private_tmp", "pid_namespace",
                 "privilege_drop", "no_new_privs", "rlimit_as", "rlimit_cpu", "rlimit_fsize", "rlimit_nproc"):  # fmt: skip
        assert report.is_active(name), (name, report[name].detail)


def test_programs_see_an_isolated_process_and_environment(sandbox: Sandbox) -> None:
    code = "import os\nprint(os.getcwd(), sorted(os.environ), os.getpid() == 1 or os.getppid() != 0)"
    result = sandbox.run(Program(code))
    assert result.passed, result
    cwd, _ = result.stdout.split(" ", 1)
    assert "OPENAI_API_KEY" not in result.stdout and "PYTHONHASHSEED" in result.stdout
    if sandbox.isolation.is_active("private_tmp"):
        assert cwd == "/tmp"


def test_suites_travel_once_per_worker_and_are_forgotten_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool, "MAX_SUITES", 3)
    sent: list[bytes] = []
    queue = pool._Worker.queue

    def recording_queue(self: pool._Worker, data: bytes) -> None:
        sent.append(data)
        queue(self, data)

    monkeypatch.setattr(pool._Worker, "queue", recording_queue)
    programs = [
        Program(f"def f(x):\n    return x + {k}\n", (TestCase(f"assert f(1) == {k + 1}"),), entry_point="f")
        for k in range(5)
    ]
    wrong = Program("def f(x):\n    return x\n", programs[1].tests, entry_point="f")
    broken = Program("x = 1", (TestCase("assert x ==", "syntax"), TestCase("assert x == 1", "ok")))
    batch = [*programs, wrong, *programs[:2], broken] * 3
    with Sandbox(workers=1) as sandbox:
        results = sandbox.run_many(batch)
        suites = sandbox._pool[0].suites  # type: ignore[union-attr]
        assert len(suites) <= 3
    expected = ([Status.PASSED] * 5 + [Status.FAILED] + [Status.PASSED] * 2 + [Status.FAILED]) * 3
    assert [r.status for r in results] == expected
    assert results[8].tests[0].error_type == "SyntaxError" and results[8].tests[1].passed
    assert all(b'"harness"' not in line for line in sent)  # requests name their suite, never carry it


def test_a_worker_killed_from_outside_is_replaced_and_only_its_program_fails() -> None:
    with Sandbox(workers=1) as sandbox:
        sandbox.start()
        victim = sandbox._pool[0].process.pid
        programs = [SLEEPER, RIGHT, RIGHT]
        killer = _kill_later(victim, 0.5)
        results = sandbox.run_many(programs)
        killer.wait()
        assert (results[0].status, results[0].error_type) == (Status.CRASHED, "WorkerDied")
        assert [r.status for r in results[1:]] == [Status.PASSED, Status.PASSED]  # re-sent, not blamed
        assert sandbox.restarts == 1 and sandbox._pool[0].process.pid != victim
        assert leftover_processes(sandbox) == []  # the sleeping program died with its worker
        assert sandbox.run(RIGHT).passed


def _kill_later(pid: int, delay_s: float) -> subprocess.Popen:
    return subprocess.Popen(["sh", "-c", f"sleep {delay_s}; kill -9 {pid}"])


def test_a_stuck_worker_is_killed_by_the_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "WATCHDOG_GRACE_S", 0.5)
    with Sandbox(workers=1) as sandbox:
        sandbox.start()
        os.kill(sandbox._pool[0].process.pid, signal.SIGSTOP)
        start = time.monotonic()
        result = sandbox.run(Program("pass", timeout_s=0.5, wall_timeout_s=0.5))
        assert (result.status, result.error_type) == (Status.CRASHED, "WorkerDied")
        assert "stopped answering" in result.message and time.monotonic() - start < 5
        assert sandbox.run(RIGHT).passed


def test_an_exception_in_progress_stops_the_workers_and_the_next_call_restarts_them() -> None:
    with Sandbox(workers=1) as sandbox:

        def interrupt(done: int, total: int) -> None:
            raise KeyboardInterrupt

        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            sandbox.run_many([RIGHT, SLEEPER], progress=interrupt)
        assert sandbox._pool == [None] and time.monotonic() - start < 2
        assert leftover_processes(sandbox) == []  # the sleeping program was stopped with its worker
        assert sandbox.run(RIGHT).passed


def test_closing_stops_the_workers_and_refuses_more_work() -> None:
    sandbox = Sandbox(workers=2)
    assert sandbox.run(RIGHT).passed
    processes = [w.process for w in sandbox._pool if w is not None]
    sandbox.close()
    assert all(p.poll() is not None for p in processes)
    with pytest.raises(SandboxError, match="closed"):
        sandbox.run(RIGHT)


def test_bad_arguments_are_explicit_errors() -> None:
    with pytest.raises(ValueError, match="workers"):
        Sandbox(workers=0)
    with Sandbox(workers=1) as sandbox, pytest.raises(TypeError, match="Program"):
        sandbox.run_many(["print(1)"])  # type: ignore[list-item]


def test_the_fallback_without_namespaces_still_kills_everything_left_behind() -> None:
    options = Isolation(namespaces=False, pid_namespace=False)
    with Sandbox(workers=2, limits=Limits(memory_mb=256), isolation=options) as sandbox:
        report = sandbox.isolation
        assert not report.is_active("pid_namespace") and not report.is_active("mount_namespace")
        assert "Isolation(" in report["pid_namespace"].detail
        programs = [Program(code + RIGHT.code, RIGHT.tests, entry_point="f") for code in LEFT_BEHIND.values()]
        programs.append(
            Program("def f(x):\n    while True:\n        pass", RIGHT.tests, entry_point="f", timeout_s=0.5)
        )
        results = sandbox.run_many(programs)
        assert [r.status for r in results] == [Status.PASSED] * len(LEFT_BEHIND) + [Status.TIMEOUT], results
        assert leftover_processes(sandbox) == []
        assert sandbox.run(RIGHT).passed


# -- the command line ------------------------------------------------------------------------------


def test_sandbox_run_prints_the_result_and_sets_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("print('hello')\n")
    bad.write_text("print('before')\nx = 1 / 0\n")
    assert main(["sandbox", "run", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("status: passed") and "hello" in out
    assert main(["sandbox", "run", str(bad), "--timeout", "2", "--memory-mb", "128"]) == 1
    out = capsys.readouterr().out
    assert "ZeroDivisionError" in out and 'File "<candidate>", line 2' in out and "before" in out
    assert main(["sandbox", "run", str(bad), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {"status", "error_type", "message", "duration_s"} <= set(data)
    assert (data["status"], data["error_type"], data["phase"]) == ("failed", "ZeroDivisionError", "load")


def test_sandbox_run_reports_timeouts_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    loop = tmp_path / "loop.py"
    loop.write_text("while True:\n    pass\n")
    assert main(["sandbox", "run", str(loop), "--timeout", "0.5", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error_type"] == "Timeout"
    assert main(["sandbox", "run", str(tmp_path / "missing.py")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["sandbox", "run", str(loop), "--timeout", "0"]) == 2


# -- as an ordinary user ---------------------------------------------------------------------------

USER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from neatpipe.sandbox import Program, Sandbox, TestCase
    tests = (TestCase("assert f(1) == 2"),)
    programs = [
        Program("def f(x):\\n    return x + 1", tests, entry_point="f"),
        Program("def f(x):\\n    while True:\\n        pass", tests, entry_point="f", timeout_s=0.5),
        Program("import os\\ndef f(x):\\n    while True:\\n        try:\\n            os.fork()\\n"
                "        except OSError:\\n            pass", tests, entry_point="f", timeout_s=0.5),
        Program("import os\\nos.kill(os.getppid(), 9)\\ndef f(x):\\n    return 0", tests, entry_point="f"),
    ]
    with Sandbox(workers=1) as sandbox:
        results = sandbox.run_many(programs)
        print(json.dumps({"report": sandbox.isolation.to_dict(), "results": [r.to_dict() for r in results],
                          "after": sandbox.run(programs[0]).status.value}))
    """
)


def _as_nobody(script: str) -> list[str]:
    """A command running ``script`` as uid/gid 65534 with this interpreter reachable (it may live
    under a 0700 home directory, which a private mount namespace covers with the parts it needs)."""
    python = os.path.realpath(sys.executable)
    blocked = next((p for p in Path(python).parents if p != Path("/") and not p.stat().st_mode & 0o001), None)
    setup = "mount --make-rprivate / && "
    if blocked is not None:
        keep = Path(python).relative_to(blocked).parts[0]
        stash = f"/run/neatpipe-test-{os.getpid()}"
        setup += (
            f"mkdir -p {stash} && mount --bind {blocked / keep} {stash} && "
            f"mount -t tmpfs -o mode=755 tmpfs {blocked} && mkdir {blocked / keep} && "
            f"mount --move {stash} {blocked / keep} && "
        )
    run = f"cd / && setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/ {sys.executable} -c '{script}' {REPO}"
    return ["unshare", "--mount", "sh", "-c", setup + run]


@pytest.mark.skipif(os.geteuid() != 0 or not all(map(shutil.which, ("unshare", "setpriv"))),
                    reason="needs root (to become another user) and util-linux")  # fmt: skip
def test_it_works_as_an_ordinary_user() -> None:
    proc = subprocess.run(_as_nobody(USER_SCRIPT), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and (
        "Permission denied" in proc.stderr or "Operation not permitted" in proc.stderr
    ):
        pytest.skip(f"cannot run as another user here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "uid 65534" in data["report"]["platform"]
    statuses = [(r["status"], r["error_type"]) for r in data["results"]]
    assert statuses[:3] == [("passed", None), ("timeout", "Timeout"), ("timeout", "Timeout")]
    assert statuses[3][0] != "passed" and data["after"] == "passed"


def test_a_package_under_tmp_keeps_the_real_tmp_and_still_runs_programs(tmp_path: Path) -> None:
    """A checkout under /tmp: a private tmpfs on /tmp would hide the package from its own worker."""
    assert str(tmp_path.resolve()).startswith("/tmp/")
    shutil.copytree(
        Path(pool.__file__).parents[1], tmp_path / "neatpipe", ignore=shutil.ignore_patterns("__pycache__")
    )
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import neatpipe.sandbox as sb
        assert sb.__file__.startswith(sys.argv[1]), sb.__file__
        with sb.Sandbox(workers=1) as pool:
            ok = pool.run(sb.Program("x = 1", tests=(sb.TestCase("assert x == 1"),)))
            bad = pool.run(sb.Program("x = 2", tests=(sb.TestCase("assert x == 1"),)))
            report = pool.isolation
        print(json.dumps([ok.status.value, bad.error_type, report.to_dict()]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    status, error, report = json.loads(out.stdout.splitlines()[-1])
    assert (status, error) == ("passed", "AssertionError")
    if sys.platform.startswith("linux") and os.geteuid() == 0:
        text = json.dumps(report)
        assert "private" in text and "lies under /tmp" in text  # the fallback is recorded with its reason
        assert not any(name.startswith("neatpipe-expose-") for name in os.listdir("/tmp"))  # staging removed
        features = {f["name"]: f["active"] for f in report["features"]}
        if features.get("mount_namespace"):  # the privilege drop survives without the private /tmp
            assert features["privilege_drop"] and features["rlimit_nproc"], report
