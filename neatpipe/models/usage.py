"""Accounting: one record per backend batch call, and totals that callers snapshot and diff.

Runs report cost per genome, per node and per generation by taking ``log.total()`` before and after
the work and subtracting. The per-call records are what tests assert on to prove that a pipeline makes
one backend call per node step (a record with ``requests == number of problems``), not one per problem.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields

from neatpipe.models.types import Completion


@dataclass(frozen=True)
class CallRecord:
    """One ``Backend.generate`` call.

    ``prompt_tokens``/``completion_tokens`` count what the model processed in this call (cache misses);
    ``cached_*`` count what the cache served instead. ``seconds`` is the wall time of the whole call.
    """

    index: int
    backend: str
    requests: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    cached_completion_tokens: int
    seconds: float
    started_at: float  # time.time() when the call began

    @property
    def cache_misses(self) -> int:
        return self.requests - self.cache_hits


@dataclass(frozen=True)
class Usage:
    """Totals over a set of calls. Subtract two snapshots to get the cost of the work between them."""

    calls: int = 0
    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def cache_misses(self) -> int:
        return self.requests - self.cache_hits

    @property
    def total_tokens(self) -> int:
        """Tokens the model processed (the cost actually paid)."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def tokens_saved(self) -> int:
        """Tokens the cache served without a model call."""
        return self.cached_prompt_tokens + self.cached_completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Usage)))

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(Usage)}

    @classmethod
    def of(cls, record: CallRecord) -> Usage:
        return cls(
            calls=1,
            requests=record.requests,
            cache_hits=record.cache_hits,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            cached_prompt_tokens=record.cached_prompt_tokens,
            cached_completion_tokens=record.cached_completion_tokens,
            seconds=record.seconds,
        )


class UsageLog:
    """The call log a backend keeps: append-only, thread-safe, with running totals.

    It is an explicit object owned by one backend (no module-level state); a caller that wants one log
    for several backends sums their totals.
    """

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []
        self._total = Usage()

    def record(self, completions: Sequence[Completion], seconds: float, started_at: float) -> CallRecord:
        hits = [c for c in completions if c.cached]
        paid = [c for c in completions if not c.cached]
        with self._lock:
            rec = CallRecord(
                index=len(self._records),
                backend=self.backend,
                requests=len(completions),
                cache_hits=len(hits),
                prompt_tokens=sum(c.prompt_tokens for c in paid),
                completion_tokens=sum(c.completion_tokens for c in paid),
                cached_prompt_tokens=sum(c.prompt_tokens for c in hits),
                cached_completion_tokens=sum(c.completion_tokens for c in hits),
                seconds=seconds,
                started_at=started_at,
            )
            self._records.append(rec)
            self._total = self._total + Usage.of(rec)
        return rec

    @property
    def records(self) -> tuple[CallRecord, ...]:
        with self._lock:
            return tuple(self._records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def since(self, index: int) -> tuple[CallRecord, ...]:
        """Records from call ``index`` on (take ``len(log)`` before the work, pass it here after)."""
        with self._lock:
            return tuple(self._records[index:])

    def total(self) -> Usage:
        """A snapshot of the totals so far."""
        with self._lock:
            return self._total

    snapshot = total

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._total = Usage()


class Stopwatch:
    """Wall time of a call, and when it began, for :meth:`UsageLog.record`."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0
