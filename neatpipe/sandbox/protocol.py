"""The pool <-> worker wire format: one JSON object per line, in both directions.

JSON and never pickle: a worker forks untrusted children, and nothing that crosses a process
boundary should be able to run code when it is decoded. Requests are ``{"id": n, "p": program}``;
answers are ``{"id": n, "o": observations}`` (or ``{"id": n, "error": text}``), plus
``{"ready": report, "uid": program_uid}`` once at start-up and ``{"fatal": text}`` when a worker
cannot start. The pool adds a random token to each request (``"t"``); the child prefixes every line
of its result channel with it.

A program's trusted part (harness and tests) usually repeats across thousands of programs, so it
travels once per worker: ``{"suite": k, "harness": text, "tests": [source, ...]}`` defines suite
``k`` (the worker compiles it then and keeps the code objects), and each request names its suite
(``"s": k`` in the program's wire form, see :func:`request_to_wire`). ``{"forget": true}`` drops
every suite (the pool sends it before reusing numbers, which bounds the worker's memory). Messages
on one pipe arrive in order, so a suite is always defined before the first request that uses it.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

from neatpipe.sandbox.program import Program

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line of UTF-8 JSON."""
    return (_encoder.encode(message) + "\n").encode("utf-8", "surrogatepass")


def _plain(value: object) -> str:
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value:
            return "NaN"
        return (
            float.__repr__(value)
            if abs(value) != float("inf")
            else ("Infinity" if value > 0 else "-Infinity")
        )
    if kind is dict:
        return "{" + ",".join(encode_basestring(k) + ":" + _plain(v) for k, v in value.items()) + "}"
    if kind is list or kind is tuple:
        return "[" + ",".join(map(_plain, value)) + "]"
    raise TypeError(f"cannot encode {kind.__name__}")


def encode_plain(message: dict[str, Any]) -> bytes:
    """:func:`encode` for messages of plain data (str keys; str, int, float, bool, None, lists, dicts),
    as the worker sends them: the same JSON, without the encoder object's per-call set-up, which
    touches (and after a fork, copies) dozens of pages."""
    return (_plain(message) + "\n").encode("utf-8", "surrogatepass")


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line.decode("utf-8", "surrogatepass"))
    if type(message) is not dict:
        raise ValueError(f"expected a JSON object, got {type(message).__name__}")
    return message


def suite_key(program: Program) -> tuple[str, tuple[str, ...]]:
    """What makes two programs' trusted parts the same suite: the harness and the test sources."""
    return program.harness, tuple(t.source for t in program.tests)


def suite_to_wire(suite: int, key: tuple[str, tuple[str, ...]]) -> dict[str, Any]:
    return {"suite": suite, "harness": key[0], "tests": list(key[1])}


def request_to_wire(program: Program, suite: int) -> dict[str, Any]:
    """What a worker needs of a program whose suite it already has: the candidate code and settings."""
    return {
        "code": program.code,
        "s": suite,
        "entry_point": program.entry_point,
        "timeout_s": program.timeout_s,
        "wall_s": program.wall_limit_s,
        "seed": program.seed,
        "stop_on_failure": program.stop_on_failure,
    }
