"""Process isolation: what a worker sets up once, and what each forked child does before running code.

Expensive steps happen once per worker, so that each program costs one ``fork``:

* a network namespace (no network) and a mount namespace in which every mount is read-only except a
  private tmpfs on ``/tmp`` that holds the per-program working directory; as root directly, as an
  ordinary user inside a user namespace where the kernel allows it;
* ``PR_SET_NO_NEW_PRIVS``, ``PR_SET_CHILD_SUBREAPER`` and ``RLIMIT_CORE=0`` on the worker.

Per program the worker only points the PID namespace of its next child at a fresh one (two system
calls, a few microseconds) and forks. The child then leads its own process group, wires its file
descriptors, sets RLIMIT_AS/CPU/FSIZE/NPROC, drops to an unprivileged uid (root) or drops every
capability (user namespace), and, where nothing else would clean up after a dead worker, asks to be
killed with it.

Everything that fails is recorded, never raised: the worker reports what is really active (see
:mod:`neatpipe.sandbox.report`) and falls back to rlimits, process groups and the subreaper, whose
orphans :func:`kill_strays` finds in ``/proc``.
"""

from __future__ import annotations

import _signal
import errno
import os
import resource
import signal
import stat
import sys
import tempfile
from dataclasses import dataclass, field

from neatpipe.sandbox import _linux
from neatpipe.sandbox.limits import Isolation, Limits
from neatpipe.sandbox.report import FEATURES, Feature, IsolationReport

RESULT_FD = 3  # must match neatpipe.sandbox.child.RESULT_FD
EXIT_SETUP_FAILED = 112  # a child could not be prepared; stderr says which step
PRIVATE_TMP = "/tmp"


class SetupError(Exception):
    """A per-child isolation step failed."""

    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"{step}: {error}")
        self.step = step


@dataclass
class ChildSetup:
    """What a worker established, and what each of its children must do."""

    pidns_fd: int | None = None  # own PID namespace, to reset before creating each program's one
    uid: int | None = None  # programs run as this uid/gid (worker started as root)
    drop_caps: bool = False  # programs drop all capabilities (user-namespace mode)
    nproc: int | None = None  # RLIMIT_NPROC value, None when not enforceable
    rlimits: set[str] = field(default_factory=lambda: {"as", "cpu", "fsize"})
    process_group: bool = True
    pdeathsig: bool = False
    private_tmp: bool = False
    workdir: str = ""  # the same path for every program of a worker, emptied after each one
    baseline_bytes: int = 0
    max_fd: int = 1024


class Recorder:
    """Collects one :class:`Feature` per isolation feature, in :data:`FEATURES` order."""

    def __init__(self) -> None:
        self._features: dict[str, Feature] = {}
        self._notes: dict[str, str] = {}
        self._failed: set[str] = set()
        uid = os.geteuid()  # before any user namespace, where we would look like root
        self._platform = f"{sys.platform}, {'root' if uid == 0 else f'uid {uid}'}"

    def _detail(self, name: str, text: str) -> str:
        note = self._notes.get(name)
        return f"{text}; {note}" if note else text

    def on(self, name: str, detail: str = "") -> None:
        if name in self._failed:
            return  # a step already found it unusable
        self._features[name] = Feature(name, True, self._detail(name, detail or FEATURES[name]))

    def off(self, name: str, reason: str) -> None:
        self._features[name] = Feature(name, False, reason)

    def fail(self, name: str, reason: str) -> None:
        """Record ``name`` as unusable here, for good (a later ``on`` is ignored)."""
        self._failed.add(name)
        self.off(name, reason)

    def note(self, name: str, text: str) -> None:
        """Remember a detail to append when ``name`` is recorded (or to the record already there)."""
        self._notes[name] = text
        if name in self._features:
            feature = self._features[name]
            self._features[name] = Feature(name, feature.active, f"{feature.detail}; {text}")

    def has_failed(self, name: str) -> bool:
        return name in self._failed

    def is_on(self, name: str) -> bool:
        feature = self._features.get(name)
        return bool(feature and feature.active)

    def report(self, baseline_bytes: int) -> IsolationReport:
        features = tuple(self._features[n] for n in FEATURES if n in self._features)
        return IsolationReport(features, round(baseline_bytes / 2**20, 1), self._platform)


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


