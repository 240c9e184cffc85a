"""The typed parser of experiment files: the vocabulary of allowed values, the errors that list every
problem with its dotted field path, field declarations (default, one-line documentation, allowed values,
range check, custom parser) and the small parsers for fields that are not a plain type."""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError, shown
from neatpipe.genome.errors import problems_message
from neatpipe.models.cache import CACHE_MODES, cache_choice
from neatpipe.models.errors import CacheError, SpecError
from neatpipe.models.spec import parse_spec

FORMAT = "neatpipe-experiment/1"
MODES = ("evolve", "evaluate")
SPLITS = ("all", "test", "validation", "train", "prompt")  # MBPP's upstream splits; HumanEval: all
SUBSET_POLICIES = ("fixed", "rotating")
SPECIES_FITNESS = ("max", "mean", "min", "median")
#: Problems per benchmark and split where the count is known without reading the data.
KNOWN_SIZES = {
    ("humaneval", "all"): 164,
    ("mbpp", "all"): 427,
    ("humaneval+", "all"): 164,
    ("mbpp+", "all"): 378,
}
#: ``genome:`` keys that come from other sections (``models`` and ``prompts``) instead.
DERIVED_GENOME_FIELDS = ("models", "generator_prompts", "analyzer_prompts", "refiner_prompts")
_SPEC_EXAMPLES = "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct, ollama:qwen2.5-coder:1.5b, synthetic:coder-1.5b"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


