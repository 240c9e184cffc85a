"""Errors raised by model backends.

Every error says what failed and what to do about it: the spec and field for a bad spec, the URL and
the command that starts the server for an unreachable one, the download command for a missing model.
They all derive from :class:`ModelError`, so callers can catch one type at a run's boundary.
"""

from __future__ import annotations

from neatpipe.errors import NeatpipeError, shown


class ModelError(NeatpipeError):
    """Base class of every error from ``neatpipe.models``."""


class SpecError(ModelError, ValueError):
    """A model spec string or mapping is malformed; the message names the spec and the field."""

    def __init__(self, spec: object, field: str, problem: str) -> None:
        self.spec = spec
        self.field = field
        self.problem = problem
        super().__init__(f"model spec {shown(spec)}: {field}: {problem}")


class RequestError(ModelError, ValueError):
    """A chat request is invalid (bad parameter, or a prompt longer than the model's context)."""


class BackendUnavailableError(ModelError):
    """A backend kind is reserved but not built, or its optional dependency is missing."""


class ModelNotAvailableError(ModelError):
    """The model cannot be found: not downloaded (offline), not pulled (Ollama), or unknown to the server."""


class ServerUnreachableError(ModelError):
    """No server answers at the configured URL, after all retries."""


class BackendTimeoutError(ModelError):
    """The server did not answer within the timeout, after all retries."""


class ServerError(ModelError):
    """The server answered with an error status that retrying did not fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class OutOfMemoryError(ModelError):
    """Generation does not fit in memory even with a batch of one request."""


class CacheError(ModelError):
    """The completion cache cannot be opened or used (bad path, bad mode, corrupt file)."""