# -- worker start-up, part 1: namespaces (must run while the worker is single-threaded) ----------


def _enter_user_namespace(flags: int) -> None:
    """unshare() into a new user namespace (plus ``flags``) and map ourselves to uid/gid 0 inside."""
    uid, gid = os.geteuid(), os.getegid()
    _linux.unshare(_linux.CLONE_NEWUSER | flags)
    _linux.write_file("/proc/self/setgroups", "deny")
    _linux.write_file("/proc/self/uid_map", f"0 {uid} 1")
    _linux.write_file("/proc/self/gid_map", f"0 {gid} 1")


def _become_pid_namespace_init() -> None:
    """In user-namespace mode: fork into the new PID namespace and let the original process wait.

    Resetting the PID namespace for each program needs rights over the namespace the worker lives
    in, which an unprivileged worker only has in a namespace its own user namespace owns. The
    original process stays behind as a shim that exits with the worker's status; the worker dies
    with it.
    """
    pid = os.fork()
    if pid == 0:
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _readonly_remount(rec: Recorder) -> None:
    """Remount every mount read-only, except the private /tmp (and what it hides)."""
    with open("/proc/self/mountinfo") as f:
        mounts = _linux.parse_mountinfo(f.read())
    failed = []
    for mount_point, options in mounts:
        if mount_point == PRIVATE_TMP or mount_point.startswith(PRIVATE_TMP + "/"):
            continue
        flags = _linux.mount_flags(options)
        if flags & _linux.MS_RDONLY:
            continue
        try:
            _linux.mount(
                None, mount_point, None, _linux.MS_REMOUNT | _linux.MS_BIND | _linux.MS_RDONLY | flags
            )
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                failed.append(f"{mount_point} ({_reason(exc)})")
    if failed:
        rec.off("readonly_filesystem", "could not remount read-only: " + ", ".join(failed))
    else:
        rec.on("readonly_filesystem", f"all {len(mounts)} mounts read-only except the private {PRIVATE_TMP}")


def _mount_private_tmp(limits: Limits, rec: Recorder) -> bool:
    size_kib = max(64 * 1024, 4 * limits.file_size_bytes // 1024)
    try:
        _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)
        _linux.mount(
            "tmpfs", PRIVATE_TMP, "tmpfs", _linux.MS_NOSUID | _linux.MS_NODEV, f"size={size_kib}k,mode=0755"
        )
    except OSError as exc:
        rec.off("private_tmp", f"mounting a tmpfs on {PRIVATE_TMP} failed: {_reason(exc)}")
        return False
    rec.on("private_tmp", f"tmpfs of {size_kib // 1024} MiB on {PRIVATE_TMP}, emptied after each program")
    return True


def hidden_by_private_tmp(directories: list[str]) -> list[str]:
    """The directories the worker needs (the package, the interpreter's libraries) that a tmpfs on
    ``/tmp`` would cover: with any of them, the worker keeps the real ``/tmp`` (a documented fallback)."""
    prefix = os.path.join(PRIVATE_TMP, "")
    return [d for d in directories if os.path.join(os.path.realpath(d), "").startswith(prefix)]


def _blocked_directory(path: str) -> str | None:
    """The first directory on the way to ``path`` (itself included) that other users cannot enter."""
    current = "/"
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return None
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return current
    return None


def _make_mounts_private(rec: Recorder) -> bool:
    """Stop mount events from propagating to the host (needed before any mount in our namespace)."""
    try:
        _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)
    except OSError as exc:
        rec.note("privilege_drop", f"cannot make the mount table private: {_reason(exc)}")
        return False
    return True


def _expose(directories: list[str], rec: Recorder, private_tmp: bool = True) -> None:
    """Make the interpreter's directories reachable by an unprivileged uid, hiding everything else.

    A pyenv or a virtual environment under ``/root`` sits behind a 0700 directory: a program running
    as an unprivileged uid could not import a single module the worker did not preload. In the
    worker's private mount namespace each such directory is covered with an empty tmpfs, and only
    the subtrees leading to the interpreter are bind-mounted back into it (which also hides the rest
    of the home directory from programs).
    """
    # staging for bind mounts on their way back: in the private /tmp, or without one a fresh directory
    # in the real /tmp (top-level, so never inside a directory this covers), removed again below
    staging = (
        os.path.join(PRIVATE_TMP, ".expose")
        if private_tmp
        else tempfile.mkdtemp(prefix="neatpipe-expose-", dir=PRIVATE_TMP)
    )
    try:
        _expose_through(directories, rec, staging)
    finally:
        if os.path.isdir(staging):
            os.rmdir(staging)


