"""Which isolation features are really in force on this machine, and why the others are not.

A worker measures this once at start-up, after it tried to set everything up, and sends it to the
pool; the pool exposes it as :attr:`Sandbox.isolation`. Reporting what actually happened (rather than
what was asked for) is the point: the same code runs as root in a container, as an ordinary user and
on macOS, with very different guarantees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Every feature a report may name, in display order, with a one-line description.
FEATURES: dict[str, str] = {
    "user_namespace": "unprivileged user namespace (gives a non-root worker the rights to build the others)",
    "network_namespace": "no network: the worker lives in an empty network namespace",
    "mount_namespace": "private mount table for the worker",
    "readonly_filesystem": "every mount read-only except the private /tmp",
    "private_tmp": "private tmpfs on /tmp holding the per-program working directory",
    "pid_namespace": "fresh PID namespace per program: all descendants die with it",
    "privilege_drop": "programs run as an unprivileged uid / without capabilities",
    "no_new_privs": "PR_SET_NO_NEW_PRIVS: set-uid binaries grant nothing",
    "process_group": "each program leads its own process group (kill(0, ...) cannot reach the worker)",
    "subreaper": "the worker adopts orphaned descendants so it can find and kill them",
    "parent_death_signal": "a program is killed if its worker dies",
    "rlimit_as": "RLIMIT_AS: address-space limit",
    "rlimit_cpu": "RLIMIT_CPU: CPU-time limit",
    "rlimit_fsize": "RLIMIT_FSIZE: file-size limit (captured output included)",
    "rlimit_nproc": "RLIMIT_NPROC: process/thread limit",
    "rlimit_core": "RLIMIT_CORE=0: no core dumps",
    "wall_clock_kill": "wall-clock limit enforced from outside with SIGKILL",
    "memory_capture": "stdout/stderr captured in anonymous memory files (memfd)",
}


@dataclass(frozen=True)
class Feature:
    """One isolation feature: whether it is active, and how (or why not)."""

    name: str
    active: bool
    detail: str = ""


@dataclass(frozen=True)
class IsolationReport:
    """The isolation features of a pool's workers, with the worker's baseline memory."""

    features: tuple[Feature, ...]
    baseline_mb: float = 0.0
    platform: str = ""

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"no isolation feature named {name!r}; known: {', '.join(FEATURES)}")

    def is_active(self, name: str) -> bool:
        """True when the feature is in force (False for a feature the report does not name)."""
        return any(f.name == name and f.active for f in self.features)

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.active)

    @property
    def missing(self) -> dict[str, str]:
        """Inactive features, each with the reason."""
        return {f.name: f.detail for f in self.features if not f.active}

    def format(self) -> str:
        """A human-readable table, one feature per line."""
        width = max((len(f.name) for f in self.features), default=0)
        lines = [f"platform: {self.platform}; worker baseline: {self.baseline_mb:.0f} MiB address space"]
        for f in self.features:
            mark = "on " if f.active else "off"
            lines.append(f"  [{mark}] {f.name:<{width}}  {f.detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [{"name": f.name, "active": f.active, "detail": f.detail} for f in self.features],
            "baseline_mb": self.baseline_mb,
            "platform": self.platform,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IsolationReport:
        return cls(
            features=tuple(Feature(**f) for f in data.get("features", ())),
            baseline_mb=float(data.get("baseline_mb", 0.0)),
            platform=str(data.get("platform", "")),
        )
