"""Experiment files: one YAML schema, read into small typed frozen dataclasses, and the neat-python
config generated from it.

>>> exp = load_experiment("experiments/smoke.yaml")           # doctest: +SKIP
>>> exp.to_dict()            # resolved and fully explicit; Experiment.from_dict(...) gives exp back
>>> config = exp.neat_config()                 # a neat.Config whose genome_type is PipelineGenome

Every field has a default except ``models``. Unknown fields are errors (with the closest known name
suggested), and every problem found in a file is reported at once by one :class:`ExperimentError` that
names the file, each field by its dotted path (``fitness.penalty.kind``) and the allowed values.

Relative paths in a file (genome files, the MBPP file, difficulty labels, local ``hf:`` model folders,
the cache file) are resolved against ``base_dir``: the working directory unless given, which is the
project root when runs start from the Makefile. They are stored absolute, so a resolved experiment
written into a run directory reads back the same from anywhere. The output folder stays as written
(it is resolved when a run starts). See docs/experiments.md for the field reference.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from neatpipe.errors import NeatpipeError, shown
from neatpipe.genome.errors import ConfigError, GenomeError, problems_message
from neatpipe.genome.prompts import PROMPT_POOLS
from neatpipe.genome.settings import NEAT_DEFAULTS, GenomeSettings
from neatpipe.io import FileError, load_yaml, read_text
from neatpipe.models.cache import CACHE_MODES, cache_choice
from neatpipe.models.errors import CacheError, SpecError
from neatpipe.models.spec import HFSpec, ModelSpec, parse_spec, spec_to_mapping
from neatpipe.seeds import derive_seed

FORMAT = "neatpipe-experiment/1"
MODES = ("evolve", "evaluate")
BENCHMARKS = ("humaneval", "mbpp")
SPLITS = ("all", "test", "validation", "train", "prompt")  # MBPP's upstream splits; HumanEval: all
VISIBLE_POLICIES = ("first", "all")
SUBSET_POLICIES = ("fixed", "rotating")
FEEDBACK_SOURCES = ("visible", "hidden", "genome")
PENALTY_KINDS = ("per-node", "per-call", "per-token")
SPECIES_FITNESS = ("max", "mean", "min", "median")
#: Problems per benchmark and split where the count is known without reading the data.
KNOWN_SIZES = {("humaneval", "all"): 164, ("mbpp", "all"): 427}
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


# ---------------------------------------------------------------------------------------------------------
# sections


@dataclass(frozen=True)
class BenchmarkSettings:
    """Which problems: the benchmark, its split, and which tests a model may see."""

    name: str = _f("humaneval", "humaneval or mbpp (sanitized, 427 problems)", choices=BENCHMARKS)
    split: str = _f(
        "all", "MBPP's upstream split: all, test, validation, train, prompt; HumanEval: all", choices=SPLITS
    )
    path: str | None = _f(
        None,
        "the data file; null: HumanEval's bundled file, MBPP from $NEATPIPE_DATA_DIR or the user cache",
        parse=_path_parser(True),
    )
    visible_tests: str | None = _f(
        None,
        "MBPP only: asserts a model sees, first or all (null resolves to first)",
        choices=VISIBLE_POLICIES,
    )

    def __post_init__(self) -> None:
        if self.name == "mbpp" and self.visible_tests is None:
            object.__setattr__(self, "visible_tests", "first")
        _raise_if(_check_fields(self))

    def _rules(self) -> list[FieldProblem]:
        out = []
        if self.name == "humaneval" and self.split != "all":
            out.append(FieldProblem("split", f"HumanEval has one split, all; got {shown(self.split)}"))
        if self.name == "humaneval" and self.visible_tests is not None:
            out.append(
                FieldProblem("visible_tests", "only for mbpp (HumanEval shows its docstring examples)")
            )
        return out

    @property
    def known_size(self) -> int | None:
        return KNOWN_SIZES.get((self.name, self.split))


@dataclass(frozen=True)
class SubsetPolicy:
    """Which problems score a genome during the search (or, in evaluate mode, a design)."""

    size: int | None = _f(
        None, "problems per evaluation; null: every problem not held out", check=_at_least(1)
    )
    policy: str = _f(
        "fixed", "fixed: the same subset every generation; rotating: a new one each", choices=SUBSET_POLICIES
    )
    stratified: bool = _f(True, "keep the difficulty mix of the whole set when labels exist")
    labels: str | None = _f(
        None, "a JSON or YAML file mapping task id to a difficulty label", parse=_path_parser(True)
    )
    seed: int | None = _f(None, "seed of the draw; null resolves to the experiment's seed")

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class ValidationSettings:
    """Re-scoring the best genomes after the search, with repeats, on problems the search never saw."""

    size: int | None = _f(
        None,
        "held-out problems set aside before the search; null: validate on every problem (overlaps the search)",
        check=_at_least(1),
    )
    repeats: int = _f(5, "evaluations per validated genome (different sampling seeds)", check=_at_least(1))
    champions: int = _f(3, "how many of the best genomes are validated; 0: none", check=_at_least(0))

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class PenaltySettings:
    """The complexity penalty subtracted from the pass rate."""

    kind: str = _f(
        "per-node",
        "per-node: weight x nodes of the genome (every role); per-call: weight x model calls per problem; "
        "per-token: weight x thousands of tokens per problem",
        choices=PENALTY_KINDS,
    )
    weight: float = _f(0.02, "penalty per unit of kind", check=_at_least(0.0))

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class RacingSettings:
    """Score everyone on a small subset first; extend only genomes that could still be among the best."""

    enabled: bool = _f(False, "race genomes before the full subset")
    size: int = _f(8, "problems of the first, small evaluation", check=_at_least(1))
    margin: float = _f(
        0.1, "also extend every genome whose fitness is within this of the best so far", check=_at_least(0.0)
    )

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class FitnessSettings:
    """How a search evaluation becomes a fitness."""

    penalty: PenaltySettings = _f(doc="complexity penalty", factory=PenaltySettings)
    repeats: int = _f(
        1, "evaluations per genome (different sampling seeds); fitness is their mean", check=_at_least(1)
    )
    racing: RacingSettings = _f(doc="racing", factory=RacingSettings)
    stop_at: float | None = _f(None, "stop the search once the best fitness reaches this; null: never")

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


def _neat(section: str, key: str) -> Any:
    return NEAT_DEFAULTS[section][key]


@dataclass(frozen=True)
class NeatSettings:
    """neat-python's population, speciation, stagnation and reproduction parameters."""

    population: int = _f(_neat("NEAT", "pop_size"), "genomes per generation (pop_size)", check=_at_least(2))
    compatibility_threshold: float = _f(
        _neat("DefaultSpeciesSet", "compatibility_threshold"),
        "genomes closer than this share a species (the starting value when target_species is set)",
        check=_positive,
    )
    target_species: int | None = _f(
        None,
        "adjust the threshold each generation towards this many species; null: fixed threshold",
        check=_at_least(1),
    )
    threshold_step: float = _f(
        0.1, "how far the threshold moves per generation when target_species is set", check=_positive
    )
    max_stagnation: int = _f(
        _neat("DefaultStagnation", "max_stagnation"),
        "generations without improvement before a species is removed",
        check=_at_least(1),
    )
    species_elitism: int = _f(
        _neat("DefaultStagnation", "species_elitism"), "species protected from stagnation", check=_at_least(0)
    )
    species_fitness: str = _f(
        _neat("DefaultStagnation", "species_fitness_func"),
        "a species' fitness for stagnation",
        choices=SPECIES_FITNESS,
    )
    elitism: int = _f(
        _neat("DefaultReproduction", "elitism"),
        "best genomes of each species kept unchanged",
        check=_at_least(0),
    )
    survival_threshold: float = _f(
        _neat("DefaultReproduction", "survival_threshold"),
        "fraction of each species allowed to reproduce",
        check=_fraction,
    )
    min_species_size: int = _f(
        _neat("DefaultReproduction", "min_species_size"), "fewest genomes a species keeps", check=_at_least(1)
    )
    reset_on_extinction: bool = _f(
        _neat("NEAT", "reset_on_extinction"), "start a new random population when every species dies out"
    )

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))

    def _rules(self) -> list[FieldProblem]:
        out = []
        if self.elitism > self.population:
            out.append(FieldProblem("elitism", f"must not exceed population ({self.population})"))
        if self.target_species is not None and self.target_species > self.population:
            out.append(FieldProblem("target_species", f"must not exceed population ({self.population})"))
        return out