def _expose_through(directories: list[str], rec: Recorder, staging: str) -> None:
    exposed = []
    for _round in range(4):  # a subtree may itself contain a closed directory
        blocked: dict[str, set[str]] = {}
        for directory in directories:
            found = _blocked_directory(directory)
            if found is not None and found != directory:
                child = directory[len(found) :].strip("/").split("/")[0]
                blocked.setdefault(found, set()).add(child)
            elif found == directory:
                rec.fail("privilege_drop", f"{directory} is not readable by other users")
                return
        if not blocked:
            break
        for parent in sorted(blocked, key=len):
            os.makedirs(staging, exist_ok=True)
            names = sorted(blocked[parent])
            for i, name in enumerate(names):
                os.mkdir(os.path.join(staging, str(i)))
                _linux.mount(
                    os.path.join(parent, name),
                    os.path.join(staging, str(i)),
                    None,
                    _linux.MS_BIND | _linux.MS_REC,
                )
            _linux.mount("tmpfs", parent, "tmpfs", _linux.MS_NOSUID | _linux.MS_NODEV, "size=64k,mode=0755")
            for i, name in enumerate(names):
                os.mkdir(os.path.join(parent, name))
                _linux.mount(os.path.join(staging, str(i)), os.path.join(parent, name), None, _linux.MS_MOVE)
                os.rmdir(os.path.join(staging, str(i)))
            exposed.append(f"{parent} (showing only {', '.join(names)})")
    if exposed:
        rec.note("privilege_drop", "hidden behind a tmpfs: " + "; ".join(exposed))


def setup_namespaces(
    limits: Limits, options: Isolation, rec: Recorder, directories: list[str], worker_only: list[str] = ()
) -> ChildSetup:
    """Namespaces, mounts and worker-wide settings; returns the plan the rest builds on.

    ``directories`` are the interpreter's library directories, which programs must be able to read;
    ``worker_only`` are directories only the worker reads after this (neatpipe's own package).
    """
    plan = ChildSetup()
    _worker_wide_settings(rec)
    names = ("user_namespace", "network_namespace", "mount_namespace", "readonly_filesystem", "private_tmp")
    if not _linux.AVAILABLE or not options.namespaces:
        reason = (
            f"not available on {sys.platform}"
            if not _linux.AVAILABLE
            else "disabled by Isolation(namespaces=False)"
        )
        for name in names:
            rec.off(name, reason)
        return plan
    flags = _linux.CLONE_NEWNS | (0 if limits.network else _linux.CLONE_NEWNET)
    try:
        if os.geteuid() == 0:
            _linux.unshare(flags)
            rec.off("user_namespace", "not needed: the worker runs as root")
        else:
            _enter_user_namespace(flags | (_linux.CLONE_NEWPID if options.pid_namespace else 0))
            rec.on("user_namespace", f"uid {os.getuid()} maps to the invoking user")
            if options.pid_namespace:
                _become_pid_namespace_init()
    except OSError as exc:
        reason = f"unshare failed: {_reason(exc)}"
        for name in names:
            rec.off(name, reason)
        return plan
    if limits.network:
        rec.off("network_namespace", "network allowed by Limits(network=True)")
    else:
        rec.on("network_namespace", "empty network namespace: no interface is up, every connection fails")
    rec.on("mount_namespace")
    hidden = hidden_by_private_tmp([*directories, *worker_only])
    if hidden:
        rec.off(
            "private_tmp",
            f"{hidden[0]} lies under {PRIVATE_TMP}, which a private {PRIVATE_TMP} would hide from the worker "
            f"(install neatpipe and its interpreter outside {PRIVATE_TMP} to get one)",
        )
        plan.private_tmp = False
        private_mounts = _make_mounts_private(rec)
    else:
        plan.private_tmp = _mount_private_tmp(limits, rec)
        private_mounts = plan.private_tmp
    if private_mounts and os.geteuid() == 0 and options.drop_privileges:
        try:
            _expose(directories, rec, plan.private_tmp)
        except OSError as exc:
            rec.fail("privilege_drop", f"cannot expose the interpreter's directories: {_reason(exc)}")
    if plan.private_tmp:
        _readonly_remount(rec)
    else:
        rec.off("readonly_filesystem", "needs the private /tmp")
    return plan


