"""A sandbox worker: a fresh interpreter that forks one isolated child per program.

Started by :class:`~neatpipe.sandbox.Sandbox` as ``python -S -c <bootstrap> DIR CONFIG`` (never
forked from the caller, which may hold torch and gigabytes of memory). At start-up it sets up the
namespaces while still single-threaded, preloads the modules programs commonly import, loads private
copies of the child runner and the guard, snapshots the modules the tests rely on, and reports which
isolation features are active. Then it reads requests (JSON lines) from the pool and answers, one
program at a time: create the result pipe and two memfds for stdout/stderr, point the next child at
a fresh PID namespace, fork, wait for SIGCHLD, the child's CPU time reaching its limit or the
wall-clock backstop (then SIGKILL), read what came back, empty the working directory, and send the raw
observations; the pool parses and classifies them.

The worker never runs untrusted code itself and never decodes what a child wrote.
"""

from __future__ import annotations

import builtins
import dis
import faulthandler
import fcntl
import gc
import importlib.util
import json
import os
import select
import signal
import sys
import time
import traceback
import types
from typing import Any, NoReturn

from neatpipe.sandbox import isolation, protocol
from neatpipe.sandbox.limits import Isolation, Limits
from neatpipe.sandbox.program import HARNESS_FILENAME, test_filename

# Modules programs commonly import: loaded once here, shared by every fork for free. Every MiB the
# worker holds costs each fork about 40 us (page tables copied, then torn down), so rarely used
# modules (textwrap, pprint, calendar, difflib...) are left to the programs that import them. Not
# threading either (nor queue, which imports it): its at-fork hook makes every fork copy more pages.
PRELOAD = (
    "typing", "math", "cmath", "re", "collections", "collections.abc", "itertools", "functools", "heapq",
    "string", "hashlib", "fractions", "decimal", "bisect", "statistics", "random", "json", "copy",
    "operator", "datetime", "time", "dataclasses", "enum", "numbers", "array", "struct", "unicodedata",
    "io", "abc", "types", "contextlib", "traceback", "linecache", "tempfile", "weakref", "base64",
    "binascii", "zlib", "mmap",
)  # fmt: skip

# Modules whose names are checked after the tests: patching one of them fails the program.
WATCHED = (
    "builtins", "math", "cmath", "operator", "functools", "itertools", "collections", "re", "typing", "string",
    "random", "statistics", "fractions", "decimal", "heapq", "bisect", "copy", "json", "numbers", "datetime",
)  # fmt: skip

RESULT_PIPE_BYTES = 1 << 20
GC_EVERY = 1000  # programs between two collections in the worker
KILL_WAIT_S = 5.0
IDLE_CHECK_S = 2.0  # how often an idle worker checks that its pool is still alive
CPU_POLL_S = (0.005, 0.25)  # bounds of the wait between two readings of a running child's CPU clock