@dataclass(frozen=True)
class BudgetSettings:
    """When a search stops: whichever budget runs out first."""

    generations: int = _f(30, "generations to run", check=_at_least(1))
    wall_time: float | None = _f(
        None,
        "seconds (or 90m, 2h, 1d) before the search stops after the current generation; null: no limit",
        parse=_duration,
        check=_positive,
    )
    tokens: int | None = _f(
        None, "model tokens (prompt + completion) before the search stops; null: no limit", check=_at_least(1)
    )

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class BackendSettings:
    """Completion cache and defaults for local (hf) models."""

    cache: str | None = _f(
        "default",
        "completion cache: default ($NEATPIPE_CACHE_DIR or ~/.cache/neatpipe), a file path, or off (none)",
        parse=_cache,
    )
    cache_mode: str = _f(
        "readwrite", "readwrite, readonly, refresh or off", choices=CACHE_MODES, parse=_cache_mode
    )
    batch_size: int | str = _f("auto", "hf models that set none: largest batch, or auto", parse=_batch_size)
    device: str = _f(
        "auto",
        "hf models that set none: auto, cpu, mps, cuda, cuda:N",
        check=_hf_option("device"),
        parse=_hf_parse("device"),
    )
    dtype: str = _f(
        "auto",
        "hf models that set none: auto, bfloat16, float16, float32",
        check=_hf_option("dtype"),
        parse=_hf_parse("dtype"),
    )

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class OutputSettings:
    """Where a run writes."""

    root: str = _f("runs", "folder holding run folders, relative to the working directory")
    dir: str | None = _f(None, "the run folder; null: <root>/<name>-<timestamp>")

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class PromptPools:
    """Which prompt variants (neatpipe/genome/prompts.py) each role may use, by name. Genomes draw a
    prompt by index from the start of the pool, so a list must be the pool's first variants in order."""

    generator: tuple[str, ...] = _f(doc="generator variants", factory=lambda: _pool_names("generator"))
    analyzer: tuple[str, ...] = _f(doc="analyzer variants", factory=lambda: _pool_names("analyzer"))
    refiner: tuple[str, ...] = _f(doc="refiner variants", factory=lambda: _pool_names("refiner"))

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))

    def _rules(self) -> list[FieldProblem]:
        out = []
        for role in ("generator", "analyzer", "refiner"):
            names = getattr(self, role)
            known = _pool_names(role)
            unknown = [n for n in names if n not in known]
            if unknown:
                out.append(
                    FieldProblem(
                        role,
                        f"unknown variant {shown(unknown[0])}{_suggest(unknown[0], known)}; variants: {', '.join(known)}",
                    )
                )
            elif not names:
                out.append(FieldProblem(role, f"needs at least one variant of {', '.join(known)}"))
            elif tuple(names) != known[: len(names)]:
                out.append(
                    FieldProblem(
                        role,
                        f"genomes draw from the start of the pool; list its first {len(names)} variant(s) in order: "
                        f"{', '.join(known[: len(names)])} (the pool: {', '.join(known)})",
                    )
                )
        return out

    def sizes(self) -> dict[str, int]:
        return {role: len(getattr(self, role)) for role in ("generator", "analyzer", "refiner")}