def _worker_wide_settings(rec: Recorder) -> None:
    """Settings every child inherits: no core dumps, no privilege gain, adoption of orphans."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        rec.on("rlimit_core")
    except (OSError, ValueError) as exc:
        rec.off("rlimit_core", _reason(exc))
    if not _linux.AVAILABLE:
        for name in ("no_new_privs", "subreaper"):
            rec.off(name, f"not available on {sys.platform}")
        return
    for name, option in (
        ("no_new_privs", _linux.PR_SET_NO_NEW_PRIVS),
        ("subreaper", _linux.PR_SET_CHILD_SUBREAPER),
    ):
        try:
            _linux.prctl(option, 1)
            rec.on(name)
        except OSError as exc:
            rec.off(name, f"prctl failed: {_reason(exc)}")


# -- worker start-up, part 2: after preloading --------------------------------------------------


def _address_space() -> int:
    """The worker's current virtual size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _uid_is_mapped(uid: int) -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            for line in f:
                inside, _, count = (int(x) for x in line.split())
                if inside <= uid < inside + count:
                    return True
    except (OSError, ValueError):
        return False
    return False


def _plan_privileges(plan: ChildSetup, options: Isolation, uid: int | None, rec: Recorder) -> None:
    if not options.drop_privileges:
        rec.off("privilege_drop", "disabled by Isolation(drop_privileges=False)")
    elif rec.has_failed("privilege_drop"):
        pass  # ruled out while setting up the mounts
    elif rec.is_on("user_namespace"):
        plan.drop_caps = True
        rec.on(
            "privilege_drop",
            "all capabilities dropped (uid 0 inside the user namespace is the invoking user)",
        )
    elif os.geteuid() != 0:
        rec.off("privilege_drop", "not root and no user namespace: programs run as the invoking user")
    elif uid is None or not _uid_is_mapped(uid):
        rec.off(
            "privilege_drop", f"uid {uid} is not mapped in this user namespace; set Isolation(uid_base=...)"
        )
    else:
        for pid in _processes_of(uid):  # left by a worker that died: the uid is reserved for the sandbox
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        plan.uid = uid
        rec.on("privilege_drop", f"programs run as uid/gid {uid} with no supplementary groups")


def _plan_nproc(plan: ChildSetup, limits: Limits, rec: Recorder) -> None:
    plan.nproc = None
    if rec.has_failed("rlimit_nproc"):
        return
    if not hasattr(resource, "RLIMIT_NPROC") or not os.path.isdir("/proc"):
        rec.off("rlimit_nproc", f"not available on {sys.platform}")
    elif plan.uid is not None:
        plan.nproc = limits.max_processes
        rec.on("rlimit_nproc", f"{limits.max_processes} processes/threads for uid {plan.uid}")
    elif plan.drop_caps:
        plan.nproc = limits.max_processes + 2  # the worker and its shim share the uid in the namespace
        rec.on(
            "rlimit_nproc", f"{limits.max_processes} processes/threads (counted inside the user namespace)"
        )
    elif os.geteuid() == 0:
        rec.off("rlimit_nproc", "not enforced by the kernel for root without a privilege drop")
    else:
        tasks = sum(
            len(os.listdir(f"/proc/{pid}/task")) for pid in _processes_of(os.geteuid()) if _exists(pid)
        )
        plan.nproc = tasks + limits.max_processes + 16
        rec.on("rlimit_nproc", f"approximate: counts all {tasks} tasks of uid {os.geteuid()} at start-up")


def _exists(pid: int) -> bool:
    return os.path.isdir(f"/proc/{pid}/task")


def _plan_pid_namespace(plan: ChildSetup, options: Isolation, rec: Recorder) -> None:
    if not _linux.AVAILABLE:
        rec.off("pid_namespace", f"not available on {sys.platform}")
        return
    if not options.pid_namespace:
        rec.off("pid_namespace", "disabled by Isolation(pid_namespace=False)")
        return
    if os.geteuid() != 0 and not (rec.is_on("user_namespace") and os.getpid() == 1):
        rec.off("pid_namespace", "needs root or a user namespace")
        return
    try:
        plan.pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY)
    except OSError as exc:
        rec.off("pid_namespace", f"cannot open /proc/self/ns/pid: {_reason(exc)}")
    else:
        rec.on("pid_namespace")


