"""The pool: :class:`Sandbox` runs programs on long-lived worker processes, results in input order.

The pool lives in the caller's process and stays small: it encodes programs as JSON lines, keeps a
couple of them queued at each worker so that no worker waits for the next one, and reads answers
with ``select`` on the workers' pipes, all in the calling thread (no thread per program, no thread
at all). A worker that dies is replaced; the program it was running is reported as crashed and the
programs queued behind it are sent again.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from neatpipe.errors import NeatpipeError
from neatpipe.sandbox import protocol
from neatpipe.sandbox.classify import classify, outcome_from_wire
from neatpipe.sandbox.limits import Isolation, Limits
from neatpipe.sandbox.program import ExecResult, Program, Status
from neatpipe.sandbox.report import IsolationReport
from neatpipe.sandbox.worker import interpreter_paths

ProgramsDone = Callable[[int, int], None]  # progress(done, total) over a batch of programs
Requests = dict[int, tuple[int, str]]  # request id -> (program index, result-channel token)

QUEUE_DEPTH = 2  # programs in flight per worker: one running, one waiting in its pipe
MAX_SUITES = 1024  # suites (harness + tests) a worker keeps compiled before the pool makes it forget
START_TIMEOUT_S = 60.0  # a worker that has not said "ready" by then is broken
WATCHDOG_GRACE_S = 10.0  # a worker silent for a program's wall-clock limit plus this long is killed
MAX_WORKERS = 64
_UID_BLOCK = 64  # uids reserved per pool instance (one per worker)

_instances = itertools.count()

# The worker is not started with ``-m neatpipe.sandbox.worker``: that would run ``neatpipe/__init__.py``
# (which may one day import heavy things) and this package's ``__init__`` (which imports this module,
# and with it subprocess and threading, whose at-fork hook makes every fork copy more pages). Stub
# packages pointing at the real directories stand in for both.
_BOOTSTRAP = """\
import os, sys, types
for name in ("neatpipe", "neatpipe.sandbox"):
    package = types.ModuleType(name)
    package.__path__ = [os.path.join(sys.argv[1], *name.split(".")[1:])]
    sys.modules[name] = package
from neatpipe.sandbox.worker import main
sys.exit(main(sys.argv[2:]))
"""


class SandboxError(NeatpipeError, RuntimeError):
    """The pool itself failed (a worker cannot start); never raised for a misbehaving program."""


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _default_uid_base() -> int:
    """A block of uids far above real accounts, distinct per process and per pool instance."""
    return 1_000_000_000 + (os.getpid() % 4_000_000) * 4 * _UID_BLOCK + (next(_instances) % 4) * _UID_BLOCK


def _worker_env() -> dict[str, str]:
    """A small, fixed environment: no secrets of the caller reach programs, hashing is deterministic."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "HOME": "/tmp",
    }
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[name] = "1"
    return env


def _crashed(message: str, error_type: str = "WorkerDied") -> ExecResult:
    return ExecResult(status=Status.CRASHED, error_type=error_type, message=message, phase=None)


