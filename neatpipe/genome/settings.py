"""The ``[PipelineGenome]`` section of a neat-python config file, and the whole file written from plain
dictionaries (``neatpipe.genome.genome.make_neat_config`` builds a ``neat.Config`` from it).

neat-python reads its config from an INI file and hands the genome class the section's items as
strings (``parse_config``). ``GenomeSettings`` is the typed, validated, frozen form of that section;
every parameter has a default, so a section may list only what an experiment changes. The
experiment layer writes the file from YAML through ``write_neat_config``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import IO, Any

from neatpipe.genome.errors import ConfigError
from neatpipe.genome.genes import FEEDBACK_CHOICES, SELECTOR_STRATEGIES, Role
from neatpipe.genome.prompts import default_pool_sizes
from neatpipe.io import atomic_write_text

#: The model pool names the baselines use; experiment files map each to a backend spec.
DEFAULT_MODELS: tuple[str, ...] = (
    "qwen2.5-coder-1.5b",
    "qwen2.5-coder-3b",
    "qwen2.5-1.5b",
    "qwen2.5-3b",
    "llama3.2-1b",
    "llama3.2-3b",
)

_POOLS = default_pool_sizes()


def _doc(text: str, default: Any = MISSING, default_factory: Any = MISSING) -> Any:
    """A dataclass field whose metadata carries the parameter's one-line documentation."""
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class GenomeSettings:
    """Every parameter of the ``[PipelineGenome]`` section, typed and checked.

    Mutation rates are probabilities. Structural rates (``add_*``, ``remove_rate``) apply once per
    genome per reproduction; attribute rates apply to each node the mutation can touch.
    """

    models: tuple[str, ...] = _doc("model pool: names a node's model is drawn from", DEFAULT_MODELS)
    generator_prompts: int = _doc("generator prompt pool size (indices 0..n-1)", _POOLS["generator"])
    analyzer_prompts: int = _doc("analyzer prompt pool size", _POOLS["analyzer"])
    refiner_prompts: int = _doc("refiner prompt pool size", _POOLS["refiner"])
    max_nodes: int = _doc("most nodes a genome may have (pins not counted)", 12)
    max_stages: int = _doc("most refine stages (executor + refiner, optional analyzer)", 3)
    max_generators: int = _doc("most generators (parallel generators of best-of-n)", 3)
    initial_stages: int = _doc("refine stages in each genome of the first generation", 0)
    add_stage_rate: float = _doc("add a refine stage after a candidate producer", 0.15)
    add_analyzer_rate: float = _doc("add an analyzer to a stage that has none", 0.1)
    add_generator_rate: float = _doc("add a parallel generator (inserting a selector if needed)", 0.08)
    remove_rate: float = _doc("remove a node or a stage, then repair the wiring", 0.08)
    model_swap_rate: float = _doc("per model-calling node: draw another model from the pool", 0.1)
    prompt_change_rate: float = _doc("per model-calling node: draw another prompt variant", 0.1)
    temperature_perturb_rate: float = _doc(
        "per model-calling node: add gaussian noise to the temperature", 0.2
    )
    iterations_change_rate: float = _doc("per refiner: move the iteration count by one", 0.1)
    early_stop_toggle_rate: float = _doc("per refiner: flip early stopping (if early_stop_mutable)", 0.05)
    temperature_min: float = _doc("lowest temperature (perturbations are clipped)", 0.0)
    temperature_max: float = _doc("highest temperature", 1.0)
    temperature_init: float = _doc("mean temperature of a new node", 0.2)
    temperature_sigma: float = _doc(
        "standard deviation of a perturbation and of a new node's temperature", 0.1
    )
    generator_max_tokens: int = _doc("token budget of a generator call", 512)
    analyzer_max_tokens: int = _doc("token budget of an analyzer call", 256)
    refiner_max_tokens: int = _doc("token budget of a refiner call", 768)
    iterations_min: int = _doc("fewest iterations of a refine stage", 1)
    iterations_max: int = _doc("most iterations of a refine stage", 3)
    early_stop_init: bool = _doc("early stopping of a new refine stage", True)
    early_stop_mutable: bool = _doc("whether mutation may toggle early stopping", True)
    executor_feedback: str = _doc("tests a new executor feeds back: visible or hidden", "visible")
    executor_time_limit: float = _doc("CPU seconds a program may use in a new executor", 5.0)
    selector_strategy: str = _doc("strategy of a new selector: visible-tests or agreement", "visible-tests")
    compatibility_excess_coefficient: float = _doc(
        "distance per excess gene (divided by the larger genome's gene count)", 1.0
    )
    compatibility_disjoint_coefficient: float = _doc(
        "distance per disjoint gene (divided by the larger genome's gene count)", 1.0
    )
    compatibility_attribute_coefficient: float = _doc(
        "weight of the mean attribute difference of matching nodes", 0.4
    )
    compatibility_model_weight: float = _doc(
        "attribute difference of two matching nodes with different models", 1.0
    )

    def __post_init__(self) -> None:
        problems = list(_check(self))
        if problems:
            raise ConfigError("[PipelineGenome] " + "; ".join(problems))

    # -- derived values -------------------------------------------------------------------------

    def prompt_pool_size(self, role: Role) -> int:
        return {
            Role.GENERATOR: self.generator_prompts,
            Role.ANALYZER: self.analyzer_prompts,
            Role.REFINER: self.refiner_prompts,
        }[role]

    def max_tokens(self, role: Role) -> int:
        return {
            Role.GENERATOR: self.generator_max_tokens,
            Role.ANALYZER: self.analyzer_max_tokens,
            Role.REFINER: self.refiner_max_tokens,
        }[role]

    # -- reading and writing --------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GenomeSettings:
        """Settings from a mapping of parameter names to values, typed or as INI strings.

        Unknown names are errors (a typo must not silently fall back to a default)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"[PipelineGenome] unknown parameter(s): {', '.join(unknown)} (known: {', '.join(known)})"
            )
        kwargs = {name: _coerce(name, known[name].type, value) for name, value in values.items()}
        return cls(**kwargs)

    def to_mapping(self) -> dict[str, Any]:
        """Plain typed values (lists for the model pool), e.g. for YAML."""
        data = asdict(self)
        data["models"] = list(self.models)
        return data

    def to_ini_items(self) -> dict[str, str]:
        """Every parameter as the string neat-python's INI file holds."""
        return {name: _format(value) for name, value in asdict(self).items()}

    def write(self, f: IO[str]) -> None:
        """Writes the section's items (without the header), one ``name = value`` per line."""
        items = self.to_ini_items()
        width = max(len(name) for name in items)
        for name, value in items.items():
            f.write(f"{name.ljust(width)} = {value}\n")

    @staticmethod
    def describe() -> dict[str, str]:
        """Parameter name -> one-line documentation, in section order."""
        return {f.name: f.metadata["doc"] for f in fields(GenomeSettings)}


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return str(value)


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """One parameter's value as its declared type; strings are parsed the way INI files write them."""
    try:
        if annotation == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(part for part in value.replace(",", " ").split() if part)
            return tuple(str(v) for v in value)
        if annotation == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "on", "1"):
                return True
            if text in ("false", "no", "off", "0"):
                return False
            raise ValueError("expected true or false")
        if annotation == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(value)
        if annotation == "float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if annotation == "str":
            return str(value).strip()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[PipelineGenome] {name} = {value!r}: {exc}") from None
    raise AssertionError(f"unhandled annotation {annotation} for {name}")