def _pool_names(role: str) -> tuple[str, ...]:
    return tuple(v.name for v in PROMPT_POOLS[role])


@dataclass(frozen=True)
class ModelEntry:
    """One model of the pool: the name genomes use, its backend spec, and whether a run builds it first
    (``make_tiny``: the keyword arguments of ``neatpipe.models.tiny.make_tiny_model``, for a local
    ``hf:`` folder that is written with random weights when it is missing)."""

    name: str
    spec: ModelSpec
    make_tiny: tuple[tuple[str, Any], ...] | None = None

    @property
    def make_tiny_kwargs(self) -> dict[str, Any] | None:
        return None if self.make_tiny is None else dict(self.make_tiny)

    @property
    def synthetic(self) -> bool:
        return self.spec.kind == "synthetic"

    def to_data(self) -> str | dict[str, Any]:
        data = spec_to_mapping(self.spec)
        if self.make_tiny is not None:
            data["make_tiny"] = dict(self.make_tiny) or True
        return data["spec"] if len(data) == 1 else data


def _make_tiny_options() -> tuple[str, ...]:
    from neatpipe.models.tiny import make_tiny_model

    params = inspect.signature(make_tiny_model).parameters
    return tuple(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _parse_model(name: Any, value: Any, path: str, ctx: _Ctx) -> ModelEntry:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        ctx.add(
            path,
            f"a model name uses letters, digits, '_', '.', '-' (it appears in genome files), got {shown(name)}",
        )
        raise _Invalid
    make_tiny: Any = None
    if isinstance(value, Mapping) and "make_tiny" in value:
        value = dict(value)
        make_tiny = value.pop("make_tiny")
    try:
        spec = parse_spec(value)
    except SpecError as exc:
        if isinstance(value, Mapping) and exc.field in value and exc.field != "spec":
            ctx.add(_join(path, exc.field), exc.problem)
        else:
            given = value.get("spec") if isinstance(value, Mapping) else value
            ctx.add(path, f"model spec {shown(given)}: {exc.problem} (e.g. {_SPEC_EXAMPLES})")
        raise _Invalid from None
    if isinstance(spec, HFSpec) and spec.is_local:
        spec = replace(spec, model=str(ctx.resolve(spec.model)))
    tiny: tuple[tuple[str, Any], ...] | None = None
    if make_tiny not in (None, False):
        where = _join(path, "make_tiny")
        if not (isinstance(spec, HFSpec) and spec.is_local):
            ctx.add(where, "only for a local hf: folder (e.g. hf:./runs/tiny-model)")
            raise _Invalid
        if make_tiny is True:
            make_tiny = {}
        if not isinstance(make_tiny, Mapping):
            ctx.add(where, f"expected true or a mapping of make_tiny_model options, got {shown(make_tiny)}")
            raise _Invalid
        allowed = _make_tiny_options()
        bad = [k for k in make_tiny if k not in allowed]
        if bad:
            ctx.add(
                _join(where, str(bad[0])),
                f"unknown option{_suggest(bad[0], allowed)}; options: {', '.join(allowed)}",
            )
            raise _Invalid
        tiny = tuple(sorted(make_tiny.items()))
    return ModelEntry(name, spec, tiny)


def _parse_models(value: Any, path: str, ctx: _Ctx) -> tuple[ModelEntry, ...]:
    if not isinstance(value, Mapping) or not value:
        ctx.add(
            path,
            f"expected a mapping of model names to backend specs (e.g. coder: hf:Qwen/Qwen2.5-Coder-1.5B-Instruct), got {shown(value)}",
        )
        raise _Invalid
    out, failed = [], False
    for name, spec in value.items():
        try:
            out.append(_parse_model(name, spec, _join(path, str(name)), ctx))
        except _Invalid:
            failed = True
    if failed:
        raise _Invalid
    return tuple(out)


@dataclass(frozen=True)
class GenomeEntry:
    """A fixed design: a genome file, the label its results carry, and model names to swap (so one
    file serves several models, e.g. the solo baseline of each)."""

    path: str
    label: str
    replace_models: tuple[tuple[str, str], ...] = ()

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "label": self.label}
        if self.replace_models:
            data["replace_models"] = dict(self.replace_models)
        return data


