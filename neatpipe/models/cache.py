"""A persistent completion cache (SQLite, WAL) and a backend wrapper that uses it.

Identical requests are never paid for twice: not within a batch, a generation, a run, or across runs and
processes. The key is a SHA-256 of the canonical request (:func:`canonical_request`): backend kind, model
identity with its revision or digest and numeric type, messages, sampling parameters, seed, stop strings
and token budget. Sampling at temperature > 0 is deterministic given the seed in neatpipe's local
backend, so a sampled completion keyed by its seed is the completion that request would produce again.

Several processes may share one file: WAL mode lets readers run beside a writer, a busy timeout and a
retry loop absorb lock contention, and every write is one short transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from neatpipe.models.base import Backend
from neatpipe.models.errors import CacheError
from neatpipe.models.types import ChatRequest, Completion

CacheMode = Literal["readwrite", "readonly", "refresh", "off"]
CACHE_MODES: tuple[str, ...] = ("readwrite", "readonly", "refresh", "off")
#: Settings that mean "no completion cache" wherever a cache file is named (``--cache``, ``cache:``).
NO_CACHE = ("off", "none", "false", "no")
#: Settings that mean "the default cache file".
DEFAULT_CACHE = ("default", "true", "yes", "on")
_RECOVERY = (
    "it is damaged or not a completion cache; move it aside (or delete it) to start an empty cache, "
    "or name another cache file"
)
KEY_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    identity TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL,
    latency_s REAL NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS completions_last_used ON completions(last_used);
CREATE INDEX IF NOT EXISTS completions_model ON completions(model);
CREATE TABLE IF NOT EXISTS stats (
    model TEXT PRIMARY KEY,
    hits INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    prompt_tokens_saved INTEGER NOT NULL DEFAULT 0,
    completion_tokens_saved INTEGER NOT NULL DEFAULT 0,
    seconds_saved REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
T = TypeVar("T")


def default_cache_path() -> Path:
    """``$NEATPIPE_CACHE_DIR/completions.sqlite``, else ``~/.cache/neatpipe/completions.sqlite``."""
    root = os.environ.get("NEATPIPE_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "neatpipe"
    return base / "completions.sqlite"


def cache_choice(value: object) -> str | None:
    """What a cache setting means: ``"default"`` (the default file), None (no cache) or a file path.

    ``off``, ``none``, ``false``, ``no`` (any case) and YAML's false and null mean no cache, so that
    ``--cache none`` never creates a file named ``none``; write ``./none`` for a file of that name.
    """
    if value is True:
        return "default"
    if value is False or value is None:
        return None
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value).strip()
        if text.lower() in NO_CACHE:
            return None
        if text.lower() in DEFAULT_CACHE:
            return "default"
        if text:
            return text
    raise CacheError(
        f"a cache setting is default, off (or none), or a file path; got {type(value).__name__} {value!r:.80}"
    )


def canonical_request(kind: str, identity: str, request: ChatRequest) -> dict[str, Any]:
    """Everything a completion depends on, in a canonical form.

    Greedy requests (temperature 0) ignore seed and top-p, so both are normalised away and greedy
    requests that differ only in seed share one entry. Stop strings are a set: sorted and deduplicated.
    """
    greedy = request.temperature == 0.0
    return {
        "v": KEY_VERSION,
        "kind": kind,
        "model": identity,
        "messages": [[m.role, m.content] for m in request.messages],
        "temperature": request.temperature,
        "top_p": 1.0 if greedy else request.top_p,
        "max_tokens": request.max_tokens,
        "stop": sorted(set(request.stop)),
        "seed": 0 if greedy else request.seed,
    }


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_key(kind: str, identity: str, request: ChatRequest) -> str:
    """The cache key: SHA-256 (hex) of the canonical request as compact, key-sorted JSON."""
    return hashlib.sha256(_canonical_json(canonical_request(kind, identity, request)).encode()).hexdigest()


@dataclass(frozen=True)
class ModelCacheStats:
    """Persisted counters and entry counts of one model label."""

    model: str
    entries: int
    hits: int
    misses: int
    prompt_tokens_saved: int
    completion_tokens_saved: int
    seconds_saved: float

    @property
    def tokens_saved(self) -> int:
        return self.prompt_tokens_saved + self.completion_tokens_saved


@dataclass(frozen=True)
class CacheStats:
    """What ``neatpipe cache stats`` prints: the whole file and each model in it."""

    path: str
    size_bytes: int
    entries: int
    hits: int
    misses: int
    prompt_tokens_saved: int
    completion_tokens_saved: int
    seconds_saved: float
    models: tuple[ModelCacheStats, ...]

    @property
    def tokens_saved(self) -> int:
        return self.prompt_tokens_saved + self.completion_tokens_saved

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


@dataclass(frozen=True)
class CacheEntry:
    """A completion to store, with the key and the request it answers."""

    key: str
    kind: str
    model: str
    identity: str
    request: ChatRequest
    completion: Completion


class CompletionCache:
    """A completion cache in one SQLite file.

    ``mode``: ``readwrite`` (look up, store misses), ``readonly`` (look up, never write the file),
    ``refresh`` (never look up, store and overwrite: recompute everything), ``off`` (no file at all).
    Counters of this object's own session are in :attr:`session`; persisted counters in :meth:`stats`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        mode: CacheMode = "readwrite",
        *,
        busy_timeout_s: float = 30.0,
        retries: int = 8,
    ) -> None:
        if mode not in CACHE_MODES:
            raise CacheError(f"cache mode {mode!r} is not one of {', '.join(CACHE_MODES)}")
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self.mode: CacheMode = mode
        self.busy_timeout_s = busy_timeout_s
        self.retries = retries
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self.session = {"hits": 0, "misses": 0, "tokens_saved": 0, "stored": 0}

    # -- connection -------------------------------------------------------------------------------------

    @property
    def reads(self) -> bool:
        return self.mode in ("readwrite", "readonly")

    @property
    def writes(self) -> bool:
        return self.mode in ("readwrite", "refresh")

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        """The connection of this process (reopened after a fork), or None when there is no file to read."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if not create and not self.path.exists():
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path), timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            # Read the schema before changing anything: a file that is not SQLite fails here, and
            # another program's database is refused instead of getting the cache's tables added.
            tables = self._retry(
                lambda: {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            )
            if tables and "completions" not in tables:
                conn.close()
                raise CacheError(
                    f"completion cache {self.path}: this SQLite file is another program's database "
                    f"(tables: {', '.join(sorted(tables)[:5])}); name another cache file"
                )
            self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            if self.mode != "readonly":
                self._retry(lambda: conn.executescript(_SCHEMA))
        except (sqlite3.Error, OSError) as exc:
            raise self._failure("cannot open it", exc) from None
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _failure(self, doing: str, exc: sqlite3.Error | OSError) -> CacheError:
        """The error for a failed SQLite call, with what to do when the file itself is damaged."""
        damaged = isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
        advice = f": {_RECOVERY}" if damaged else ""
        return CacheError(f"completion cache {self.path}: {doing} ({exc}){advice}")

    def check(self) -> None:
        """Opens the file now (when this mode uses one and it exists or will be created) and reads its
        schema, so that a damaged or foreign file is a :class:`CacheError` before any work starts rather
        than in the middle of it. A file that is not a cache is left exactly as it was."""
        if self.mode != "off":
            with self._lock:
                self._connect(create=self.writes)

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying with backoff while another process holds the lock."""
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                msg = str(exc).lower()
                if attempt == self.retries or not ("locked" in msg or "busy" in msg):
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connect(create=True)
        assert conn is not None

        def txn() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        with self._lock:
            try:
                return self._retry(txn)
            except sqlite3.Error as exc:
                raise self._failure("write failed", exc) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> CompletionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CompletionCache({str(self.path)!r}, mode={self.mode!r})"

    # -- lookups and stores -------------------------------------------------------------------------------

    def lookup(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The stored completions among ``keys`` (marked cached, latency 0); empty unless the mode reads."""
        wanted = list(dict.fromkeys(keys))
        if not self.reads or not wanted:
            return {}
        with self._lock:
            conn = self._connect(create=False)
            if conn is None:
                return {}
            rows: list[tuple] = []
            try:
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    sql = (
                        "SELECT key, text, prompt_tokens, completion_tokens, finish_reason, latency_s "
                        f"FROM completions WHERE key IN ({marks})"
                    )
                    rows.extend(self._retry(lambda sql=sql, chunk=chunk: conn.execute(sql, chunk).fetchall()))
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):  # a file no writer has initialised yet: all misses
                    raise self._failure("lookup failed", exc) from None
            except sqlite3.Error as exc:
                raise self._failure("lookup failed", exc) from None
        return {key: Completion(text, pt, ct, fr, 0.0, cached=True) for key, text, pt, ct, fr, _lat in rows}

    def stored_latency(self, keys: Sequence[str]) -> float:
        """Total original latency of the given stored entries (what the hits saved in seconds)."""
        if not keys or not self.reads:
            return 0.0
        with self._lock:
            conn = self._connect(create=False)
            if conn is None:
                return 0.0
            total = 0.0
            try:
                for start in range(0, len(keys), 500):
                    chunk = list(keys[start : start + 500])
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT COALESCE(SUM(latency_s), 0) FROM completions WHERE key IN ({marks})"
                    total += self._retry(lambda sql=sql, chunk=chunk: conn.execute(sql, chunk).fetchone()[0])
            except sqlite3.Error as exc:
                raise self._failure("lookup failed", exc) from None
            return float(total)

    def commit(
        self,
        model: str,
        entries: Sequence[CacheEntry],
        hit_keys: Sequence[str],
        hit_completions: Sequence[Completion],
        misses: int,
    ) -> None:
        """One transaction: store ``entries``, mark hits as used, and add to the persisted counters."""
        saved_p = sum(c.prompt_tokens for c in hit_completions)
        saved_c = sum(c.completion_tokens for c in hit_completions)
        with self._lock:
            self.session["hits"] += len(hit_keys)
            self.session["misses"] += misses
            self.session["tokens_saved"] += saved_p + saved_c
        if not self.writes:
            return
        seconds = self.stored_latency(list(hit_keys)) if hit_keys else 0.0
        now = time.time()

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR REPLACE INTO completions (key, kind, model, identity, request, text, prompt_tokens,"
                " completion_tokens, finish_reason, latency_s, created, last_used, hits)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [
                    (
                        e.key,
                        e.kind,
                        e.model,
                        e.identity,
                        _canonical_json(canonical_request(e.kind, e.identity, e.request)),
                        e.completion.text,
                        e.completion.prompt_tokens,
                        e.completion.completion_tokens,
                        e.completion.finish_reason,
                        e.completion.latency_s,
                        now,
                        now,
                    )
                    for e in entries
                ],
            )
            if hit_keys:
                conn.executemany(
                    "UPDATE completions SET last_used = ?, hits = hits + 1 WHERE key = ?",
                    [(now, k) for k in hit_keys],
                )
            conn.execute(
                "INSERT INTO stats (model, hits, misses, prompt_tokens_saved, completion_tokens_saved,"
                " seconds_saved) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(model) DO UPDATE SET"
                " hits = hits + excluded.hits, misses = misses + excluded.misses,"
                " prompt_tokens_saved = prompt_tokens_saved + excluded.prompt_tokens_saved,"
                " completion_tokens_saved = completion_tokens_saved + excluded.completion_tokens_saved,"
                " seconds_saved = seconds_saved + excluded.seconds_saved",
                (model, len(hit_keys), misses, saved_p, saved_c, seconds),
            )

        self._write(work)
        with self._lock:
            self.session["stored"] += len(entries)

    # -- maintenance --------------------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Entries and persisted counters, per model and in total (zeros when the file does not exist)."""
        with self._lock:
            conn = self._connect(create=False) if self.mode != "off" else None
            per_model: dict[str, list[Any]] = {}
            if conn is not None:
                try:
                    for model, n in conn.execute("SELECT model, COUNT(*) FROM completions GROUP BY model"):
                        per_model[model] = [n, 0, 0, 0, 0, 0.0]
                    for model, *counts in conn.execute(
                        "SELECT model, hits, misses, prompt_tokens_saved, completion_tokens_saved,"
                        " seconds_saved FROM stats"
                    ):
                        per_model.setdefault(model, [0, 0, 0, 0, 0, 0.0])[1:] = counts
                except sqlite3.OperationalError as exc:
                    if "no such table" not in str(exc):
                        raise self._failure("reading the counters failed", exc) from None
                except sqlite3.Error as exc:
                    raise self._failure("reading the counters failed", exc) from None
        models = tuple(ModelCacheStats(m, *v) for m, v in sorted(per_model.items()))
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return CacheStats(
            path=str(self.path),
            size_bytes=size,
            entries=sum(m.entries for m in models),
            hits=sum(m.hits for m in models),
            misses=sum(m.misses for m in models),
            prompt_tokens_saved=sum(m.prompt_tokens_saved for m in models),
            completion_tokens_saved=sum(m.completion_tokens_saved for m in models),
            seconds_saved=sum(m.seconds_saved for m in models),
            models=models,
        )

    def prune(
        self, *, older_than_days: float | None = None, model: str | None = None, everything: bool = False
    ) -> int:
        """Delete entries; returns how many.

        ``older_than_days``: entries not used (stored or hit) for that many days. ``model``: entries whose
        model label or identity matches the glob pattern (``ollama:qwen*``). ``everything``: all entries
        and counters. The conditions combine with AND; at least one is required.
        """
        if self.mode in ("off", "readonly"):
            raise CacheError(f"cannot prune a cache opened in mode {self.mode!r}")
        if older_than_days is None and model is None and not everything:
            raise CacheError("prune needs older_than_days, model or everything")
        if older_than_days is not None and older_than_days < 0:
            raise CacheError(f"older_than_days must be >= 0, got {older_than_days}")
        if not self.path.exists():
            return 0
        where, params = [], []
        if older_than_days is not None:
            where.append("last_used < ?")
            params.append(time.time() - older_than_days * 86400.0)
        if model is not None:
            where.append("(model GLOB ? OR identity GLOB ?)")
            params += [model, model]

        def work(conn: sqlite3.Connection) -> int:
            sql = "DELETE FROM completions" + (" WHERE " + " AND ".join(where) if where else "")
            n = conn.execute(sql, params).rowcount
            if everything and not where:
                conn.execute("DELETE FROM stats")
            elif model is not None and older_than_days is None:
                conn.execute("DELETE FROM stats WHERE model GLOB ?", (model,))
            return int(n)

        removed = self._write(work)
        with self._lock:
            conn = self._connect(create=True)
            assert conn is not None
            self._retry(lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
            if everything and not where:
                conn.execute("VACUUM")
        return removed


def open_cache(value: CompletionCache | str | os.PathLike[str] | bool | None) -> CompletionCache | None:
    """``load_backend``'s ``cache`` argument as a cache: None/False none, True the default file, a path
    (``"off"`` or ``"none"`` for none, see :func:`cache_choice`). The file is opened and checked at once
    (:meth:`CompletionCache.check`), so a damaged cache fails before any model is called."""
    if isinstance(value, CompletionCache):
        value.check()
        return value
    if value is None or isinstance(value, bool | str | os.PathLike):
        choice = cache_choice(value)
        if choice is None:
            return None
        cache = CompletionCache(None if choice == "default" else choice)
        cache.check()
        return cache
    raise CacheError(f"cache must be a CompletionCache, a path, True or None, got {type(value).__name__}")


class CachedBackend(Backend):
    """Any backend behind the completion cache.

    A batch is split into hits and misses; only the misses go to the wrapped backend, in one call, and
    identical requests within the batch are sent once. This wrapper's call log has one record per call
    (hits and misses counted); ``inner.usage`` records only the calls that reached the model.
    """

    def __init__(self, inner: Backend, cache: CompletionCache) -> None:
        super().__init__(inner.label)
        self.inner = inner
        self.cache = cache
        self.kind = inner.kind

    def identity(self) -> str:
        return self.inner.identity()

    def preflight(self) -> None:
        self.inner.preflight()

    def key(self, request: ChatRequest) -> str:
        return request_key(self.inner.kind, self.inner.identity(), request)

    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        if self.cache.mode == "off":
            return self.inner.generate(requests)
        identity = self.inner.identity()
        keys = [request_key(self.inner.kind, identity, r) for r in requests]
        found = self.cache.lookup(keys)
        first_index: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in found and k not in first_index:
                first_index[k] = i
        fresh: dict[str, Completion] = {}
        if first_index:
            answers = self.inner.generate([requests[i] for i in first_index.values()])
            fresh = dict(zip(first_index, answers, strict=True))
        out: list[Completion] = []
        hit_keys: list[str] = []
        for i, k in enumerate(keys):
            if k in found:
                out.append(found[k])
                hit_keys.append(k)
            elif first_index[k] == i:
                out.append(fresh[k])
            else:  # a duplicate of a miss earlier in this batch: paid once
                out.append(fresh[k].as_cached())
        entries = [
            CacheEntry(k, self.inner.kind, self.label, identity, requests[first_index[k]], fresh[k])
            for k in first_index
        ]
        self.cache.commit(
            self.label, entries, hit_keys, [found[k] for k in hit_keys], misses=len(first_index)
        )
        return out

    def close(self) -> None:
        self.inner.close()