def load_private(name: str) -> types.ModuleType:
    """A fresh copy of module ``name`` whose functions see a private copy of the builtins.

    Functions look builtins up in the dict their module had when they were created, so patching the
    ``builtins`` module later (from candidate code) does not reach them. The copy is not registered
    in ``sys.modules``: candidate code has no name to find it by.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot find module {name}")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__builtins__"] = dict(builtins.__dict__)
    spec.loader.exec_module(module)
    return module


def interpreter_paths() -> dict[str, list[str]]:
    """Where this interpreter's libraries live: ``site`` directories for ``sys.path`` (the worker runs
    with ``-S``, which saves 2 MiB per fork) and ``trusted`` file-name prefixes for the guard.

    The pool computes this and passes it on, so that the worker does not import sysconfig.
    """
    import sysconfig

    paths = sysconfig.get_paths()
    site_dirs = [paths[key] for key in ("purelib", "platlib") if key in paths]
    site_dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    site_dirs = list(dict.fromkeys(d for d in site_dirs if os.path.isdir(d)))
    dirs = [paths[key] for key in ("stdlib", "platstdlib") if key in paths] + site_dirs
    roots = {os.path.join(d, "") for d in dirs} | {os.path.join(os.path.realpath(d), "") for d in dirs}
    return {"site": site_dirs, "trusted": sorted(roots) + ["<frozen ", HARNESS_FILENAME]}


def _compile_error(exc: BaseException) -> dict[str, Any]:
    text = "".join(traceback.format_exception_only(type(exc), exc))
    return {"type": type(exc).__name__, "msg": str(exc), "tb": text, "line": None}


def imported_modules(code: types.CodeType) -> tuple[str, ...]:
    """The modules ``code`` imports anywhere (nested functions included), parent packages first."""
    names: list[str] = []
    stack = [code]
    while stack:
        current = stack.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname == "IMPORT_NAME":
                parts = str(instruction.argval).split(".")
                names += [".".join(parts[: i + 1]) for i in range(len(parts))]
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return tuple(dict.fromkeys(names))


Compiled = tuple[types.CodeType | None, dict[str, Any] | None, tuple[str, ...]]
NOTHING: Compiled = (None, None, ())


def _compile(source: str, filename: str) -> Compiled:
    """Trusted code (harness, tests) compiled with the modules it imports (which the child watches
    for tampering); a compile error becomes a failure."""
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        return None, _compile_error(exc), ()
    return code, None, imported_modules(code)


class Suite:
    """A program's trusted part, compiled once per worker: the harness, the tests and the modules
    they import. The pool defines each suite once and then names it in every request that uses it."""

    __slots__ = ("harness", "harness_error", "modules", "tests")

    def __init__(self, harness: str, tests: list[str]) -> None:
        self.harness, self.harness_error, modules = (
            _compile(harness, HARNESS_FILENAME) if harness else NOTHING
        )
        self.tests = []
        for index, source in enumerate(tests, 1):
            code, error, imports = _compile(source, test_filename(index))
            self.tests.append((code, source, error))
            modules += imports
        self.modules = tuple(dict.fromkeys(modules))


class Worker:
    """One worker process: its isolation plan and the loop that runs programs."""

    def __init__(self, config: dict[str, Any], proto_out: int) -> None:
        paths = config.get("paths") or interpreter_paths()
        sys.path.extend(p for p in paths["site"] if p not in sys.path)
        self.limits = Limits.from_dict(config["limits"])
        self.options = Isolation.from_dict(config["isolation"])
        self.proto_out = proto_out
        recorder = isolation.Recorder()
        directories = [p for p in sys.path if p and os.path.isdir(p)]
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../neatpipe, read below
        self.plan = isolation.setup_namespaces(self.limits, self.options, recorder, directories, [package])
        _preload()
        self.guard = load_private("neatpipe.sandbox.guard")
        self.child = load_private("neatpipe.sandbox.child")
        self.child.configure(self.guard, tuple(paths["trusted"]), WATCHED)
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, self._terminate)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.running: int | None = None  # the pid of the program being run
        self.handled = 0
        self.report = isolation.finish_setup(
            self.plan, self.limits, self.options, config.get("uid"), recorder
        )
        self.flushers = (sys.stdout.flush, sys.stderr.flush)
        self.suites: dict[int, Suite | str] = {}  # defined by the pool, see protocol
        self._rlimit_cache: dict[float, tuple[tuple[str, int, int], ...]] = {}
        gc.collect()
        gc.freeze()  # forks do not touch the preloaded objects' GC headers: fewer copied pages
        gc.disable()  # the request loop makes no reference cycles; a collection would touch every page
        _release_free_memory()

    # -- one program ---------------------------------------------------------------------------

    def _rlimits(self, timeout_s: float) -> tuple[tuple[str, int, int], ...]:
        rlimits = self._rlimit_cache.get(timeout_s)
        if rlimits is None:
            rlimits = self._rlimit_cache[timeout_s] = isolation.child_rlimits(
                self.plan, self.limits, timeout_s
            )
        return rlimits

    def run(self, spec: dict[str, Any], token: str) -> dict[str, Any]:
        """Run one program (its wire form, naming a suite defined earlier); what was observed, for
        the pool to classify.

        The worker deliberately does no more than this per program: after each fork every page it
        writes costs a page fault, so parsing and classifying happen in the pool, and the harness
        and tests arrive (and are compiled) once per suite, not once per program.
        """
        suite = self.suites.get(spec["s"])
        if not isinstance(suite, Suite):
            raise RuntimeError(f"cannot run a program of suite {spec['s']}:\n{suite or 'not defined'}")
        job = self.child.Job(
            code=spec["code"], harness=suite.harness, harness_error=suite.harness_error,
            harness_modules=suite.modules, tests=suite.tests, entry_point=spec["entry_point"],
            seed=spec["seed"], stop_on_failure=spec["stop_on_failure"], token=token, flushers=self.flushers,
        )  # fmt: skip
        return self._execute(job, spec["timeout_s"], spec["wall_s"])

    def _capture_file(self, name: str) -> int:
        """An anonymous file for a captured stream (an unlinked one, next to the working directory,
        where there is no memfd)."""
        if hasattr(os, "memfd_create"):
            return os.memfd_create(name)
        path = os.path.join(os.path.dirname(self.plan.workdir), f".{name}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.unlink(path)
        return fd

    def _execute(self, job: Any, timeout_s: float, wall_s: float) -> dict[str, Any]:
        """Fork, supervise and clean up after one child; the raw observations.

        ``timeout_s`` is the child's CPU-time limit, ``wall_s`` its wall-clock backstop."""
        read_end, write_end = os.pipe()
        if hasattr(fcntl, "F_SETPIPE_SZ"):
            try:
                fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, RESULT_PIPE_BYTES)
            except OSError:
                pass
        out, err = self._capture_file("stdout"), self._capture_file("stderr")
        try:
            pid, start = self._fork(job, isolation.ChildFiles(self.devnull, out, err, write_end), timeout_s)
            os.close(write_end)
            write_end = -1
            status, rusage, killed = self._wait(pid, timeout_s, start + wall_s)
            duration = time.monotonic() - start
            if self.plan.pidns_fd is None:
                isolation.kill_strays(pid)
            channel = _read_all(read_end, 4 * RESULT_PIPE_BYTES)
            stdout, stdout_bytes = _read_capture(out, self.limits.output_bytes)
            stderr, stderr_bytes = _read_capture(err, self.limits.output_bytes)
        finally:
            for fd in (read_end, write_end, out, err):
                if fd >= 0:
                    os.close(fd)
            isolation.reset_workdir(self.plan)
        return {
            "channel": channel.decode("latin-1"),  # raw bytes: the pool parses them
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "killed": killed, "cpu_s": rusage.ru_utime + rusage.ru_stime, "duration_s": duration,
            "stdout": stdout, "stdout_bytes": stdout_bytes, "stderr": stderr, "stderr_bytes": stderr_bytes,
        }  # fmt: skip

    def _fork(self, job: Any, files: isolation.ChildFiles, timeout_s: float) -> tuple[int, float]:
        """Fork the child (PID 1 of a fresh PID namespace when available); returns (pid, start time)."""
        isolation.enter_pid_namespace(self.plan)
        gc.freeze()  # O(1); the child's collector then never walks (and copies) the worker's objects
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._child(job, files, timeout_s)
        self.running = pid  # from here on a SIGTERM takes the program down with the worker
        return pid, start

    def _child(self, job: Any, files: isolation.ChildFiles, timeout_s: float) -> NoReturn:
        """In the forked child: isolate, then hand over to the private runner. Never returns."""
        try:
            isolation.prepare_child(self.plan, files, self._rlimits(timeout_s))
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(2, f"{exc}\n".encode())
            finally:
                os._exit(isolation.EXIT_SETUP_FAILED)
        try:
            self.child.run(job)
        finally:
            os._exit(self.child.EXIT_RUNNER_ERROR)

    def _terminate(self, signum: int, frame: object) -> None:
        """SIGTERM from the pool: take the running program (and its PID namespace) down too.

        The worker's children are read from /proc rather than trusted to ``self.running``: the
        signal may arrive between ``fork`` and the assignment.
        """
        children = isolation.own_children() | ({self.running} if self.running is not None else set())
        for pid in children:
            for kill, target in ((os.kill, pid), (os.killpg, pid)):
                try:
                    kill(target, signal.SIGKILL)
                except OSError:
                    pass
        for pid in children:
            try:
                os.waitpid(pid, 0)  # with a PID namespace: returns once all of it is gone
            except ChildProcessError:
                pass
        if self.plan.pidns_fd is None:
            isolation.kill_strays(None)
        isolation.remove_workdir(self.plan)
        os._exit(0)

    def _reap(self, pid: int) -> tuple[int, Any] | None:
        """Reap every exited child (orphans included); the status of ``pid`` if it was among them."""
        found = None
        while True:
            try:
                reaped, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return found
            if reaped == 0:
                return found
            if reaped == pid:
                found = (status, rusage)

    def _wait(self, pid: int, cpu_limit: float, deadline: float) -> tuple[int, Any, str | None]:
        """Wait for ``pid`` to exit, SIGKILLing it (and its process group) when its CPU time reaches
        ``cpu_limit`` or the wall clock reaches ``deadline``; also says which limit killed it.

        The CPU clock is read when the wait starts and then only when the child could have reached
        its limit on one core since the last reading (at least every 0.25 s), so a program that ends
        within milliseconds costs one reading: its SIGCHLD wakes the worker first. RLIMIT_CPU stays as
        the hard limit in between (several threads can burn CPU faster than one core).
        """
        killed: str | None = None
        clock = _cpu_clock(pid)
        while True:
            reaped = self._reap(pid)
            if reaped is not None:
                self.running = None
                return reaped[0], reaped[1], killed
            remaining = deadline - time.monotonic()
            wait = KILL_WAIT_S
            if killed is None:
                used = _cpu_time(clock)
                if remaining <= 0 or (used is not None and used >= cpu_limit):
                    killed = "wall" if used is None or used < cpu_limit else "cpu"
                    for kill, target in ((os.kill, pid), (os.killpg, pid)):
                        try:
                            kill(target, signal.SIGKILL)
                        except OSError:
                            pass
                    continue
                wait = remaining
                if used is not None:
                    wait = min(remaining, max(CPU_POLL_S[0], min(CPU_POLL_S[1], cpu_limit - used)))
            select.select([self.wake_r], [], [], wait)
            try:
                while os.read(self.wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    # -- the request loop ----------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        data = memoryview(protocol.encode_plain(message))
        while data:
            data = data[os.write(self.proto_out, data) :]

    def serve(self, proto_in: int) -> None:
        self.send({"ready": self.report.to_dict(), "uid": self.plan.uid})
        parent = os.getppid()
        pending = b""
        while True:
            readable, _, _ = select.select([proto_in], [], [], IDLE_CHECK_S)
            if not readable:
                if os.getppid() != parent:
                    return  # the pool died without closing our pipe
                continue
            chunk = os.read(proto_in, 1 << 20)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line:
                    self._handle(protocol.decode(line))

    def _handle(self, message: dict[str, Any]) -> None:
        if "suite" in message:
            try:
                self.suites[message["suite"]] = Suite(message["harness"], message["tests"])
            except Exception:  # noqa: BLE001 - reported with each request that uses the suite
                self.suites[message["suite"]] = traceback.format_exc()[-3000:]
            return
        if "forget" in message:
            self.suites.clear()
            return
        try:
            answer = {"id": message["id"], "o": self.run(message["p"], message["t"])}
        except Exception:  # noqa: BLE001 - one bad request must not take the worker down
            answer = {"id": message["id"], "error": traceback.format_exc()[-3000:]}
        self.send(answer)
        self.handled += 1
        if self.handled % GC_EVERY == 0:  # the collector is off in the worker: sweep now and then
            gc.unfreeze()
            gc.collect()
            gc.freeze()


def _site_builtins() -> None:
    """``exit``, ``quit`` and ``help`` as the site module defines them (the worker runs with -S).

    Programs call ``exit()``; without these it would be a NameError instead of a SystemExit.
    """
    import _sitebuiltins

    eof = "Ctrl-D (i.e. EOF)"
    builtins.exit = _sitebuiltins.Quitter("exit", eof)  # type: ignore[attr-defined]
    builtins.quit = _sitebuiltins.Quitter("quit", eof)  # type: ignore[attr-defined]
    builtins.help = _sitebuiltins._Helper()  # type: ignore[attr-defined]


def _release_free_memory() -> None:
    """Hand freed heap pages back to the kernel: pages that are not mapped are not copied by fork."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _preload() -> None:
    _site_builtins()
    faulthandler.enable()  # a crashing program leaves a Python traceback on its captured stderr
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass


def _cpu_clock(pid: int) -> int | None:
    """The id of the POSIX CPU-time clock of process ``pid`` (Linux encodes it from the pid, and lets
    a parent read its child's clock), or None where there is no such clock to read."""
    if not sys.platform.startswith("linux"):
        return None
    return (~pid << 3) | 2  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)


def _cpu_time(clock: int | None) -> float | None:
    """CPU seconds used so far by the process (all its threads) behind ``clock``; None if unreadable."""
    if clock is None:
        return None
    try:
        return time.clock_gettime(clock)
    except OSError:  # already reaped, or a kernel without per-process clocks: RLIMIT_CPU still holds
        return None


def _read_all(fd: int, limit: int) -> bytes:
    """Everything currently in a pipe, without blocking (an escaped process may hold the write end)."""
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < limit:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_capture(fd: int, limit: int) -> tuple[str, int]:
    """A captured stream as text (head and tail when longer than ``limit``) and its size in bytes."""
    size = os.fstat(fd).st_size
    if size <= limit:
        data = os.pread(fd, size, 0)
        return data.decode("utf-8", "replace"), size
    half = limit // 2
    head, tail = os.pread(fd, half, 0), os.pread(fd, half, size - half)
    text = head.decode("utf-8", "replace") + f"\n... [{size - 2 * half} bytes omitted] ...\n"
    return text + tail.decode("utf-8", "replace"), size


def _take_protocol_fds() -> tuple[int, int]:
    """Move the pipes to the pool off fds 0 and 1, which become /dev/null for everything else."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return proto_in, proto_out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    proto_in, proto_out = _take_protocol_fds()
    try:
        config = json.loads(argv[0])
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        worker = Worker(config, proto_out)
    except BaseException:  # noqa: BLE001 - tell the pool why, then exit
        os.write(proto_out, protocol.encode({"fatal": traceback.format_exc()}))
        return 1
    try:
        worker.serve(proto_in)
    except BrokenPipeError:  # the pool went away while we answered
        pass
    finally:
        isolation.remove_workdir(worker.plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