def _parse_genome_entry(value: Any, path: str, ctx: _Ctx) -> GenomeEntry:
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, Mapping):
        ctx.add(
            path,
            f"expected a genome file path or a mapping with path, label, replace_models; got {shown(value)}",
        )
        raise _Invalid
    known = ("path", "label", "replace_models")
    bad = [k for k in value if k not in known]
    for k in bad:
        ctx.add(_join(path, str(k)), f"unknown field{_suggest(k, known)}; fields here: {', '.join(known)}")
    if "path" not in value:
        ctx.add(_join(path, "path"), "required: the genome file (YAML, JSON or GraphML)")
    if bad or "path" not in value:
        raise _Invalid
    resolved = _path_parser(True, "genome file")(value["path"], _join(path, "path"), ctx)
    swaps = value.get("replace_models") or {}
    if not isinstance(swaps, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in swaps.items()
    ):
        ctx.add(
            _join(path, "replace_models"),
            f"expected a mapping of model name to model name, got {shown(swaps)}",
        )
        raise _Invalid
    label = value.get("label")
    if label is None:
        label = Path(str(resolved)).stem + "".join(f" [{a}->{b}]" for a, b in swaps.items())
    elif not isinstance(label, str):
        ctx.add(_join(path, "label"), f"expected a string, got {shown(label)}")
        raise _Invalid
    return GenomeEntry(str(resolved), label, tuple(swaps.items()))


def _parse_genome_list(value: Any, path: str, ctx: _Ctx) -> tuple[GenomeEntry, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        ctx.add(path, f"expected a list of genome files, got {shown(value)}")
        raise _Invalid
    out, failed = [], False
    for i, item in enumerate(value):
        try:
            out.append(_parse_genome_entry(item, _join(path, i), ctx))
        except _Invalid:
            failed = True
    if failed:
        raise _Invalid
    return tuple(out)


@dataclass(frozen=True)
class EvaluateSettings:
    """Fixed designs. In ``mode: evaluate`` they are what the experiment scores; in ``mode: evolve`` they
    are the baselines validated next to the champions."""

    genomes: tuple[GenomeEntry, ...] = _f(
        doc="genome files (paths, or mappings with path, label, replace_models)",
        factory=tuple,
        parse=_parse_genome_list,
    )
    repeats: int = _f(
        5, "mode evaluate: evaluations per genome (different sampling seeds)", check=_at_least(1)
    )

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class GenomeOptions:
    """The ``[PipelineGenome]`` settings (see ``neatpipe.genome.settings.GenomeSettings``) and the
    first generation. ``settings.models`` and the prompt pool sizes are taken from the experiment's
    ``models`` and ``prompts`` sections (:attr:`Experiment.genome_settings`)."""

    initial: tuple[str, ...] = ("minimal",)
    settings: GenomeSettings = field(default_factory=GenomeSettings)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"initial": list(self.initial) if len(self.initial) != 1 else self.initial[0]}
        data.update({k: v for k, v in self.settings.to_mapping().items() if k not in DERIVED_GENOME_FIELDS})
        return data


_SETTINGS_FIELDS = {f.name: f for f in fields(GenomeSettings)}
_GENOME_KEYS = ("initial", *[n for n in _SETTINGS_FIELDS if n not in DERIVED_GENOME_FIELDS])
_TYPES_BY_NAME = {"int": int, "float": float, "bool": bool, "str": str}


def _parse_genome_options(
    value: Any,
    path: str,
    ctx: _Ctx,
    models: tuple[str, ...] | None,
    prompts: Mapping[str, int],
    read_initial: bool = True,
) -> GenomeOptions:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        ctx.add(path, f"expected a mapping with fields {', '.join(_GENOME_KEYS)}, got {shown(value)}")
        raise _Invalid
    before = len(ctx.problems)
    for key in value:
        if key in DERIVED_GENOME_FIELDS:
            source = "models" if key == "models" else "prompts"
            ctx.add(_join(path, key), f"comes from the experiment's {source!r} section; set it there")
        elif key not in _GENOME_KEYS:
            ctx.add(
                _join(path, str(key)),
                f"unknown field{_suggest(key, _GENOME_KEYS)}; fields here: {', '.join(_GENOME_KEYS)}",
            )
    kwargs: dict[str, Any] = {
        **({"models": models} if models else {}),
        **{f"{r}_prompts": n for r, n in prompts.items()},
    }
    for key, raw in value.items():
        if key in _SETTINGS_FIELDS and key not in DERIVED_GENOME_FIELDS:
            try:
                kwargs[key] = _coerce(_TYPES_BY_NAME[_SETTINGS_FIELDS[key].type], raw, _join(path, key), ctx)
            except _Invalid:
                pass
    initial = value.get("initial", "minimal")
    if isinstance(initial, str):
        initial = [initial]
    if not isinstance(initial, list) or not initial or not all(isinstance(v, str) for v in initial):
        ctx.add(
            _join(path, "initial"),
            f"expected minimal, a genome file, or a list of genome files; got {shown(initial)}",
        )
        initial = []
    resolved: list[str] = []
    for i, item in enumerate(initial):
        if item == "minimal":
            resolved.append(item)
            continue
        where = _join(path, "initial") if len(initial) == 1 else _join(_join(path, "initial"), i)
        try:
            resolved.append(_path_parser(True, "genome file")(item, where, ctx))
        except _Invalid:
            pass
    if len(ctx.problems) > before:
        raise _Invalid
    try:
        settings = GenomeSettings(**kwargs)
    except ConfigError as exc:
        text = str(exc).removeprefix("[PipelineGenome] ")
        for part in text.split("; "):
            name, _, message = part.partition(": ")
            names = [n.strip() for n in name.split(",")]
            if message and all(n in _SETTINGS_FIELDS for n in names):
                ctx.add(
                    _join(path, names[0]),
                    f"{message} (see {', '.join(names)})" if len(names) > 1 else message,
                )
            else:
                ctx.add(path, part)
        raise _Invalid from None
    from neatpipe.genome.fileio import read_genome
    from neatpipe.genome.structure import Rules

    rules = Rules.from_settings(settings)
    for i, item in enumerate(resolved):
        if item != "minimal" and read_initial:
            try:
                read_genome(item, rules=rules)
            except GenomeError as exc:
                ctx.add(
                    _join(_join(path, "initial"), i), f"the genome breaks this experiment's limits: {exc}"
                )
    if len(ctx.problems) > before:
        raise _Invalid
    return GenomeOptions(tuple(resolved), settings)


