"""The sections of an experiment file, one frozen dataclass each (benchmark, subset, validation, fitness,
neat, budget, backend, output, prompts, models, genome options, evaluate, ray), each checking its own
fields."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from neatpipe.errors import shown
from neatpipe.experiment.fields import (
    _NAME_RE,
    _SPEC_EXAMPLES,
    DERIVED_GENOME_FIELDS,
    KNOWN_SIZES,
    SPECIES_FITNESS,
    SPLITS,
    SUBSET_POLICIES,
    FieldProblem,
    _at_least,
    _batch_size,
    _cache,
    _cache_mode,
    _check_fields,
    _coerce,
    _Ctx,
    _duration,
    _f,
    _fraction,
    _hf_option,
    _hf_parse,
    _Invalid,
    _join,
    _path_parser,
    _positive,
    _raise_if,
    _suggest,
    _task_ids_file,
)
from neatpipe.genome.errors import ConfigError
from neatpipe.genome.prompts import PROMPT_POOLS
from neatpipe.genome.settings import NEAT_DEFAULTS, GenomeSettings
from neatpipe.models.cache import CACHE_MODES
from neatpipe.models.errors import SpecError
from neatpipe.models.spec import HFSpec, ModelSpec, parse_spec, spec_to_mapping
from neatpipe.sandbox.pool import MAX_WORKERS
from neatpipe.vocab import BENCHMARKS, PENALTY_KINDS, VISIBLE_POLICIES

# ---------------------------------------------------------------------------------------------------------
# sections


@dataclass(frozen=True)
class BenchmarkSettings:
    """Which problems: the benchmark, its split, and which tests a model may see."""

    name: str = _f(
        "humaneval",
        "humaneval, mbpp (sanitized, 427 problems), or their EvalPlus versions humaneval+ and mbpp+",
        choices=BENCHMARKS,
    )
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
        shown_name = {"humaneval": "HumanEval", "humaneval+": "HumanEval+", "mbpp+": "MBPP+"}.get(self.name)
        if shown_name and self.split != "all":
            out.append(FieldProblem("split", f"{shown_name} has one split, all; got {shown(self.split)}"))
        if shown_name and self.visible_tests is not None:
            out.append(
                FieldProblem(
                    "visible_tests", f"only for mbpp ({shown_name} shows the examples of its prompts)"
                )
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
    tasks: str | None = _f(
        None,
        "a file of task ids (a JSON list or one per line): the search draws only from these problems",
        parse=_task_ids_file,
    )

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


def _temperature(v: Any) -> str | None:
    return None if 0.0 <= v <= 2.0 else f"must lie between 0 and 2, got {shown(v)}"


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
    temperature: float | None = _f(
        None,
        "sampling temperature of every model node when champions and baselines are validated (mode "
        "evaluate: when the designs are scored); 0: greedy; null: each genome's own",
        check=_temperature,
    )

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))


@dataclass(frozen=True)
class PenaltySettings:
    """The complexity penalty subtracted from the pass rate."""

    kind: str = _f(
        "per-node",
        "per-node: weight x nodes of the genome (every role); per-model-node: weight x generators, analyzers "
        "and refiners; per-call: weight x model calls per problem; per-token: weight x thousands of tokens "
        "per problem; none",
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


def _at_most_workers(v: Any) -> str | None:
    return None if 1 <= v <= MAX_WORKERS else f"must lie between 1 and {MAX_WORKERS}, got {shown(v)}"


def _ray_address(value: Any) -> str | None:
    if not value.strip() or any(c.isspace() for c in value):
        return f"expected auto, host:port or ray://host:port without spaces, got {shown(value)}"
    return None


@dataclass(frozen=True)
class RaySettings:
    """Where and how ``engine: ray`` runs the evaluation (``engine: local`` ignores this section)."""

    address: str | None = _f(
        None,
        "null: start Ray on this machine; auto: the cluster this machine is a node of; or the head node, "
        "host:6379 or ray://host:10001",
        check=_ray_address,
    )
    num_cpus: int | None = _f(
        None, "CPUs of the Ray instance started here (address null); null: all", check=_at_least(1)
    )
    model_actors: int = _f(1, "actors per model; a batch is split across them in order", check=_at_least(1))
    num_gpus: float = _f(
        0.0,
        "GPUs each model actor reserves (1 for an hf model on CUDA; a fraction shares one)",
        check=_at_least(0.0),
    )
    model_cpus: float = _f(1.0, "CPUs each model actor reserves", check=_at_least(0.0))
    sandbox_workers: int | None = _f(
        None, "sandbox worker processes on each node; null: one per CPU of the node", check=_at_most_workers
    )
    max_restarts: int = _f(
        3, "times Ray restarts a dead actor (its batch is sent again each time)", check=_at_least(0)
    )

    def __post_init__(self) -> None:
        _raise_if(_check_fields(self))

    def _rules(self) -> list[FieldProblem]:
        if self.address is not None and self.num_cpus is not None:
            return [FieldProblem("num_cpus", "only for a Ray instance started here (address: null)")]
        return []


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
    if len(ctx.problems) > before:
        raise _Invalid
    return GenomeOptions(tuple(resolved), settings)
