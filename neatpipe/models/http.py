"""A small JSON-over-HTTP client with timeouts and bounded retries (standard library only).

Connection errors, dropped connections, timeouts and 5xx answers are retried with exponential backoff;
other statuses are returned to the caller, which knows what a 404 means for its protocol. When the
retries run out the error names the URL, what happened on the last attempt, and how to start the server.

``timeout_s`` is a deadline for a whole answer (connecting, sending, the status line, the headers and
the body), not for each read from the socket: a server that trickles its answer a byte at a time is cut
off when the deadline passes, however often a byte arrives.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from neatpipe.models.errors import BackendTimeoutError, ServerError, ServerUnreachableError

_DROPPED = (
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
    http.client.BadStatusLine,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for one answer and how often to retry, doubling the delay each time."""

    timeout_s: float = 600.0
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_s * (2**attempt), self.max_backoff_s)


class _Deadline:
    """Shuts a connection's socket down when ``seconds`` have passed, which ends any read blocked on
    it; ``expired`` then says that the deadline, not the server, ended the exchange."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self.conn = conn
        self.expired = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self.conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def error_text(self, limit: int = 300) -> str:
        """The server's error message (``error`` or ``error.message`` of a JSON body), else the raw body."""
        try:
            data = self.json()
        except (ValueError, UnicodeDecodeError):
            return self.body[:limit].decode("utf-8", "replace")
        if isinstance(data, dict):
            err = data.get("error", data)
            if isinstance(err, dict):
                err = err.get("message", err)
            return str(err)[:limit]
        return str(data)[:limit]


def request_json(
    method: str,
    url: str,
    payload: Any | None,
    *,
    policy: RetryPolicy,
    server: str,
    start_hint: str,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """Send one JSON request, retrying transient failures; returns any non-5xx response.

    ``server`` names the server in errors ("Ollama"); ``start_hint`` says how to start it.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    body = None if payload is None else json.dumps(payload).encode("utf-8")
    send_headers = {"Accept": "application/json", **(headers or {})}
    if body is not None:
        send_headers["Content-Type"] = "application/json"
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    attempts = policy.retries + 1
    last: str = ""
    kind = "unreachable"
    last_status: int | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(policy.delay(attempt - 1))
        conn = conn_cls(parts.hostname, parts.port, timeout=policy.timeout_s)
        deadline = _Deadline(conn, policy.timeout_s)
        try:
            with deadline:
                conn.request(method, path, body=body, headers=send_headers)
                resp = conn.getresponse()
                data = resp.read()
            if deadline.expired:  # the deadline struck after the last byte was read
                raise TimeoutError("the whole answer took too long")
        except TimeoutError as exc:
            kind, last = "timeout", f"no complete answer within {policy.timeout_s:g} s ({exc or 'timed out'})"
            continue
        except (*_DROPPED, OSError) as exc:
            if deadline.expired:
                kind, last = "timeout", f"no complete answer within {policy.timeout_s:g} s"
            elif isinstance(exc, _DROPPED):
                kind, last = (
                    "dropped",
                    f"the connection was closed without a complete answer ({type(exc).__name__})",
                )
            else:  # refused, unreachable host, DNS failure
                kind, last = "unreachable", f"{type(exc).__name__}: {exc}"
            continue
        finally:
            conn.close()
        if resp.status >= 500:
            response = HttpResponse(resp.status, data)
            kind, last, last_status = "status", f"HTTP {resp.status}: {response.error_text()}", resp.status
            continue
        return HttpResponse(resp.status, data)

    tried = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if kind == "timeout":
        raise BackendTimeoutError(
            f"{server} at {url} timed out ({tried}): {last}; raise timeout_s, lower concurrency, "
            f"or check that the server is not overloaded"
        )
    if kind == "unreachable":
        raise ServerUnreachableError(f"cannot reach {server} at {url} ({tried}): {last}. {start_hint}")
    raise ServerError(f"{server} at {url} failed ({tried}): {last}", status=last_status)