# ---------------------------------------------------------------------------------------------------------
# the experiment


_TOP_KEYS = (
    "format", "name", "description", "mode", "seed", "benchmark", "subset", "validation", "feedback",
    "models", "model_alternatives", "prompts", "genome", "neat", "fitness", "budget", "backend", "output",
    "evaluate",
)  # fmt: skip
_SECTIONS: dict[str, type] = {
    "benchmark": BenchmarkSettings,
    "subset": SubsetPolicy,
    "validation": ValidationSettings,
    "prompts": PromptPools,
    "neat": NeatSettings,
    "fitness": FitnessSettings,
    "budget": BudgetSettings,
    "backend": BackendSettings,
    "output": OutputSettings,
    "evaluate": EvaluateSettings,
}


@dataclass(frozen=True)
class Experiment:
    """A whole experiment, validated. Build it with :func:`load_experiment` or :meth:`from_dict`."""

    name: str
    models: tuple[ModelEntry, ...]
    description: str = ""
    mode: str = "evolve"
    seed: int = 0
    benchmark: BenchmarkSettings = field(default_factory=BenchmarkSettings)
    subset: SubsetPolicy = field(default_factory=SubsetPolicy)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    feedback: str = "visible"
    model_alternatives: tuple[tuple[str, tuple[ModelEntry, ...]], ...] = ()
    prompts: PromptPools = field(default_factory=PromptPools)
    genome: GenomeOptions = field(default_factory=GenomeOptions)
    neat: NeatSettings = field(default_factory=NeatSettings)
    fitness: FitnessSettings = field(default_factory=FitnessSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    backend: BackendSettings = field(default_factory=BackendSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.subset.seed is None:
            object.__setattr__(self, "subset", replace(self.subset, seed=self.seed))
        problems = self._rules()
        if problems:
            raise ExperimentError(problems, self.source)

    def _rules(self) -> list[FieldProblem]:
        out: list[FieldProblem] = []

        def bad(path: str, message: str) -> None:
            out.append(FieldProblem(path, message))

        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            bad("name", f"letters, digits, '_', '.', '-' (it names the run folder), got {shown(self.name)}")
        if self.mode not in MODES:
            bad("mode", _not_one_of(self.mode, MODES))
        if self.feedback not in FEEDBACK_SOURCES:
            bad("feedback", _not_one_of(self.feedback, FEEDBACK_SOURCES))
        if not self.models:
            bad("models", "required: a mapping of model names to backend specs")
        names = self.model_names
        if len(set(names)) != len(names):
            bad("models", "duplicate model names")
        for set_name, entries in self.model_alternatives:
            other = tuple(e.name for e in entries)
            if set(other) != set(names):
                missing = sorted(set(names) - set(other))
                extra = sorted(set(other) - set(names))
                detail = "; ".join(
                    part
                    for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"not in models: {', '.join(extra)}" if extra else "",
                    )
                    if part
                )
                bad(f"model_alternatives.{set_name}", f"must name the same models as 'models' ({detail})")

        total = self.benchmark.known_size
        held = self.validation.size or 0
        if total is not None:
            if held >= total:
                bad("validation.size", f"must be below the {total} problems of {self.benchmark.name}")
            elif self.subset.size is not None and self.subset.size > total - held:
                bad(
                    "subset.size",
                    f"at most {total - held} ({total} problems of {self.benchmark.name}, {held} held out)",
                )
        search = self.subset.size if self.subset.size is not None else (total - held if total else None)
        racing = self.fitness.racing
        if racing.enabled and search is not None and racing.size >= search:
            bad("fitness.racing.size", f"must be smaller than the evaluation subset ({search} problems)")
        if self.mode == "evaluate" and not self.evaluate.genomes:
            bad("evaluate.genomes", "mode evaluate needs at least one genome file")
        if self.mode == "evaluate" and self.genome.initial != ("minimal",):
            bad("genome.initial", "only used by mode evolve; list the designs under evaluate.genomes")
        out.extend(self._genome_problems())
        return out

    def _genome_problems(self) -> list[FieldProblem]:
        from neatpipe.genome.fileio import read_genome

        out = []
        names = set(self.model_names)
        for i, entry in enumerate(self.evaluate.genomes):
            where = f"evaluate.genomes[{i}]"
            for old, new in entry.replace_models:
                if new not in names:
                    out.append(
                        FieldProblem(
                            f"{where}.replace_models.{old}",
                            f"{shown(new)} is not a model of this experiment{_suggest(new, sorted(names))}; models: {', '.join(self.model_names)}",
                        )
                    )
            try:
                genome = read_genome(entry.path).genome
            except GenomeError as exc:
                out.append(FieldProblem(f"{where}.path", str(exc)))
                continue
            swaps = dict(entry.replace_models)
            for gene in genome.nodes.values():
                model = swaps.get(gene.model, gene.model) if gene.model else None
                if model is not None and model not in names:
                    hint = (
                        ""
                        if gene.model in swaps
                        else f", or map it with replace_models: {{{gene.model}: ...}}"
                    )
                    out.append(
                        FieldProblem(
                            where,
                            f"{entry.path} uses model {shown(model)}, which is not in 'models' ({', '.join(self.model_names)}){hint}",
                        )
                    )
                    break
        return out

    # -- reading ----------------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: Any, source: str | None = None, base_dir: str | os.PathLike[str] | None = None
    ) -> Experiment:
        """The experiment described by ``data`` (a YAML document's mapping). ``source`` names the file in
        errors and provides the default ``name`` (the file's stem); ``base_dir`` is where relative paths
        start (default: the working directory). Raises :class:`ExperimentError` listing every problem."""
        ctx = _Ctx(Path(base_dir) if base_dir is not None else Path.cwd())
        if not isinstance(data, Mapping):
            raise ExperimentError(
                "an experiment file must be a mapping of fields (name, models, ...)", source
            )
        for key in data:
            if key not in _TOP_KEYS:
                ctx.add(
                    str(key),
                    f"unknown field{_suggest(key, _TOP_KEYS)}; top-level fields: {', '.join(_TOP_KEYS)}",
                )
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            ctx.add("format", f"unsupported format {shown(fmt)}; this version reads {FORMAT}")
        kwargs: dict[str, Any] = {}
        name = data.get("name", Path(source).stem if source else None)
        if name is None:
            ctx.add("name", "required (a file's name defaults to its stem)")
        else:
            kwargs["name"] = name
        for key, tp in (("description", str), ("mode", str), ("seed", int), ("feedback", str)):
            if key in data:
                try:
                    kwargs[key] = _coerce(tp, data[key], key, ctx)
                except _Invalid:
                    pass
        if "mode" in kwargs and kwargs["mode"] not in MODES:
            ctx.add("mode", _not_one_of(kwargs.pop("mode"), MODES))
        if "feedback" in kwargs and kwargs["feedback"] not in FEEDBACK_SOURCES:
            ctx.add("feedback", _not_one_of(kwargs.pop("feedback"), FEEDBACK_SOURCES))
        if "seed" in kwargs and kwargs["seed"] < 0:
            ctx.add("seed", f"must not be negative, got {kwargs.pop('seed')}")

        models: tuple[ModelEntry, ...] | None = None
        if "models" not in data:
            ctx.add(
                "models",
                "required: a mapping of model names to backend specs, e.g. coder: hf:Qwen/Qwen2.5-Coder-1.5B-Instruct",
            )
        else:
            try:
                models = kwargs["models"] = _parse_models(data["models"], "models", ctx)
            except _Invalid:
                pass
        alternatives = data.get("model_alternatives")
        if alternatives is not None:
            if not isinstance(alternatives, Mapping):
                ctx.add(
                    "model_alternatives",
                    f"expected a mapping of set names (e.g. ollama) to model mappings, got {shown(alternatives)}",
                )
            else:
                parsed = []
                for set_name, entries in alternatives.items():
                    try:
                        parsed.append(
                            (str(set_name), _parse_models(entries, f"model_alternatives.{set_name}", ctx))
                        )
                    except _Invalid:
                        pass
                kwargs["model_alternatives"] = tuple(parsed)
        for key, section in _SECTIONS.items():
            if key in data:
                try:
                    kwargs[key] = _parse_section(section, data[key], key, ctx)
                except _Invalid:
                    pass
        # The genome section needs the pool and the prompt sizes; when those failed, its own fields are
        # still checked (against the defaults) but its initial genomes are not read.
        prompts = kwargs.get("prompts", PromptPools())
        pool = tuple(m.name for m in models) if models is not None else None
        try:
            kwargs["genome"] = _parse_genome_options(
                data.get("genome"), "genome", ctx, pool, prompts.sizes(), read_initial=not ctx.problems
            )
        except _Invalid:
            pass
        if ctx.problems:
            raise ExperimentError(ctx.problems, source)
        try:
            return cls(**kwargs, source=source)
        except ExperimentError as exc:
            raise ExperimentError(exc.problems, source) from None

    def to_dict(self) -> dict[str, Any]:
        """Every field, defaults filled in and paths absolute; ``from_dict`` of it gives an equal experiment."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "name": self.name,
            "description": self.description,
            "mode": self.mode,
            "seed": self.seed,
            "benchmark": _to_plain(self.benchmark),
            "subset": _to_plain(self.subset),
            "validation": _to_plain(self.validation),
            "feedback": self.feedback,
            "models": {m.name: m.to_data() for m in self.models},
            "model_alternatives": {k: {m.name: m.to_data() for m in v} for k, v in self.model_alternatives},
            "prompts": _to_plain(self.prompts),
            "genome": self.genome.to_data(),
            "neat": _to_plain(self.neat),
            "fitness": _to_plain(self.fitness),
            "budget": _to_plain(self.budget),
            "backend": _to_plain(self.backend),
            "output": _to_plain(self.output),
            "evaluate": {
                "genomes": [g.to_data() for g in self.evaluate.genomes],
                "repeats": self.evaluate.repeats,
            },
        }
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=110)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Writes the resolved experiment as YAML, atomically (a run folder's ``experiment.yaml``)."""
        from neatpipe.genome.fileio import atomic_write_text

        atomic_write_text(path, self.to_yaml())

    # -- derived values ---------------------------------------------------------------------------

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    @property
    def synthetic(self) -> bool:
        """True when any model is the synthetic coder: every result of this experiment must say so."""
        return any(m.synthetic for m in self.models)

    @property
    def genome_settings(self) -> GenomeSettings:
        """The ``[PipelineGenome]`` section: ``genome`` settings with the pool and prompt sizes filled in."""
        sizes = self.prompts.sizes()
        return replace(
            self.genome.settings,
            models=self.model_names,
            generator_prompts=sizes["generator"],
            analyzer_prompts=sizes["analyzer"],
            refiner_prompts=sizes["refiner"],
        )

    def backend_specs(self) -> dict[str, ModelSpec]:
        """Model name -> spec, with the ``backend`` section's device, dtype and batch size filled into
        ``hf:`` specs that left them at ``auto``."""
        out: dict[str, ModelSpec] = {}
        b = self.backend
        for m in self.models:
            spec = m.spec
            if isinstance(spec, HFSpec):
                spec = replace(
                    spec,
                    device=b.device if spec.device == "auto" else spec.device,
                    dtype=b.dtype if spec.dtype == "auto" else spec.dtype,
                    batch_size=b.batch_size if spec.batch_size == "auto" else spec.batch_size,
                )
            out[m.name] = spec
        return out

    def using(self, alternative: str) -> Experiment:
        """The same experiment with the models of ``model_alternatives[alternative]`` (e.g. ``ollama``)."""
        sets = dict(self.model_alternatives)
        if alternative not in sets:
            known = ", ".join(sets) or "none"
            raise ExperimentError(
                [
                    FieldProblem(
                        "model_alternatives",
                        f"no model set {shown(alternative)}{_suggest(alternative, list(sets))}; sets: {known}",
                    )
                ],
                self.source,
            )
        order = {name: i for i, name in enumerate(self.model_names)}
        models = tuple(sorted(sets[alternative], key=lambda m: order[m.name]))
        return replace(self, models=models)

    def neat_sections(self) -> dict[str, dict[str, Any]]:
        """The sections of the neat-python config besides ``[PipelineGenome]``."""
        n = self.neat
        stop = self.fitness.stop_at
        return {
            "NEAT": {
                "pop_size": n.population,
                "fitness_criterion": "max",
                "fitness_threshold": stop if stop is not None else 1.0,
                "no_fitness_termination": stop is None,
                "reset_on_extinction": n.reset_on_extinction,
                "seed": self.seed,
            },
            "DefaultSpeciesSet": {"compatibility_threshold": n.compatibility_threshold},
            "DefaultStagnation": {
                "species_fitness_func": n.species_fitness,
                "max_stagnation": n.max_stagnation,
                "species_elitism": n.species_elitism,
            },
            "DefaultReproduction": {
                "elitism": n.elitism,
                "survival_threshold": n.survival_threshold,
                "min_species_size": n.min_species_size,
            },
        }

    def neat_config(self) -> Any:
        """A ``neat.Config`` with ``PipelineGenome`` and neat-python's default reproduction, species set
        and stagnation, built through ``neatpipe.genome.settings.make_neat_config``."""
        from neatpipe.genome.settings import make_neat_config

        return make_neat_config(self.genome_settings, self.neat_sections())

    def write_neat_config(self, path: str | os.PathLike[str]) -> None:
        """Writes the neat-python config file (atomically)."""
        from neatpipe.genome.settings import write_neat_config

        write_neat_config(path, self.genome_settings, self.neat_sections())

    def run_dir(self, now: datetime | None = None) -> Path:
        """``output.dir``, or ``<output.root>/<name>-<YYYYmmdd-HHMMSS>`` (relative to the working directory)."""
        if self.output.dir is not None:
            return Path(self.output.dir)
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        return Path(self.output.root) / f"{self.name}-{stamp}"

    # -- problems ---------------------------------------------------------------------------------

    def load_problems(self) -> Any:
        """Every problem of the benchmark split (a ``neatpipe.bench.ProblemSet``)."""
        from neatpipe.bench import load_humaneval, load_mbpp

        b = self.benchmark
        if b.name == "humaneval":
            return load_humaneval(b.path)
        return load_mbpp(b.path, split=b.split, visible=b.visible_tests or "first")

    def difficulty_labels(self) -> dict[str, str] | None:
        """``subset.labels`` read as task id -> label (None without a file or with stratified off)."""
        if self.subset.labels is None or not self.subset.stratified:
            return None
        where = self.subset.labels
        try:
            text = read_text(where)
            data = json.loads(text) if where.endswith(".json") else load_yaml(text)
        except FileError as exc:
            raise ExperimentError([FieldProblem("subset.labels", str(exc))], self.source) from None
        except (ValueError, yaml.YAMLError) as exc:
            problem = FieldProblem("subset.labels", f"{where}: not valid JSON or YAML: {exc}")
            raise ExperimentError([problem], self.source) from None
        if not isinstance(data, Mapping):
            raise ExperimentError(
                [FieldProblem("subset.labels", f"{where}: the file must map task ids to labels")], self.source
            )
        return {str(k): str(v) for k, v in data.items()}

    def split_problems(self, problems: Any) -> tuple[Any, Any]:
        """``(search_pool, held_out)``: ``validation.size`` problems drawn (stratified) once by the seed and
        kept out of the search; with ``validation.size`` null the held-out set is every problem."""
        from neatpipe.bench import subset

        if self.validation.size is None:
            return problems, problems
        labels = self.difficulty_labels()
        held = subset(
            problems,
            self.validation.size,
            seed=derive_seed("neatpipe-validation", self.subset.seed),
            labels=labels,
        )
        chosen = set(held.task_ids)
        pool = problems.select([t for t in problems.task_ids if t not in chosen])
        pool.options.update({"held_out": len(chosen)})
        return pool, held

    def subset_schedule(self, pool: Any) -> Any:
        """The one subset policy (a ``neatpipe.bench.SubsetSchedule``) over ``pool``: ``subset.size``
        problems, the same every generation (fixed) or a new draw each (rotating); all of ``pool`` when
        size is null."""
        from neatpipe.bench.subsets import SubsetSchedule

        s = self.subset
        return SubsetSchedule(
            pool,
            s.size,
            rotate=s.policy == "rotating",
            seed=int(s.seed if s.seed is not None else self.seed),
            labels=self.difficulty_labels() if s.stratified else None,
            stratified=s.stratified,
        )

    def search_subset(self, pool: Any, generation: int = 0) -> Any:
        """The problems that score genomes in ``generation`` (see :meth:`subset_schedule`)."""
        return self.subset_schedule(pool).for_generation(generation)


