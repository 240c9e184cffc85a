"""The backend protocol: a batch of chat requests in, their completions out, in order.

A pipeline node makes one ``generate`` call per step with every active problem's request in it; the
backend decides how to batch (local GPU batches) or fan out (a thread pool of HTTP requests). The base
class validates the batch, times the call and writes one :class:`~neatpipe.models.usage.CallRecord`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from neatpipe.models.errors import RequestError
from neatpipe.models.types import ChatRequest, Completion
from neatpipe.models.usage import CallRecord, Stopwatch, UsageLog


class Backend(ABC):
    """A model that answers batches of chat requests.

    Subclasses implement :meth:`_generate` (the batch, already validated) and :meth:`identity` (what the
    completion cache keys on: the model and its exact revision or digest). ``usage`` is this backend's
    own call log.
    """

    kind: str = "abstract"

    def __init__(self, label: str) -> None:
        self.label = label
        self.usage = UsageLog(label)

    def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Completions for ``requests``, in the same order; one call-log record per non-empty call."""
        batch = list(requests)
        for i, r in enumerate(batch):
            if not isinstance(r, ChatRequest):
                raise RequestError(f"request {i}: expected a ChatRequest, got {type(r).__name__}")
        if not batch:
            return []
        watch = Stopwatch()
        out = self._generate(batch)
        if len(out) != len(batch):  # a backend bug, not a user error
            raise RuntimeError(f"{self.label}: {len(out)} completions for {len(batch)} requests")
        self.usage.record(out, watch.elapsed(), watch.started_at)
        return out

    def complete(self, request: ChatRequest) -> Completion:
        """One request (a batch of one): for quick checks, never inside a loop over problems."""
        return self.generate([request])[0]

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        return self.usage.records

    @abstractmethod
    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """Completions for a non-empty, validated batch, in order."""

    @abstractmethod
    def identity(self) -> str:
        """A stable name of the exact model (kind, name, revision or digest, numeric type) for cache keys."""

    def preflight(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to ask
        """Raise now (a ``ModelError`` saying what and where) if the backend cannot answer: a server that
        does not answer or does not serve the model. Called before a run starts, so that it fails before
        any work; loading a local model is left to the first call."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to release
        """Release threads, connections or model memory; the backend may not be used afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"