def finish_setup(
    plan: ChildSetup, limits: Limits, options: Isolation, uid: int | None, rec: Recorder
) -> IsolationReport:
    """Decide the per-child steps, verify them in a probe child, and report what is active."""
    plan.baseline_bytes = _address_space()
    # closerange() walks every number up to this where there is no close_range(2) (macOS)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    plan.max_fd = soft if 0 < soft < 1 << 16 else 1 << 16  # RLIM_INFINITY may read as -1
    _plan_pid_namespace(plan, options, rec)
    _plan_privileges(plan, options, uid, rec)
    _create_workdir(plan)
    os.environ["TMPDIR"] = os.environ["HOME"] = plan.workdir
    tempfile.tempdir = plan.workdir
    rec.on("process_group")
    _probe(plan, limits, rec)
    rec.on("wall_clock_kill")
    if hasattr(os, "memfd_create"):
        rec.on("memory_capture")
    else:
        rec.off("memory_capture", "no memfd_create: output goes to unlinked files in the work directory")
    return rec.report(plan.baseline_bytes)


def _plan_parent_death(plan: ChildSetup, rec: Recorder) -> None:
    """PR_SET_PDEATHSIG only where nothing else cleans up after a dead worker (it costs per program)."""
    plan.pdeathsig = False
    if rec.has_failed("parent_death_signal"):
        return
    if plan.pidns_fd is not None and os.getpid() == 1:
        rec.off(
            "parent_death_signal", "not needed: programs live in the worker's PID namespace and die with it"
        )
    elif plan.uid is not None:
        rec.off("parent_death_signal", "not needed: a replacement worker kills every process of its uid")
    elif not _linux.AVAILABLE:
        rec.off("parent_death_signal", f"not available on {sys.platform}")
    else:
        plan.pdeathsig = True
        rec.on("parent_death_signal")


# -- the probe: run the per-child steps once and drop those that fail ----------------------------

_STEP_FEATURES = {
    "rlimit_as": "as",
    "rlimit_cpu": "cpu",
    "rlimit_fsize": "fsize",
}


def _disable(plan: ChildSetup, step: str, reason: str, rec: Recorder) -> None:
    if step in _STEP_FEATURES:
        plan.rlimits.discard(_STEP_FEATURES[step])
    elif step == "rlimit_nproc":
        plan.nproc = None
    elif step == "privilege_drop":
        plan.uid, plan.drop_caps = None, False
    elif step == "parent_death_signal":
        plan.pdeathsig = False
    elif step == "pid_namespace" and plan.pidns_fd is not None:
        try:  # children must be born in the worker's own namespace again, not the probe's dead one
            _linux.setns(plan.pidns_fd, _linux.CLONE_NEWPID)
        except OSError:
            pass
        os.close(plan.pidns_fd)
        plan.pidns_fd = None
    elif step == "process_group":
        plan.process_group = False
    else:
        raise RuntimeError(f"the sandbox cannot prepare a child process: {step}: {reason}")
    rec.fail(step, f"failed in a probe process: {reason}")


def _probe(plan: ChildSetup, limits: Limits, rec: Recorder) -> None:
    """Fork children that run every per-child step until one succeeds end to end.

    The process limit and the parent-death signal depend on whether the privilege drop works, so
    they are planned again after each failure.
    """
    if not plan.baseline_bytes:
        plan.rlimits.discard("as")
        rec.fail("rlimit_as", "cannot measure the worker's address space (no /proc/self/statm)")
    for name in _STEP_FEATURES:
        if _STEP_FEATURES[name] in plan.rlimits:
            rec.on(name)
    for _attempt in range(8):
        _plan_nproc(plan, limits, rec)
        _plan_parent_death(plan, rec)
        failed = _probe_once(plan, limits)
        if failed is None:
            return
        _disable(plan, *failed, rec)
    raise RuntimeError("the sandbox cannot prepare a child process: too many failing steps")