# ---------------------------------------------------------------------------------------------------------
# files


def load_experiment(
    path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None, models: str | None = None
) -> Experiment:
    """The experiment in a YAML file. ``base_dir``: where relative paths start (default: the working
    directory). ``models``: the name of a ``model_alternatives`` set to use instead of ``models``."""
    source = str(path)
    try:
        text = read_text(path)
    except FileError as exc:
        raise ExperimentError(exc.reason, source) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ExperimentError(f"not valid YAML: {exc}", source) from None
    experiment = Experiment.from_dict(data, source=source, base_dir=base_dir)
    return experiment.using(models) if models else experiment


# ---------------------------------------------------------------------------------------------------------
# documentation


@dataclass(frozen=True)
class FieldDoc:
    """One row of the field reference: dotted path, type, default (as YAML writes it) and meaning."""

    path: str
    type: str
    default: str
    doc: str


def _yaml_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def describe_fields() -> list[FieldDoc]:
    """Every field of the schema with its default, in file order (docs/experiments.md's table)."""
    top = {f.name: f.default for f in fields(Experiment)}
    rows = [
        FieldDoc("format", "str", FORMAT, "the schema version"),
        FieldDoc("name", "str", "the file's stem", "names the run folder; letters, digits, '_', '.', '-'"),
        FieldDoc("description", "str", _yaml_value(top["description"]), "free text"),
        FieldDoc(
            "mode", ", ".join(MODES), top["mode"], "evolve (a NEAT search) or evaluate (score fixed designs)"
        ),
        FieldDoc("seed", "int", _yaml_value(top["seed"]), "seeds neat-python, the subsets and the sampling"),
    ]
    section_rows: dict[str, list[FieldDoc]] = {}

    def walk(cls: type, prefix: str) -> list[FieldDoc]:
        out = []
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            path = _join(prefix, f.name)
            tp = hints[f.name]
            if is_dataclass(tp):
                out.extend(walk(tp, path))
                continue
            if f.default is not MISSING:
                default = _yaml_value(f.default)
            else:
                default = _yaml_value(f.default_factory())
            choices = f.metadata.get("choices")
            type_text = ", ".join(choices) if choices else _type_name(tp)
            out.append(FieldDoc(path, type_text, default, f.metadata.get("doc", "")))
        return out

    for key, cls in _SECTIONS.items():
        section_rows[key] = walk(cls, key)
    rows.extend(section_rows["benchmark"] + section_rows["subset"] + section_rows["validation"])
    rows.append(
        FieldDoc(
            "feedback",
            ", ".join(FEEDBACK_SOURCES),
            top["feedback"],
            "tests executors report: visible (honest), hidden (oracle, as the study), genome (each executor's own)",
        )
    )
    rows.append(
        FieldDoc(
            "models",
            "mapping",
            "required",
            "model name -> backend spec string or mapping (spec, options, make_tiny)",
        )
    )
    rows.append(
        FieldDoc(
            "model_alternatives",
            "mapping",
            "{}",
            "set name -> another mapping of the same model names (e.g. ollama)",
        )
    )
    rows.extend(section_rows["prompts"])
    rows.append(
        FieldDoc(
            "genome.initial",
            "str or list",
            "minimal",
            "the first generation: minimal, or genome file(s) it starts from",
        )
    )
    defaults = GenomeSettings()
    for name, doc in GenomeSettings.describe().items():
        if name not in DERIVED_GENOME_FIELDS:
            rows.append(
                FieldDoc(
                    f"genome.{name}", _SETTINGS_FIELDS[name].type, _yaml_value(getattr(defaults, name)), doc
                )
            )
    for key in ("neat", "fitness", "budget", "backend", "output", "evaluate"):
        rows.extend(section_rows[key])
    return rows


def _type_name(tp: Any) -> str:
    if _is_optional(tp):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " or null"
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "list"
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


__all__ = [
    "BENCHMARKS",
    "FEEDBACK_SOURCES",
    "FORMAT",
    "MODES",
    "PENALTY_KINDS",
    "BackendSettings",
    "BenchmarkSettings",
    "BudgetSettings",
    "EvaluateSettings",
    "Experiment",
    "ExperimentError",
    "FieldDoc",
    "FieldProblem",
    "FitnessSettings",
    "GenomeEntry",
    "GenomeOptions",
    "ModelEntry",
    "NeatSettings",
    "OutputSettings",
    "PenaltySettings",
    "PromptPools",
    "RacingSettings",
    "SubsetPolicy",
    "ValidationSettings",
    "describe_fields",
    "load_experiment",
    "parse_duration",
]
