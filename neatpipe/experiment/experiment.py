"""The whole experiment: its sections, the rules across them, reading it from a mapping or a YAML file
and writing it back resolved. Plain data: what an experiment means for a run (models, problems,
subsets, the neat-python config) is built by :mod:`neatpipe.evolution.build`.

>>> exp = load_experiment("experiments/smoke.yaml")           # doctest: +SKIP
>>> exp.to_dict()            # resolved and fully explicit; Experiment.from_dict(...) gives exp back

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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from neatpipe.errors import shown
from neatpipe.experiment.fields import (
    _NAME_RE,
    FORMAT,
    MODES,
    ExperimentError,
    FieldProblem,
    _coerce,
    _Ctx,
    _Invalid,
    _not_one_of,
    _parse_section,
    _suggest,
    _to_plain,
)
from neatpipe.experiment.sections import (
    BackendSettings,
    BenchmarkSettings,
    BudgetSettings,
    EvaluateSettings,
    FitnessSettings,
    GenomeOptions,
    ModelEntry,
    NeatSettings,
    OutputSettings,
    PromptPools,
    RaySettings,
    SubsetPolicy,
    ValidationSettings,
    _parse_genome_options,
    _parse_models,
)
from neatpipe.genome.errors import GenomeError
from neatpipe.genome.settings import GenomeSettings
from neatpipe.io import FileError, load_yaml, read_text
from neatpipe.models.spec import HFSpec, ModelSpec
from neatpipe.vocab import ENGINES, FEEDBACK_SOURCES

# ---------------------------------------------------------------------------------------------------------
# the experiment


_TOP_KEYS = (
    "format", "name", "description", "mode", "seed", "benchmark", "subset", "validation", "feedback",
    "models", "model_alternatives", "prompts", "genome", "neat", "fitness", "budget", "backend", "output",
    "evaluate", "engine", "ray",
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
    "ray": RaySettings,
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
    engine: str = "local"
    ray: RaySettings = field(default_factory=RaySettings)
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
        if self.engine not in ENGINES:
            bad("engine", _not_one_of(self.engine, ENGINES))
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
        for key, tp in (
            ("description", str),
            ("mode", str),
            ("seed", int),
            ("feedback", str),
            ("engine", str),
        ):
            if key in data:
                try:
                    kwargs[key] = _coerce(tp, data[key], key, ctx)
                except _Invalid:
                    pass
        if "mode" in kwargs and kwargs["mode"] not in MODES:
            ctx.add("mode", _not_one_of(kwargs.pop("mode"), MODES))
        if "feedback" in kwargs and kwargs["feedback"] not in FEEDBACK_SOURCES:
            ctx.add("feedback", _not_one_of(kwargs.pop("feedback"), FEEDBACK_SOURCES))
        if "engine" in kwargs and kwargs["engine"] not in ENGINES:
            ctx.add("engine", _not_one_of(kwargs.pop("engine"), ENGINES))
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
        # still checked (against the defaults).
        prompts = kwargs.get("prompts", PromptPools())
        pool = tuple(m.name for m in models) if models is not None else None
        try:
            kwargs["genome"] = _parse_genome_options(data.get("genome"), "genome", ctx, pool, prompts.sizes())
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
            "engine": self.engine,
            "ray": _to_plain(self.ray),
        }
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=110)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Writes the resolved experiment as YAML, atomically (a run folder's ``experiment.yaml``)."""
        from neatpipe.io import atomic_write_text

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
    problems = genome_file_problems(experiment)
    if problems:
        raise ExperimentError(problems, source)
    return experiment.using(models) if models else experiment


def genome_file_problems(exp: Experiment) -> list[FieldProblem]:
    """What is wrong with the genome files an experiment names: initial genomes that break its genome
    limits, designs that use models it does not have. Reads the files: :func:`load_experiment` calls it
    after the experiment itself is built (the dataclasses read nothing)."""
    from neatpipe.genome.fileio import read_genome
    from neatpipe.genome.structure import Rules

    out = []
    rules = Rules.from_settings(exp.genome_settings)
    for i, item in enumerate(exp.genome.initial):
        if item != "minimal":
            try:
                read_genome(item, rules=rules)
            except GenomeError as exc:
                out.append(
                    FieldProblem(f"genome.initial[{i}]", f"the genome breaks this experiment's limits: {exc}")
                )
    names = set(exp.model_names)
    for i, entry in enumerate(exp.evaluate.genomes):
        where = f"evaluate.genomes[{i}]"
        for old, new in entry.replace_models:
            if new not in names:
                out.append(
                    FieldProblem(
                        f"{where}.replace_models.{old}",
                        f"{shown(new)} is not a model of this experiment{_suggest(new, sorted(names))}; models: {', '.join(exp.model_names)}",
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
                    "" if gene.model in swaps else f", or map it with replace_models: {{{gene.model}: ...}}"
                )
                out.append(
                    FieldProblem(
                        where,
                        f"{entry.path} uses model {shown(model)}, which is not in 'models' ({', '.join(exp.model_names)}){hint}",
                    )
                )
                break
    return out
