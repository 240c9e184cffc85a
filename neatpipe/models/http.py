"""JSON over HTTP for the served backends: pooled keep-alive connections (httpx) and a retry policy.

One :class:`HttpClient` per backend keeps up to ``concurrency`` connections open to its server, so a
batch of requests does not pay a TCP handshake each. The retry policy:

* connection errors, connections closed without an answer, 429 and 5xx answers are retried, after a
  delay drawn with full jitter (uniform between 0 and the doubled backoff, so that the threads of a
  batch that failed together do not come back together), or after the server's ``Retry-After`` when it
  sends one (capped at ``max_backoff_s``);
* ``timeout_s`` is a deadline for a whole answer (connecting, sending, the status line, the headers and
  the body), not for each read from the socket: every socket operation is given only the time left, so
  a server that trickles its answer a byte at a time is cut off when the deadline passes;
* a request that timed out after it was sent is not sent again: the server may still be working on it,
  and a second copy would only add to its queue. A connection that could not be opened in time is
  retried (the server never saw the request).

Other statuses are returned to the caller, which knows what a 404 means for its protocol. When the
retries run out the error names the URL, what happened on the last attempt, and what to do.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from neatpipe.models.errors import BackendTimeoutError, ServerError, ServerUnreachableError

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How long one answer may take and how often, and after how long, a failed request is retried."""

    timeout_s: float = 600.0
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``attempt + 1``: the server's ``Retry-After`` when given,
        else full jitter over the doubled backoff; never more than ``max_backoff_s``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        cap = min(self.backoff_s * (2**attempt), self.max_backoff_s)
        return (rng or random).uniform(0.0, cap)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0) if seconds == seconds else None  # NaN is not a delay


# ---------------------------------------------------------------------------------------------------------
# the deadline: each thread's current request may use the socket until its deadline, and no longer

_deadline = threading.local()


def _left(timeout: float | None) -> float | None:
    """The socket timeout for one operation: what the caller allows, but no more than the time left."""
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the deadline for the whole answer has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None):
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """The standard socket backend, with every connect, read and write bounded by the thread's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address=None, socket_options=None
    ):
        try:
            left = _left(timeout)
        except httpcore.ReadTimeout as exc:
            raise httpcore.ConnectTimeout(str(exc)) from None
        stream = self._inner.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):
        return _DeadlineStream(self._inner.connect_unix_socket(path, _left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport with its connection pool built on :class:`_DeadlineBackend` (httpx does not
    take a network backend as an argument, so the pool it made is replaced by an equal one)."""

    def __init__(self, connections: int) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=30.0,
            network_backend=_DeadlineBackend(),
        )


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def error_text(self, limit: int = 300) -> str:
        """The server's error message (``error``, ``error.message`` or ``detail`` of a JSON body), else the
        raw body."""
        try:
            data = self.json()
        except (ValueError, UnicodeDecodeError):
            return self.body[:limit].decode("utf-8", "replace")
        if isinstance(data, dict):
            err = data.get("error", data.get("detail", data))
            if isinstance(err, dict):
                err = err.get("message", err)
            return str(err)[:limit]
        return str(data)[:limit]


class HttpClient:
    """Keep-alive connections to one server and the retry policy; safe to share between threads.

    ``server`` names the server in errors ("Ollama"); ``start_hint`` says how to start it.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        server: str,
        start_hint: str,
        connections: int = 8,
        headers: dict[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.server = server
        self.start_hint = start_hint
        self.rng = rng or random.Random()
        self._client = httpx.Client(
            transport=_DeadlineTransport(connections),
            headers={"Accept": "application/json", **(headers or {})},
            timeout=httpx.Timeout(policy.timeout_s),
            trust_env=False,
        )

    def request_json(self, method: str, url: str, payload: Any | None = None) -> HttpResponse:
        """Send one JSON request with the retry policy; returns any answer that is not retried."""
        parts = httpx.URL(url)
        if parts.scheme not in ("http", "https") or not parts.host:
            raise ValueError(f"not an http(s) URL: {url!r}")
        policy = self.policy
        attempts = policy.retries + 1
        kind, last, last_status = "unreachable", "", None
        retry_after: float | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(policy.delay(attempt - 1, retry_after, self.rng))
            retry_after = None
            try:
                response = self._send_once(method, url, payload)
            except httpx.ConnectTimeout:
                kind, last = "unreachable", f"no connection within {policy.timeout_s:g} s"
                continue
            except httpx.TimeoutException:
                # sent, perhaps being worked on: a second copy would only queue behind the first
                raise BackendTimeoutError(
                    f"{self.server} at {url} timed out: no complete answer within {policy.timeout_s:g} s "
                    f"(attempt {attempt + 1} of {attempts}); the request was not sent again, since the "
                    f"server may still be working on it: raise timeout_s, lower concurrency, or check "
                    f"that the server is not overloaded"
                ) from None
            except httpx.RemoteProtocolError as exc:
                kind, last = "dropped", f"the connection was closed without a complete answer ({exc})"
                continue
            except (httpx.ConnectError, httpx.NetworkError) as exc:
                kind, last = "unreachable", f"{type(exc).__name__}: {exc}"
                continue
            if response.status not in RETRIED_STATUSES:
                return response
            kind, last_status = "status", response.status
            last = f"HTTP {response.status}: {response.error_text()}"
            retry_after = parse_retry_after(response.header("Retry-After"))
            if retry_after is not None:
                last += f" (Retry-After {retry_after:g} s)"

        tried = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if kind == "unreachable":
            raise ServerUnreachableError(
                f"cannot reach {self.server} at {url} ({tried}): {last}. {self.start_hint}"
            )
        advice = ""
        if last_status == 429:
            advice = "; the server limits the request rate: lower concurrency or raise retries"
        raise ServerError(f"{self.server} at {url} failed ({tried}): {last}{advice}", status=last_status)

    def _send_once(self, method: str, url: str, payload: Any | None) -> HttpResponse:
        _deadline.at = time.monotonic() + self.policy.timeout_s
        try:
            response = self._client.request(method, url, json=payload)
            return HttpResponse(response.status_code, response.content, tuple(response.headers.items()))
        finally:
            _deadline.at = None

    def close(self) -> None:
        self._client.close()
