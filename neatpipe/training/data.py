"""Reading the training files that ``neatpipe finetune`` trains on, checked line by line before training.

Two shapes of JSONL line are accepted (what ``neatpipe dataset`` writes), any other keys being metadata:

- ``sft`` (supervised, also the ``repair`` datasets): ``{"messages": [system?, user, ..., assistant]}``
- ``dpo`` (preference): ``{"prompt": [system?/user messages], "chosen": [assistant messages],
  "rejected": [assistant messages]}``

Every fault (a missing file, a line that is not JSON, a missing or mistyped field, the other method's
data) is a :class:`TrainingDataError` naming the file, the line and the field, raised before any model
is loaded. This module imports nothing heavy: the checks run in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError, shown
from neatpipe.io import decode_text, read_bytes

METHODS = ("sft", "dpo")
_ROLES = ("system", "user", "assistant")
_PROMPT_ROLES = ("system", "user")


class TrainingDataError(NeatpipeError, ValueError):
    """A training file or line that cannot be trained on; the message names the file, line and field."""


@dataclass(frozen=True)
class DataFile:
    """One training file as read: where it is, its SHA-256 and how many examples it gave."""

    path: str
    sha256: str
    examples: int


@dataclass(frozen=True)
class TrainingData:
    """Examples in the trainer's conversational form, and the files they came from.

    ``sft`` examples are ``{"prompt": [...], "completion": [last assistant message]}``: the loss is on
    the completion only, whatever the chat template (no ``{% generation %}`` markers needed).
    ``dpo`` examples are ``{"prompt": [...], "chosen": [...], "rejected": [...]}``.
    """

    method: str
    examples: tuple[dict[str, Any], ...]
    files: tuple[DataFile, ...]


def check_method(method: str) -> str:
    if method not in METHODS:
        raise TrainingDataError(f"unknown method {shown(method)}; choose one of {', '.join(METHODS)}")
    return method


def _messages(value: Any, field: str, roles: Sequence[str]) -> list[dict[str, str]]:
    """``value`` as a non-empty list of ``{"role", "content"}`` messages with roles among ``roles``."""
    if not isinstance(value, list) or not value:
        raise _FieldError(field, f"must be a non-empty list of messages, got {shown(value)}")
    out = []
    for i, message in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise _FieldError(where, f"must be an object with role and content, got {shown(message)}")
        role, content = message.get("role"), message.get("content")
        if role not in roles:
            raise _FieldError(f"{where}.role", f"must be one of {', '.join(roles)}, got {shown(role)}")
        if not isinstance(content, str):
            raise _FieldError(f"{where}.content", f"must be a string, got {shown(content)}")
        out.append({"role": role, "content": content})
    return out


class _FieldError(Exception):
    """A fault in one field of one line (turned into a TrainingDataError that adds file and line)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field!r} {reason}")


def _wrong_method_hint(record: dict[str, Any], method: str) -> str:
    if method == "sft" and "chosen" in record and "rejected" in record:
        return " (this is preference data: train it with --method dpo)"
    if method == "dpo" and "messages" in record:
        return " (this is sft data: train it with --method sft)"
    return ""


def sft_example(record: dict[str, Any]) -> dict[str, Any]:
    """A ``messages`` line as a prompt (all but the last message) and a completion (the last, an
    assistant message); the prompt must have a user message."""
    if "messages" not in record:
        raise _FieldError("messages", "is missing" + _wrong_method_hint(record, "sft"))
    messages = _messages(record["messages"], "messages", _ROLES)
    if messages[-1]["role"] != "assistant":
        raise _FieldError(f"messages[{len(messages) - 1}].role", "of the last message must be 'assistant'")
    if not any(m["role"] == "user" for m in messages[:-1]):
        raise _FieldError("messages", "must have a user message before the last assistant message")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def dpo_example(record: dict[str, Any]) -> dict[str, Any]:
    """A preference line: a system/user prompt, and a chosen and a rejected assistant answer."""
    for field in ("prompt", "chosen", "rejected"):
        if field not in record:
            raise _FieldError(field, "is missing" + _wrong_method_hint(record, "dpo"))
    prompt = _messages(record["prompt"], "prompt", _PROMPT_ROLES)
    if prompt[-1]["role"] != "user":
        raise _FieldError(f"prompt[{len(prompt) - 1}].role", "of the last prompt message must be 'user'")
    chosen = _messages(record["chosen"], "chosen", ("assistant",))
    rejected = _messages(record["rejected"], "rejected", ("assistant",))
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


_CONVERTERS = {"sft": sft_example, "dpo": dpo_example}


def read_file(path: str | Path, method: str) -> tuple[list[dict[str, Any]], DataFile]:
    """The examples of one JSONL file (blank lines skipped) and its record; the first bad line raises."""
    convert = _CONVERTERS[check_method(method)]
    data = read_bytes(path)
    text = decode_text(data, path)
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{path}:{number}: not a JSON object: {exc.msg}") from None
        if not isinstance(record, dict):
            raise TrainingDataError(f"{path}:{number}: not a JSON object, got {shown(record)}")
        try:
            examples.append(convert(record))
        except _FieldError as exc:
            raise TrainingDataError(f"{path}:{number}: {exc}") from None
    if not examples:
        raise TrainingDataError(f"{path}: no examples (the file is empty)")
    return examples, DataFile(str(path), hashlib.sha256(data).hexdigest(), len(examples))


def read_training_data(paths: Sequence[str | Path], method: str) -> TrainingData:
    """All examples of ``paths`` in order, for ``method`` (``sft`` or ``dpo``), checked before training."""
    check_method(method)
    if not paths:
        raise TrainingDataError("no training files given")
    examples: list[dict[str, Any]] = []
    files = []
    for path in paths:
        found, record = read_file(path, method)
        examples.extend(found)
        files.append(record)
    return TrainingData(method, tuple(examples), tuple(files))