def _check(s: GenomeSettings) -> list[str]:
    """Every range rule the settings break, each naming its parameter."""
    out: list[str] = []
    if not s.models:
        out.append("models: the model pool is empty")
    if len(set(s.models)) != len(s.models):
        out.append(f"models: duplicate names in {' '.join(s.models)}")
    for role in ("generator", "analyzer", "refiner"):
        if getattr(s, f"{role}_prompts") < 1:
            out.append(f"{role}_prompts: must be at least 1")
        if getattr(s, f"{role}_max_tokens") < 1:
            out.append(f"{role}_max_tokens: must be at least 1")
    for name in ("max_nodes", "max_generators"):
        if getattr(s, name) < 1:
            out.append(f"{name}: must be at least 1")
    if s.max_stages < 0:
        out.append("max_stages: must not be negative")
    if not 0 <= s.initial_stages <= s.max_stages:
        out.append(f"initial_stages: must lie in 0..max_stages ({s.max_stages})")
    elif 1 + 2 * s.initial_stages > s.max_nodes:
        out.append(
            f"initial_stages: {s.initial_stages} stages need {1 + 2 * s.initial_stages} nodes, "
            f"more than max_nodes ({s.max_nodes})"
        )
    for f in fields(s):
        if f.name.endswith("_rate") and not 0.0 <= getattr(s, f.name) <= 1.0:
            out.append(f"{f.name}: a probability must lie in [0, 1]")
        if f.name.startswith("compatibility_") and getattr(s, f.name) < 0:
            out.append(f"{f.name}: must not be negative")
    if not 0.0 <= s.temperature_min <= s.temperature_max:
        out.append("temperature_min, temperature_max: need 0 <= temperature_min <= temperature_max")
    elif not s.temperature_min <= s.temperature_init <= s.temperature_max:
        out.append("temperature_init: must lie in [temperature_min, temperature_max]")
    if s.temperature_sigma < 0:
        out.append("temperature_sigma: must not be negative")
    if not 1 <= s.iterations_min <= s.iterations_max:
        out.append("iterations_min, iterations_max: need 1 <= iterations_min <= iterations_max")
    if s.executor_feedback not in FEEDBACK_CHOICES:
        out.append(f"executor_feedback: {s.executor_feedback!r} is not one of {', '.join(FEEDBACK_CHOICES)}")
    if s.executor_time_limit <= 0:
        out.append("executor_time_limit: must be positive")
    if s.selector_strategy not in SELECTOR_STRATEGIES:
        out.append(
            f"selector_strategy: {s.selector_strategy!r} is not one of {', '.join(SELECTOR_STRATEGIES)}"
        )
    return out