def _probe_once(plan: ChildSetup, limits: Limits) -> tuple[str, str] | None:
    read_end, write_end = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    enter_pid_namespace(plan)
    pid = os.fork()
    if pid == 0:
        try:
            files = ChildFiles(devnull, devnull, devnull, write_end)
            prepare_child(plan, files, child_rlimits(plan, limits, 10.0))
            if plan.pidns_fd is not None and os.getpid() != 1:
                raise SetupError("pid_namespace", OSError("the child is not PID 1 of a new namespace"))
            _check_library_access(plan)
            answer = "ok"
        except SetupError as exc:
            answer = f"{exc.step}\n{exc}"
        except BaseException as exc:  # noqa: BLE001 - a bug: say what it was
            answer = f"probe\n{type(exc).__name__}: {exc}"
        _report_probe(answer, write_end)
        os._exit(0)
    os.close(write_end)
    os.close(devnull)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    reset_workdir(plan)
    answer = b"".join(chunks).decode(errors="replace")
    if answer == "ok":
        return None
    step, _, reason = answer.partition("\n")
    return (step or "probe", reason or "the probe process died")


def _check_library_access(plan: ChildSetup) -> None:
    """A program must be able to import what the worker did not preload: the standard library has to
    be readable by the uid it runs as (a Python under /root is not, without a private /tmp to expose it)."""
    if plan.uid is None:
        return
    library = os.path.dirname(os.__file__)
    try:
        os.listdir(library)
    except OSError as exc:
        raise SetupError(
            "privilege_drop", OSError(f"uid {plan.uid} cannot read {library}: {_reason(exc)}")
        ) from None


def _report_probe(answer: str, write_end: int) -> None:
    """Write the probe's answer to the pipe, whether or not the descriptors were rewired already."""
    for fd in (write_end, RESULT_FD):  # closed by closerange once RESULT_FD holds the pipe
        try:
            os.write(fd, answer.encode())
            return
        except OSError:
            continue


# -- per program --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildFiles:
    """File descriptors (in the worker) that become the child's 0, 1, 2 and :data:`RESULT_FD`."""

    stdin: int
    stdout: int
    stderr: int
    result: int


def enter_pid_namespace(plan: ChildSetup) -> None:
    """Make the next forked child PID 1 of a brand-new PID namespace (when that feature is on).

    Every fork the worker makes goes through here, so nothing needs to point children back at the
    worker's own namespace afterwards.
    """
    if plan.pidns_fd is not None:
        _linux.fresh_pid_namespace(plan.pidns_fd)


def _create_workdir(plan: ChildSetup) -> None:
    """The working directory: the private /tmp itself, or a directory of our own without one.

    With a private /tmp the program's working directory *is* /tmp: nothing else on the machine is
    writable, and nothing is left for the next program. Without one, a fresh directory under the
    system's temporary directory (writes elsewhere are then up to file permissions).
    """
    if plan.private_tmp:
        plan.workdir = PRIVATE_TMP
    else:
        root = tempfile.mkdtemp(prefix="neatpipe-sandbox-")
        if plan.uid is not None:
            os.chmod(root, 0o711)  # the program's uid must reach its own directory inside
        plan.workdir = os.path.join(root, "work")
        os.mkdir(plan.workdir, 0o700)
    _own_workdir(plan)


def _own_workdir(plan: ChildSetup) -> None:
    if plan.uid is not None:
        os.chown(plan.workdir, plan.uid, plan.uid)
    os.chmod(plan.workdir, 0o700)


def remove_workdir(plan: ChildSetup) -> None:
    """At worker exit: delete the directory made for the working directory (a private /tmp simply
    disappears with the mount namespace)."""
    if plan.workdir and not plan.private_tmp:
        _remove(os.path.dirname(plan.workdir))


def reset_workdir(plan: ChildSetup) -> None:
    """Empty the working directory and restore its owner and mode, whatever the program did.

    Entries are removed without following symbolic links (the worker may be root, the entries are
    the program's). Usually the directory is empty and this costs one ``scandir``.
    """
    try:
        info = os.lstat(plan.workdir)
        replaced = not stat.S_ISDIR(info.st_mode)
    except FileNotFoundError:
        info, replaced = None, True
    if replaced:  # only possible without a private /tmp (its root is a mount point)
        _remove(plan.workdir)
        os.mkdir(plan.workdir, 0o700)
        _own_workdir(plan)
    elif info is not None and (
        stat.S_IMODE(info.st_mode) != 0o700 or (plan.uid is not None and info.st_uid != plan.uid)
    ):
        _own_workdir(plan)
    with os.scandir(plan.workdir) as entries:
        for entry in list(entries):
            _remove(entry.path)


