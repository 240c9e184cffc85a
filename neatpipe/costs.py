"""What a piece of work cost in model terms: prompt and completion tokens, model calls, and the calls the
completion cache answered. One value type with ``+``, so every hop (steps to a trajectory, problem
evaluations to a genome's evaluation, evaluations to a generation's log line) adds costs the same way
instead of summing each field by hand. Records keep their four fields (the file formats name them);
:meth:`Cost.of` reads them off any record and :meth:`Cost.fields` writes them back.

This module is a leaf: it imports nothing of neatpipe.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Cost:
    """Tokens and calls; ``a + b`` adds every field, ``Cost.total(records)`` adds many records."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    cache_hits: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.model_calls + other.model_calls,
            self.cache_hits + other.cache_hits,
        )

    @classmethod
    def of(cls, record: Any) -> Cost:
        """The cost fields of any record (an object or a mapping); a field it lacks counts as 0."""
        get = record.get if isinstance(record, dict) else lambda name, default: getattr(record, name, default)
        return cls(
            *(
                int(get(name, 0) or 0)
                for name in ("prompt_tokens", "completion_tokens", "model_calls", "cache_hits")
            )
        )

    @classmethod
    def total(cls, records: Iterable[Any]) -> Cost:
        """The sum of the costs of ``records``."""
        out = cls()
        for record in records:
            out = out + cls.of(record)
        return out

    def fields(self) -> dict[str, int]:
        """The four fields as keyword arguments for a record's constructor."""
        return asdict(self)
