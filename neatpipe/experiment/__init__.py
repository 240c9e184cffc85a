"""Experiment files: one YAML schema, read into small typed frozen dataclasses (plain data: parsing and
validation only). The builder that turns an experiment into a run's objects is
:mod:`neatpipe.evolution.build`.

>>> exp = load_experiment("experiments/smoke.yaml")           # doctest: +SKIP
>>> exp.to_dict()            # resolved and fully explicit; Experiment.from_dict(...) gives exp back

The modules: ``fields`` (the typed parser, errors, vocabulary), ``sections`` (one dataclass per
section), ``experiment`` (the whole experiment and ``load_experiment``), ``docs`` (the field reference).
"""

from neatpipe.experiment.docs import FieldDoc, describe_fields
from neatpipe.experiment.experiment import Experiment, load_experiment
from neatpipe.experiment.fields import (
    FORMAT,
    MODES,
    ExperimentError,
    FieldProblem,
    parse_duration,
)
from neatpipe.experiment.sections import (
    BackendSettings,
    BenchmarkSettings,
    BudgetSettings,
    EvaluateSettings,
    FitnessSettings,
    GenomeEntry,
    GenomeOptions,
    ModelEntry,
    NeatSettings,
    OutputSettings,
    PenaltySettings,
    PromptPools,
    RacingSettings,
    SubsetPolicy,
    ValidationSettings,
)
from neatpipe.vocab import BENCHMARKS, FEEDBACK_SOURCES, PENALTY_KINDS

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