def _remove(path: str) -> None:
    """Delete a file, link or directory tree, making directories writable where the program locked them."""
    import shutil

    if not os.path.isdir(path) or os.path.islink(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return

    def unlock_and_retry(function: object, failed: str, exc_info: object) -> None:
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)
        except OSError:
            pass

    shutil.rmtree(path, onerror=unlock_and_retry)


def _step(name: str, function: object, *args: object) -> None:
    try:
        function(*args)  # type: ignore[operator]
    except (OSError, ValueError, AttributeError) as exc:  # AttributeError: a call this system lacks
        raise SetupError(name, exc) from None


def child_rlimits(plan: ChildSetup, limits: Limits, timeout_s: float) -> tuple[tuple[str, int, int], ...]:
    """(step name, RLIMIT_*, value) for a program, computed in the worker so the child only applies them."""
    wanted = {
        "as": (
            resource.RLIMIT_AS,
            plan.baseline_bytes + limits.memory_bytes if plan.baseline_bytes else None,
        ),
        "cpu": (resource.RLIMIT_CPU, limits.cpu_seconds(timeout_s)),
        "fsize": (resource.RLIMIT_FSIZE, limits.file_size_bytes),
    }
    rlimits = [(f"rlimit_{key}", which, value) for key, (which, value) in wanted.items()
               if key in plan.rlimits and value is not None]  # fmt: skip
    if plan.nproc is not None:
        rlimits.append(("rlimit_nproc", resource.RLIMIT_NPROC, plan.nproc))
    return tuple(rlimits)


def prepare_child(plan: ChildSetup, files: ChildFiles, rlimits: tuple[tuple[str, int, int], ...]) -> None:
    """Run in the forked child before any program code; raises :class:`SetupError` naming the step.

    Kept to a few plain calls: in a forked child every Python object touched for the first time
    costs a copied page.
    """
    # The C-level calls: signal.signal() converts to enums, which touches (copies) many pages.
    _signal.set_wakeup_fd(-1)  # the worker's wake-up pipe is about to be closed
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
    if plan.process_group:  # setpgid, not setsid: a new session also costs a scheduler autogroup
        _step("process_group", os.setpgid, 0, 0)
    try:
        os.dup2(files.stdin, 0)
        os.dup2(files.stdout, 1)
        os.dup2(files.stderr, 2)
        os.dup2(files.result, RESULT_FD)
        os.closerange(RESULT_FD + 1, plan.max_fd)  # the worker's pipes, other programs' files
        os.chdir(plan.workdir)
    except OSError as exc:
        raise SetupError("fds", exc) from None
    for step, which, value in rlimits:
        _step(step, resource.setrlimit, which, (value, value))
    if plan.uid is not None:
        _step("privilege_drop", _drop_to, plan.uid)
    elif plan.drop_caps:
        _step("privilege_drop", _linux.drop_capabilities)
    if plan.pdeathsig:  # after the uid change, which clears it
        _step("parent_death_signal", _linux.prctl, _linux.PR_SET_PDEATHSIG, signal.SIGKILL)


def _drop_to(uid: int) -> None:
    os.setgroups([])
    if hasattr(os, "setresuid"):
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:  # macOS: setgid/setuid as root set the real, effective and saved ids
        os.setgid(uid)
        os.setuid(uid)


# -- fallback clean-up, when programs do not get their own PID namespace -----------------------------


def own_children() -> set[int]:
    """The worker's direct children (orphaned descendants land here thanks to the subreaper)."""
    found: set[int] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                found.update(int(pid) for pid in f.read().split())
    except OSError:
        pass
    return found


def kill_strays(group: int | None, keep: set[int] | frozenset[int] = frozenset()) -> int:
    """SIGKILL a finished program's process group and every other child of the worker; reap them.

    Killing an orphan's parent hands its children to the worker (the subreaper), so the loop
    repeats until no child is left. Returns how many processes were killed.
    """
    killed = 0
    if group is not None:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    for _round in range(1000):
        strays = own_children() - set(keep)
        if not strays:
            break
        signalled = []
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
                signalled.append(pid)
            except OSError:
                pass
        if not signalled:
            break
        for pid in signalled:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        killed += len(signalled)
    return killed
