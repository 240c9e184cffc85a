"""What a program may use (:class:`Limits`) and which isolation the pool should try (:class:`Isolation`).

Both are plain frozen dataclasses so that a pool configuration can be logged, compared and sent to
worker processes as JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

MIB = 1024 * 1024


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build ``cls`` from ``data``, naming the unknown keys instead of failing with a bare TypeError."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**data)


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every program a :class:`~neatpipe.sandbox.Sandbox` runs.

    ``memory_mb`` is address space the program may add on top of the worker's own baseline (the
    preloaded interpreter, reported as ``baseline_mb`` by :attr:`Sandbox.isolation`), so that the
    number means the same thing whatever the worker preloads. ``cpu_s`` is the kernel's RLIMIT_CPU
    for each process of a program, a hard limit behind the worker's own CPU-time check (which uses
    the program's ``timeout_s``, to the millisecond); by default that timeout rounded up plus one
    second, so that it fires only for what the worker's check cannot see in time (several threads
    burning CPU at once, a child process left running). ``file_size_mb`` bounds every file the program
    writes, its captured stdout and stderr included; ``output_bytes`` is how much of each stream is
    kept in the result. ``max_processes`` counts processes and threads.
    """

    memory_mb: int = 1024
    cpu_s: float | None = None
    file_size_mb: float = 16.0
    max_processes: int = 64
    output_bytes: int = 64 * 1024
    network: bool = False

    def __post_init__(self) -> None:
        for name in ("memory_mb", "file_size_mb", "max_processes", "output_bytes"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
        if self.cpu_s is not None and self.cpu_s <= 0:
            raise ValueError(f"Limits.cpu_s must be positive or None, got {self.cpu_s!r}")

    def cpu_seconds(self, timeout_s: float) -> int:
        """The RLIMIT_CPU value (whole seconds, as the kernel counts them) for a program whose CPU-time
        limit is ``timeout_s``."""
        if self.cpu_s is not None:
            return max(1, math.ceil(self.cpu_s))
        return math.ceil(timeout_s) + 1

    @property
    def file_size_bytes(self) -> int:
        return int(self.file_size_mb * MIB)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_mb * MIB)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Isolation:
    """Which isolation features the pool should use when the operating system allows them.

    Every feature is on by default; a feature the machine lacks is skipped and reported (see
    :attr:`Sandbox.isolation`), never an error. Turning features off is for debugging and for testing
    the fallbacks. ``uid_base`` is the first of the unprivileged user ids programs run as when the pool
    runs as root (one per worker); by default it is derived from the process id, far above the ids of
    real accounts.
    """

    namespaces: bool = True  # network + mount namespace per worker: no network, read-only files, private /tmp
    pid_namespace: bool = True  # a fresh PID namespace per program: every descendant dies with it
    drop_privileges: bool = True  # programs run as an unprivileged uid (root) or without capabilities
    uid_base: int | None = None

    def __post_init__(self) -> None:
        if self.uid_base is not None and not 0 < self.uid_base < 2**32 - 2**16:
            raise ValueError(f"Isolation.uid_base must be in 1..{2**32 - 2**16}, got {self.uid_base!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Isolation:
        return _from_dict(cls, data)
