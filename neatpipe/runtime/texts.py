"""The text store of a run directory: every prompt and answer of the run's model steps, stored once by
SHA-256, so that a model step's exact request and full answer can be rebuilt byte for byte.

Trajectories name texts by key (:func:`text_key`: the SHA-256 of the UTF-8 text, in hex); the texts live
in ``RUN_DIR/texts.sqlite``, one row per distinct text, zlib-compressed. A system prompt or a problem
statement that a thousand requests share is one row. SQLite commits are atomic, and the writers of a run
directory store a trajectory's texts *before* they write its line, so a crash can leave texts that no
line names (harmless) but never a line whose texts are missing.

>>> from neatpipe.runtime import request_of                                  # doctest: +SKIP
>>> call = request_of("runs/x", trajectory, 0)                               # doctest: +SKIP
>>> call.request.messages, call.answer, call.backend                         # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError
from neatpipe.models.types import ChatMessage, ChatRequest
from neatpipe.runtime.trajectory import TraceStep, Trajectory

#: The text store's file name in a run directory (next to the trajectory files that name its texts).
TEXTS_FILE = "texts.sqlite"
_SCHEMA = "CREATE TABLE IF NOT EXISTS texts (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID"


class TextStoreError(NeatpipeError, ValueError):
    """A text store that cannot be read, or a text a trajectory names that it does not hold; names the file
    and the key or step."""


def text_key(text: str) -> str:
    """The key of ``text`` in a text store: the SHA-256 of its UTF-8 bytes, in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RecordedCall:
    """A model step as it was made: the exact ``request`` the backend was sent, the full ``answer`` text,
    the model-pool name ``model`` and the backend's ``backend`` identity (its exact model and revision;
    the label in files written before identities were recorded)."""

    request: ChatRequest
    answer: str
    model: str
    backend: str


class TextStore:
    """The texts of one run directory (``RUN_DIR/texts.sqlite``); a context manager.

    ``TextStore(path)`` opens the file to read; ``TextStore(path, create=True)`` creates it when missing.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise TextStoreError(f"{self.path}: no text store here (the run kept no prompts and answers)")
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0)
            if create:
                with self._db:
                    self._db.execute(_SCHEMA)
            self._db.execute("SELECT key FROM texts LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise TextStoreError(f"{self.path}: not a readable text store ({exc})") from None

    def __enter__(self) -> TextStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def put_many(self, texts: Mapping[str, str]) -> int:
        """Stores ``texts`` (key -> text) in one transaction; the number of texts that were new."""
        known = set(self._known(list(texts)))
        rows = []
        for key, text in texts.items():
            if key in known:
                continue
            if text_key(text) != key:
                raise ValueError(f"text store: key {key[:16]}... is not the SHA-256 of its text")
            rows.append((key, zlib.compress(text.encode("utf-8"), 9)))
        try:
            with self._db:
                self._db.executemany("INSERT OR IGNORE INTO texts (key, data) VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            raise TextStoreError(f"{self.path}: cannot write: {exc}") from None
        return len(rows)

    def _known(self, keys: list[str]) -> Iterable[str]:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from (
                r[0] for r in self._db.execute(f"SELECT key FROM texts WHERE key IN ({marks})", chunk)
            )  # noqa: S608

    def get(self, key: str) -> str:
        """The text stored under ``key``, checked against its key (a damaged row is an error, not a
        silently different training example)."""
        try:
            row = self._db.execute("SELECT data FROM texts WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise TextStoreError(f"{self.path}: cannot read: {exc}") from None
        if row is None:
            raise TextStoreError(f"{self.path}: holds no text with key {key[:16]}...")
        try:
            text = zlib.decompress(row[0]).decode("utf-8")
        except (zlib.error, UnicodeDecodeError):
            text = None
        if text is None or text_key(text) != key:
            raise TextStoreError(f"{self.path}: the text with key {key[:16]}... is damaged")
        return text

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM texts").fetchone()[0])

    def call(self, trajectory: Trajectory, step: int | TraceStep) -> RecordedCall:
        """The request and answer of model step ``step`` (an index into ``trajectory.steps`` or the step)."""
        return recorded_call(trajectory, step, self.get)


def recorded_call(trajectory: Trajectory, step: int | TraceStep, get: Any) -> RecordedCall:
    """The :class:`RecordedCall` of ``step``, its texts read with ``get(key)`` (or from the trajectory's
    own ``texts`` when it was made in this process)."""
    s = trajectory.steps[step] if isinstance(step, int) else step
    where = (
        f"{trajectory.task_id} ({trajectory.label}, repeat {trajectory.repeat}), step {s.node}/{s.iteration}"
    )
    if s.model is None:
        raise TextStoreError(f"{where}: a {s.role} step makes no model request")
    if s.request is None:
        raise TextStoreError(
            f"{where}: no recorded request (the trajectory was written before requests were kept)"
        )

    def text(key: str) -> str:
        return trajectory.texts[key] if key in trajectory.texts else get(key)

    r = s.request
    request = ChatRequest(
        messages=tuple(ChatMessage(role, text(key)) for role, key in r.messages),
        temperature=r.temperature,
        top_p=r.top_p,
        max_tokens=r.max_tokens,
        stop=r.stop,
        seed=r.seed,
    )
    backend = trajectory.model_ids.get(s.model) or trajectory.models.get(s.model, "")
    return RecordedCall(request, text(r.answer), s.model, backend)


def store_texts(run_dir: str | os.PathLike[str], trajectories: Iterable[Trajectory]) -> int:
    """Stores the texts of ``trajectories`` (made in this process) in ``run_dir``'s text store; the number
    that were new. Call it before writing the trajectories' lines, so that no line names a missing text."""
    texts: dict[str, str] = {}
    for t in trajectories:
        texts.update(t.texts)
    if not texts:
        return 0
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with TextStore(Path(run_dir) / TEXTS_FILE, create=True) as store:
        return store.put_many(texts)


def request_of(
    run_dir: str | os.PathLike[str], trajectory: Trajectory, step: int | TraceStep
) -> RecordedCall:
    """The exact request and full answer of one model step of a trajectory read from ``run_dir``.

    Opens the store for one look-up; to read many steps, keep a :class:`TextStore` open and use
    :meth:`TextStore.call`."""
    with TextStore(Path(run_dir) / TEXTS_FILE) as store:
        return store.call(trajectory, step)


__all__ = [
    "TEXTS_FILE",
    "RecordedCall",
    "TextStore",
    "TextStoreError",
    "recorded_call",
    "request_of",
    "store_texts",
    "text_key",
]