# ---------------------------------------------------------------------------------------------------------
# errors


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong in an experiment: ``field`` is the dotted path (``fitness.penalty.kind``,
    ``models.coder``, ``evaluate.genomes[1].path``), ``message`` says what is wrong and what is allowed."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ExperimentError(NeatpipeError, ValueError):
    """An experiment file (or mapping) is malformed. ``problems`` lists every problem found; the message
    names ``source`` (the file) and shows them all."""

    def __init__(self, problems: Sequence[FieldProblem] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = (FieldProblem("", problems),)
        self.problems: tuple[FieldProblem, ...] = tuple(problems)
        self.source = source
        super().__init__(problems_message(self.problems, source))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(p.field for p in self.problems)


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else str(name)


def _suggest(word: object, candidates: Sequence[str]) -> str:
    match = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _not_one_of(value: object, choices: Sequence[str]) -> str:
    return f"{shown(value)} is not one of {', '.join(choices)}{_suggest(value, choices)}"


def _raise_if(problems: list[FieldProblem]) -> None:
    if problems:
        raise ExperimentError(problems)


# ---------------------------------------------------------------------------------------------------------
# field declarations: default, one-line documentation, allowed values, range check, custom parser


def _f(
    default: Any = MISSING,
    doc: str = "",
    *,
    choices: Sequence[str] | None = None,
    check: Callable[[Any], str | None] | None = None,
    parse: Callable[[Any, str, _Ctx], Any] | None = None,
    factory: Any = MISSING,
) -> Any:
    meta = {"doc": doc, "choices": tuple(choices) if choices else None, "check": check, "parse": parse}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v is None or v >= low else f"must be at least {low}, got {shown(v)}"


def _positive(v: Any) -> str | None:
    return None if v is None or v > 0 else f"must be positive, got {shown(v)}"


def _fraction(v: Any) -> str | None:
    return None if 0.0 < v <= 1.0 else f"must lie in (0, 1], got {shown(v)}"


def _check_fields(obj: Any) -> list[FieldProblem]:
    """Range and choice checks of a section's own fields, then its cross-field rules (``_rules``)."""
    out: list[FieldProblem] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            out.append(FieldProblem(f.name, _not_one_of(value, choices)))
        check = f.metadata.get("check")
        if check is not None and value is not None:
            message = check(value)
            if message:
                out.append(FieldProblem(f.name, message))
    rules = getattr(obj, "_rules", None)
    if rules is not None and not out:
        out.extend(rules())
    return out


class _Ctx:
    """What parsing needs besides the data: where relative paths start, and the problems so far."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[FieldProblem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(FieldProblem(path, message))

    def resolve(self, text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()


class _Invalid(Exception):
    """A value could not be read; the problem is already recorded."""


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe_type(tp: Any) -> str:
    args = typing.get_args(tp)
    if _is_optional(tp):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_describe_type(a) for a in inner) + " or null"
    if typing.get_origin(tp) is tuple:
        return "a list of strings"
    if is_dataclass(tp):
        return "a mapping"
    return _TYPE_WORDS.get(tp, str(tp))


def _is_optional(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(tp)


def _coerce(tp: Any, value: Any, path: str, ctx: _Ctx, described: str | None = None) -> Any:
    """``value`` as the declared type; strict (YAML has real booleans and numbers, so no strings)."""
    if _is_optional(tp):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(inner[0], value, path, ctx, _describe_type(tp))
    if is_dataclass(tp):
        return _parse_section(tp, value, path, ctx)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            ctx.add(path, f"expected a list of strings, got {shown(value)}")
            raise _Invalid
        return tuple(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise AssertionError(f"unhandled type {tp!r} at {path}")
    if not ok:
        ctx.add(path, f"expected {described or _describe_type(tp)}, got {shown(value)}")
        raise _Invalid
    if tp is float:
        value = float(value)
        if not math.isfinite(value):
            ctx.add(path, f"expected a finite number, got {shown(value)}")
            raise _Invalid
    return value


def _parse_section(cls: type, data: Any, path: str, ctx: _Ctx) -> Any:
    """One section dataclass from a mapping: unknown keys, types, ranges and cross-field rules, each
    problem recorded under its dotted path; raises ``_Invalid`` when any was found."""
    names = [f.name for f in fields(cls)]
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        ctx.add(path, f"expected a mapping with fields {', '.join(names)}, got {shown(data)}")
        raise _Invalid
    before = len(ctx.problems)
    for key in data:
        if key not in names:
            ctx.add(
                _join(path, str(key)), f"unknown field{_suggest(key, names)}; fields here: {', '.join(names)}"
            )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        sub = _join(path, f.name)
        parser = f.metadata.get("parse")
        try:
            if parser is not None:
                kwargs[f.name] = parser(data[f.name], sub, ctx)
            else:
                kwargs[f.name] = _coerce(hints[f.name], data[f.name], sub, ctx)
        except _Invalid:
            pass
    if len(ctx.problems) > before:
        raise _Invalid
    try:
        return cls(**kwargs)
    except ExperimentError as exc:
        for p in exc.problems:
            ctx.add(_join(path, p.field) if p.field else path, p.message)
        raise _Invalid from None


def _to_plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------------
# small parsers for fields that are not a plain type


def _path_parser(must_exist: bool, kind: str = "file") -> Callable[[Any, str, _Ctx], str | None]:
    def parse(value: Any, path: str, ctx: _Ctx) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            ctx.add(path, f"expected a path, got {shown(value)}")
            raise _Invalid
        resolved = ctx.resolve(value)
        if must_exist and not resolved.exists():
            ctx.add(path, f"{kind} not found: {value} (relative paths start at {ctx.base_dir})")
            raise _Invalid
        return str(resolved)

    return parse


def _task_ids_file(value: Any, path: str, ctx: _Ctx) -> str | None:
    """A file of task ids, resolved and read (its ids are checked against the benchmark when a run loads
    the problems)."""
    from neatpipe.bench.subsets import SubsetFileError, read_task_ids
    from neatpipe.io import FileError

    resolved = _path_parser(True)(value, path, ctx)
    if resolved is None:
        return None
    try:
        read_task_ids(resolved)
    except (SubsetFileError, FileError) as exc:
        ctx.add(path, str(exc))
        raise _Invalid from None
    return resolved


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a string like ``90``, ``90s``, ``30m``, ``2h``, ``1d``; None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f"expected seconds or a duration like 90s, 30m, 2h, 1d, got {shown(value)}")


def _duration(value: Any, path: str, ctx: _Ctx) -> float | None:
    try:
        return parse_duration(value)
    except ValueError as exc:
        ctx.add(path, str(exc))
        raise _Invalid from None


def _batch_size(value: Any, path: str, ctx: _Ctx) -> int | str:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    ctx.add(path, f"expected 'auto' or an integer >= 1, got {shown(value)}")
    raise _Invalid


def _cache(value: Any, path: str, ctx: _Ctx) -> str | None:
    """``default``, None (``off``, ``none``, false, null: no cache) or the cache file, resolved."""
    try:
        choice = cache_choice(value) if isinstance(value, bool | str) or value is None else ""
    except CacheError:
        choice = ""
    if choice is None or choice == "default":
        return choice
    if choice:
        return str(ctx.resolve(choice))
    ctx.add(path, f"expected default (or true), off (or none, false) or a file path, got {shown(value)}")
    raise _Invalid


def _cache_mode(value: Any, path: str, ctx: _Ctx) -> str:
    if value is False:  # YAML 1.1 reads a bare `off` as false
        return "off"
    if isinstance(value, str):
        return value
    ctx.add(path, f"expected one of {', '.join(CACHE_MODES)}, got {shown(value)}")
    raise _Invalid


def _hf_option(option: str) -> Callable[[Any], str | None]:
    """Checks a device or dtype default exactly as an ``hf:`` spec option would be checked."""

    def check(value: Any) -> str | None:
        try:
            parse_spec({"spec": "hf:check/option", option: value})
        except SpecError as exc:
            return exc.problem
        return None

    return check


def _hf_parse(option: str) -> Callable[[Any, str, _Ctx], str]:
    """Reads a device or dtype default in its normal form (``bf16`` -> ``bfloat16``)."""

    def parse(value: Any, path: str, ctx: _Ctx) -> str:
        try:
            return getattr(parse_spec({"spec": "hf:check/option", option: value}), option)
        except SpecError as exc:
            ctx.add(path, exc.problem)
            raise _Invalid from None

    return parse
