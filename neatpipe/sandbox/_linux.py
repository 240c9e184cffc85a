"""The Linux calls the standard library lacks in Python 3.10/3.11: namespaces, mounts, prctl, capset.

Each wrapper raises :class:`OSError` with the call named, so that the isolation report can say exactly
which step failed and why. On other systems :data:`AVAILABLE` is False and every wrapper raises
:class:`OSError` (ENOSYS).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import sys

AVAILABLE = sys.platform.startswith("linux")

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_MOVE = 8192
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# Per-mount options that must be kept when remounting read-only: in a user namespace they are locked,
# and dropping one makes the remount fail with EPERM.
MOUNT_OPTION_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

_CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True) if AVAILABLE else None


def _call(name: str, *args: object) -> int:
    if _libc is None:
        raise OSError(errno.ENOSYS, f"{name}: not available on {sys.platform}")
    result = getattr(_libc, name)(*args)
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return int(result)


def _bound(name: str, *argtypes: type) -> object:
    """A libc function with fixed argument types: calls without per-call argument conversion objects."""
    if _libc is None:
        return None
    function = getattr(_libc, name)
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function


_setns = _bound("setns", ctypes.c_int, ctypes.c_int)
_unshare = _bound("unshare", ctypes.c_int)


def fresh_pid_namespace(own_fd: int) -> None:
    """Make the next child PID 1 of a new PID namespace: point our children back at our own
    namespace (open as ``own_fd``), then unshare a new one for them. Called once per program."""
    if _setns(own_fd, CLONE_NEWPID) != 0 or _unshare(CLONE_NEWPID) != 0:  # type: ignore[operator]
        err = ctypes.get_errno()
        raise OSError(err, f"setns/unshare(CLONE_NEWPID): {os.strerror(err)}")


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``flags`` are ``CLONE_NEW*`` bits)."""
    _call("unshare", ctypes.c_int(flags))


def setns(fd: int, nstype: int) -> None:
    """Join the namespace open as ``fd`` (for PID namespaces: the one new children are born in)."""
    _call("setns", ctypes.c_int(fd), ctypes.c_int(nstype))


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def c(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    _call(
        "mount",
        c(source),
        c(target),
        c(fstype),
        ctypes.c_ulong(flags),
        c(data),
    )


def prctl(option: int, arg2: int = 0) -> None:
    _call(
        "prctl",
        ctypes.c_int(option),
        ctypes.c_ulong(arg2),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> None:
    """Clear the effective, permitted and inheritable capability sets of the calling thread.

    Used where a program keeps uid 0 inside a user namespace: without this it could undo the worker's
    read-only remounts.
    """
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    _call("capset", ctypes.byref(header), ctypes.byref(data))


def write_file(path: str, text: str) -> None:
    """Write ``text`` to a /proc control file in one write(2), as those files require."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, per-mount options) for each line of /proc/self/mountinfo, in mount order."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        mount_point = _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), parts[4])  # "\040" is a space
        mounts.append((mount_point, parts[5]))
    return mounts


def mount_flags(options: str) -> int:
    """The MS_* bits for a comma-separated per-mount option string such as ``rw,nosuid,relatime``."""
    flags = 0
    for option in options.split(","):
        flags |= MOUNT_OPTION_FLAGS.get(option, 0)
        if option == "ro":
            flags |= MS_RDONLY
    return flags