class PipelineGenomeConfig:
    """What neat-python keeps as ``config.genome_config`` for ``PipelineGenome``.

    ``settings`` is the frozen, validated section. ``innovation_tracker`` is set by neat-python's
    reproduction (and restored from checkpoints); structural mutations draw node keys and edge
    innovation numbers from it.
    """

    def __init__(self, settings: GenomeSettings) -> None:
        self.settings = settings
        self.innovation_tracker: Any = None

    def __repr__(self) -> str:
        return f"PipelineGenomeConfig({self.settings!r})"


# -- whole neat-python configs ------------------------------------------------------------------

#: Defaults for the other sections of a neat-python config file; a caller overrides any of them.
NEAT_DEFAULTS: dict[str, dict[str, Any]] = {
    "NEAT": {
        "pop_size": 20,
        "fitness_criterion": "max",
        "fitness_threshold": 1.0,
        "reset_on_extinction": False,
        "no_fitness_termination": False,
    },
    "DefaultSpeciesSet": {"compatibility_threshold": 1.5},
    "DefaultStagnation": {"species_fitness_func": "max", "max_stagnation": 15, "species_elitism": 1},
    "DefaultReproduction": {"elitism": 1, "survival_threshold": 0.3, "min_species_size": 1},
}


def _merged_sections(
    genome: Mapping[str, Any] | GenomeSettings, neat_settings: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, str]]:
    settings = genome if isinstance(genome, GenomeSettings) else GenomeSettings.from_mapping(genome)
    sections: dict[str, dict[str, Any]] = {name: dict(values) for name, values in NEAT_DEFAULTS.items()}
    for name, values in (neat_settings or {}).items():
        if name == "PipelineGenome":
            raise ConfigError(
                "give the [PipelineGenome] settings as the genome argument, not in neat_settings"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"neat settings section [{name}] must be a mapping of parameters")
        sections.setdefault(name, {}).update(values)
    out = {name: {k: _format(v) for k, v in values.items()} for name, values in sections.items()}
    out["PipelineGenome"] = settings.to_ini_items()
    return out


def write_neat_config(
    path: str | os.PathLike[str],
    genome: Mapping[str, Any] | GenomeSettings,
    neat_settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Writes a complete neat-python config file for ``PipelineGenome``, atomically.

    ``genome`` holds ``[PipelineGenome]`` parameters (see ``GenomeSettings``); ``neat_settings``
    maps a section name (``NEAT``, ``DefaultSpeciesSet``, ``DefaultStagnation``,
    ``DefaultReproduction``) to the parameters that replace ``NEAT_DEFAULTS``.
    """
    sections = _merged_sections(genome, neat_settings)
    order = ["NEAT", "PipelineGenome", *[n for n in sections if n not in ("NEAT", "PipelineGenome")]]
    lines: list[str] = []
    for name in order:
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {value}" for key, value in sections[name].items())
        lines.append("")
    atomic_write_text(path, "\n".join(lines))
