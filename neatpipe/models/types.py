"""The two values that cross the backend boundary: a chat request and its completion.

Both are small frozen dataclasses, so they hash, compare, pickle and can be logged as they are. A request
carries everything its output depends on (messages, sampling parameters, budget, stop strings and seed),
so its output never depends on which other requests share its batch, and a cache can key on it alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from neatpipe.models.errors import RequestError

ROLES = ("system", "user", "assistant")
FINISH_REASONS: tuple[str, ...] = ("stop", "length")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation: ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise RequestError(f"message role {self.role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise RequestError(f"message content must be a string, got {type(self.content).__name__}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def _messages(value: Iterable[ChatMessage | Mapping[str, str]]) -> tuple[ChatMessage, ...]:
    out = []
    for i, m in enumerate(value):
        if isinstance(m, ChatMessage):
            out.append(m)
        elif isinstance(m, Mapping):
            unknown = set(m) - {"role", "content"}
            if unknown or "role" not in m or "content" not in m:
                raise RequestError(f"message {i}: expected keys 'role' and 'content', got {sorted(m)}")
            out.append(ChatMessage(str(m["role"]), m["content"]))
        else:
            raise RequestError(f"message {i}: expected a ChatMessage or a mapping, got {type(m).__name__}")
    return tuple(out)


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion request.

    ``temperature`` 0 means greedy decoding (then ``seed`` and ``top_p`` have no effect). ``max_tokens`` is
    the budget of generated tokens. Generation stops at the model's end-of-turn token or at the first of the
    ``stop`` strings, which is not included in the text. ``seed`` makes sampling reproducible: the same
    request gives the same text whatever else is in its batch.
    """

    messages: tuple[ChatMessage, ...]
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", _messages(self.messages))
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if not self.messages:
            raise RequestError("a chat request needs at least one message")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, int | float):
            raise RequestError(f"temperature must be a number, got {self.temperature!r}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise RequestError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, int | float) or not 0 < self.top_p <= 1:
            raise RequestError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise RequestError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise RequestError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise RequestError(f"stop strings must be non-empty strings, got {s!r}")
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))

    @classmethod
    def user(cls, text: str, *, system: str | None = None, **params: object) -> ChatRequest:
        """A one-turn request: an optional system message and one user message."""
        msgs = ([ChatMessage("system", system)] if system is not None else []) + [ChatMessage("user", text)]
        return cls(messages=tuple(msgs), **params)  # type: ignore[arg-type]

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def messages_as_dicts(self) -> list[dict[str, str]]:
        return [m.to_dict() for m in self.messages]


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one request, in the order of the requests.

    ``prompt_tokens`` and ``completion_tokens`` are the model's own counts (from its tokenizer or the
    server's report). ``latency_s`` is the time the request took in this call: the time until its row
    finished for a local batch, the HTTP round trip for a server, 0 for a cache hit. ``cached`` says the
    text came from the completion cache without a model call.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float
    cached: bool = False

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_cached(self) -> Completion:
        """This completion as served from the cache: same text and counts, no latency."""
        return replace(self, cached=True, latency_s=0.0)