class _Worker:
    """One worker process as the pool sees it: its pipes, its queue of request ids, its buffers."""

    def __init__(self, slot: int, config: dict[str, Any], python: str) -> None:
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.slot = slot
        self.uid: int | None = None  # the program uid, once the worker reported it drops to it
        self.process = subprocess.Popen(
            [python, "-S", "-c", _BOOTSTRAP, package_dir, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_worker_env(),
            start_new_session=True,  # Ctrl-C in a terminal reaches the pool, which stops workers itself
            close_fds=True,
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin = self.process.stdin.fileno()
        self.stdout = self.process.stdout.fileno()
        os.set_blocking(self.stdin, False)
        self.inflight: deque[int] = deque()
        self.suites: dict[tuple[str, tuple[str, ...]], int] = {}  # what this worker has compiled
        self.outgoing = bytearray()
        self.incoming = b""
        self.report: IsolationReport | None = None
        self.started = time.monotonic()
        self.head_since = self.started  # when the program at the head of the queue (probably) started

    def queue(self, data: bytes) -> None:
        if not self.inflight:
            self.head_since = time.monotonic()
        self.outgoing += data

    def suite(self, program: Program) -> int:
        """The number of ``program``'s suite in this worker, defining it first when new."""
        key = protocol.suite_key(program)
        number = self.suites.get(key)
        if number is None:
            if len(self.suites) >= MAX_SUITES:
                self.outgoing += protocol.encode({"forget": True})
                self.suites.clear()
            number = self.suites[key] = len(self.suites)
            self.outgoing += protocol.encode(protocol.suite_to_wire(number, key))
        return number

    def flush(self) -> None:
        """Write as much queued data as the pipe takes without blocking."""
        while self.outgoing:
            try:
                written = os.write(self.stdin, self.outgoing)
            except BlockingIOError:
                return
            except BrokenPipeError:
                self.outgoing.clear()  # the worker died: noticed when its stdout reaches EOF
                return
            del self.outgoing[:written]

    def read(self) -> list[dict[str, Any]] | None:
        """Messages now available; None at end of file (the worker is gone)."""
        chunk = os.read(self.stdout, 1 << 20)
        if not chunk:
            return None
        *lines, self.incoming = (self.incoming + chunk).split(b"\n")
        return [protocol.decode(line) for line in lines if line]

    def overdue(self, now: float, timeout_s: float) -> bool:
        if self.report is None:
            return now - self.started > START_TIMEOUT_S
        return bool(self.inflight) and now - self.head_since > timeout_s + WATCHDOG_GRACE_S

    def stop(self, grace_s: float = 1.0) -> None:
        """Close the request pipe (an idle worker exits at once); after ``grace_s`` SIGTERM (the worker
        kills the program it is running), then SIGKILL. Always reaps the worker."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        for ask, wait_s in ((None, grace_s), (self.process.terminate, 1.0), (self.process.kill, None)):
            if ask is not None:
                try:
                    ask()
                except OSError:
                    pass
            try:
                self.process.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        _kill_uid(self.uid)

    def kill(self) -> None:
        try:
            self.process.kill()
        except OSError:
            pass
        self.process.wait()
        _kill_uid(self.uid)


def _kill_uid(uid: int | None) -> None:
    """SIGKILL every process of a program uid (a worker killed mid-program leaves its program behind)."""
    if uid is None or os.geteuid() != 0 or not os.path.isdir("/proc"):
        return
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                continue


def _stop_all(workers: list[_Worker | None], grace_s: float = 1.0) -> None:
    for worker in workers:
        if worker is not None:
            worker.stop(grace_s)
    workers[:] = [None] * len(workers)


class Sandbox:
    """A pool of isolated worker processes that run :class:`Program` objects.

    >>> with Sandbox(workers=2) as sandbox:                                  # doctest: +SKIP
    ...     results = sandbox.run_many(programs, progress=print)

    Workers start on first use (or :meth:`start`) and run until :meth:`close`. ``run`` and
    ``run_many`` may be called from several threads; calls are served one at a time.
    """

    def __init__(
        self,
        workers: int | None = None,
        limits: Limits | None = None,
        isolation: Isolation | None = None,
        *,
        python: str | None = None,
    ) -> None:
        self.workers = default_workers() if workers is None else workers
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, got {workers!r}")
        self.limits = limits or Limits()
        self.isolation_options = isolation or Isolation()
        self.python = python or sys.executable
        self._uid_base = self.isolation_options.uid_base or _default_uid_base()
        # Library locations of this interpreter (another one finds its own in the worker).
        self._paths = interpreter_paths() if self.python == sys.executable else None
        self._pool: list[_Worker | None] = [None] * self.workers
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._pool)
        self.restarts = 0  # workers replaced after dying: a health figure for logs

    # -- life cycle ----------------------------------------------------------------------------

    def _config(self, slot: int) -> dict[str, Any]:
        return {
            "limits": self.limits.to_dict(),
            "isolation": self.isolation_options.to_dict(),
            "uid": self._uid_base + slot,
            "slot": slot,
            "paths": self._paths,
        }

    def _spawn(self, slot: int) -> _Worker:
        if os.name != "posix":
            raise SandboxError(f"the sandbox needs a POSIX system (fork), not {os.name}")
        worker = _Worker(slot, self._config(slot), self.python)
        self._pool[slot] = worker
        return worker

    def start(self) -> Sandbox:
        """Start every worker and wait until each reported its isolation features."""
        with self._lock:
            self._ensure_started()
            self._await_ready()
        return self

    def _ensure_started(self) -> list[_Worker]:
        if self._closed:
            raise SandboxError("this Sandbox is closed")
        for slot, worker in enumerate(self._pool):
            if worker is None:
                self._spawn(slot)
        return [w for w in self._pool if w is not None]

    def _await_ready(self) -> None:
        while any(w is not None and w.report is None for w in self._pool):
            self._poll({}, [], 1.0)

    def close(self) -> None:
        """Stop every worker (programs still running are killed with their worker)."""
        with self._lock:
            self._closed = True
            _stop_all(self._pool)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def isolation(self) -> IsolationReport:
        """Which isolation features are active in the workers, and why the others are not."""
        self.start()
        worker = self._pool[0]
        assert worker is not None and worker.report is not None
        return worker.report

    # -- running -------------------------------------------------------------------------------

    def run(self, program: Program) -> ExecResult:
        """Run one program (prefer :meth:`run_many` for many: it keeps every worker busy)."""
        return self.run_many([program])[0]

    def run_many(self, programs: Iterable[Program], progress: ProgramsDone | None = None) -> list[ExecResult]:
        """Run ``programs`` on all workers; results come back in input order.

        ``progress(done, total)`` is called after each result. An exception (KeyboardInterrupt
        included) stops every worker so that nothing keeps running; they restart on the next call.
        """
        programs = list(programs)
        for program in programs:
            if not isinstance(program, Program):
                raise TypeError(f"run_many expects Program objects, got {type(program).__name__}")
        with self._lock:
            self._ensure_started()
            try:
                return self._run_all(programs, progress)
            except BaseException:
                _stop_all(self._pool, grace_s=0)  # programs may be running: stop them now
                raise

    def _run_all(self, programs: Sequence[Program], progress: ProgramsDone | None) -> list[ExecResult]:
        results: list[ExecResult | None] = [None] * len(programs)
        waiting = deque(range(len(programs)))
        requests: Requests = {}
        done = 0
        while done < len(programs):
            self._dispatch(programs, waiting, requests)
            for index, result in self._poll(requests, programs, 0.5, waiting):
                results[index] = result
                done += 1
                if progress is not None:
                    progress(done, len(programs))
        return results  # type: ignore[return-value]

    def _dispatch(self, programs: Sequence[Program], waiting: deque[int], requests: Requests) -> None:
        for worker in self._ensure_started():
            while waiting and len(worker.inflight) < QUEUE_DEPTH:
                index = waiting.popleft()
                request, token = next(self._ids), os.urandom(12).hex()
                requests[request] = (index, token)
                program = programs[index]
                wire = protocol.request_to_wire(program, worker.suite(program))
                worker.queue(protocol.encode({"id": request, "t": token, "p": wire}))
                worker.inflight.append(request)
            worker.flush()

    def _poll(
        self,
        requests: Requests,
        programs: Sequence[Program],
        timeout_s: float,
        waiting: deque[int] | None = None,
    ) -> list[tuple[int, ExecResult]]:
        """Wait for worker output (or the watchdog) once; the finished (index, result) pairs."""
        workers = [w for w in self._pool if w is not None]
        writers = [w.stdin for w in workers if w.outgoing]
        readable, writable, _ = select.select([w.stdout for w in workers], writers, [], timeout_s)
        finished: list[tuple[int, ExecResult]] = []
        for worker in workers:
            if worker.stdin in writable:
                worker.flush()
            if worker.stdout in readable:
                messages = worker.read()
                if messages is None:
                    finished += self._replace(worker, requests, waiting, "exited")
                    continue
                finished += self._accept(worker, messages, requests, programs)
        now = time.monotonic()
        for worker in workers:
            head = requests.get(worker.inflight[0]) if worker.inflight else None
            timeout = programs[head[0]].wall_limit_s if head is not None else 0.0
            if self._pool[worker.slot] is worker and worker.overdue(now, timeout):
                worker.kill()
                finished += self._replace(worker, requests, waiting, "stopped answering and was killed")
        return finished

    def _accept(
        self, worker: _Worker, messages: list[dict[str, Any]], requests: Requests, programs: Sequence[Program]
    ) -> list[tuple[int, ExecResult]]:
        finished = []
        for message in messages:
            if "ready" in message:
                worker.report = IsolationReport.from_dict(message["ready"])
                worker.uid = message.get("uid")
            elif "fatal" in message:
                _stop_all(self._pool)
                raise SandboxError(f"a sandbox worker failed to start:\n{message['fatal']}")
            elif "id" in message:
                request = message["id"]
                if request in worker.inflight:
                    worker.inflight.remove(request)
                    worker.head_since = time.monotonic()
                entry = requests.pop(request, None)
                if entry is not None:
                    finished.append((entry[0], self._result(message, entry[1], programs[entry[0]])))
        return finished

    def _result(self, message: dict[str, Any], token: str, program: Program) -> ExecResult:
        """Classify a worker's observations (done here: the worker stays lean, see ``Worker.run``)."""
        if "error" in message:
            return _crashed(f"the sandbox worker failed on this program:\n{message['error']}", "SandboxError")
        return classify(program, outcome_from_wire(message["o"], token), self.limits)

    def _replace(
        self, worker: _Worker, requests: Requests, waiting: deque[int] | None, how: str
    ) -> list[tuple[int, ExecResult]]:
        """A worker died: blame the program it was running, re-queue the others, start a new one."""
        code = worker.process.poll()
        if code is None:
            worker.kill()
            code = worker.process.returncode
        if worker.report is None:
            _stop_all(self._pool)
            raise SandboxError(f"a sandbox worker exited with status {code} during start-up")
        finished = []
        if worker.inflight:
            head = requests.pop(worker.inflight.popleft(), None)
            if head is not None:
                message = f"the sandbox worker running this program {how} (status {code})"
                finished.append((head[0], _crashed(message)))
        for request in reversed(worker.inflight):
            entry = requests.pop(request, None)
            if entry is not None and waiting is not None:
                waiting.appendleft(entry[0])
        worker.inflight.clear()
        worker.stop(0)
        self.restarts += 1
        self._spawn(worker.slot)
        return finished


def run_program(
    program: Program, limits: Limits | None = None, isolation: Isolation | None = None
) -> ExecResult:
    """Run one program in a one-worker sandbox started for the purpose (about 0.1-0.3 s).

    For more than a handful of programs use a :class:`Sandbox`, which keeps its workers.
    """
    with Sandbox(workers=1, limits=limits, isolation=isolation) as sandbox:
        return sandbox.run(program)
