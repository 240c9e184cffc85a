"""Experiment files: one YAML schema, read into small typed frozen dataclasses (plain data: parsing and
validation only). The builder that turns an experiment into a run's objects is
:mod:`neatpipe.evolution.build`.

>>> exp = load_experiment("experiments/smoke.yaml")           # doctest: +SKIP
>>> exp.to_dict()            # resolved and fully explicit; Experiment.from_dict(...) gives exp back

The modules: ``fields`` (the typed parser, errors, vocabulary), ``sections`` (one dataclass per
section), ``experiment`` (the whole experiment and ``load_experiment``), ``docs`` (the field reference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports
from neatpipe.vocab import BENCHMARKS, FEEDBACK_SOURCES, PENALTY_KINDS

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.experiment.docs import FieldDoc, describe_fields
    from neatpipe.experiment.experiment import Experiment, genome_file_problems, load_experiment
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
        RaySettings,
        SubsetPolicy,
        ValidationSettings,
    )

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FieldDoc": ("neatpipe.experiment.docs", "FieldDoc"),
        "describe_fields": ("neatpipe.experiment.docs", "describe_fields"),
        "Experiment": ("neatpipe.experiment.experiment", "Experiment"),
        "genome_file_problems": ("neatpipe.experiment.experiment", "genome_file_problems"),
        "load_experiment": ("neatpipe.experiment.experiment", "load_experiment"),
        "FORMAT": ("neatpipe.experiment.fields", "FORMAT"),
        "MODES": ("neatpipe.experiment.fields", "MODES"),
        "ExperimentError": ("neatpipe.experiment.fields", "ExperimentError"),
        "FieldProblem": ("neatpipe.experiment.fields", "FieldProblem"),
        "parse_duration": ("neatpipe.experiment.fields", "parse_duration"),
        "BackendSettings": ("neatpipe.experiment.sections", "BackendSettings"),
        "BenchmarkSettings": ("neatpipe.experiment.sections", "BenchmarkSettings"),
        "BudgetSettings": ("neatpipe.experiment.sections", "BudgetSettings"),
        "EvaluateSettings": ("neatpipe.experiment.sections", "EvaluateSettings"),
        "FitnessSettings": ("neatpipe.experiment.sections", "FitnessSettings"),
        "GenomeEntry": ("neatpipe.experiment.sections", "GenomeEntry"),
        "GenomeOptions": ("neatpipe.experiment.sections", "GenomeOptions"),
        "ModelEntry": ("neatpipe.experiment.sections", "ModelEntry"),
        "NeatSettings": ("neatpipe.experiment.sections", "NeatSettings"),
        "OutputSettings": ("neatpipe.experiment.sections", "OutputSettings"),
        "RaySettings": ("neatpipe.experiment.sections", "RaySettings"),
        "PenaltySettings": ("neatpipe.experiment.sections", "PenaltySettings"),
        "PromptPools": ("neatpipe.experiment.sections", "PromptPools"),
        "RacingSettings": ("neatpipe.experiment.sections", "RacingSettings"),
        "SubsetPolicy": ("neatpipe.experiment.sections", "SubsetPolicy"),
        "ValidationSettings": ("neatpipe.experiment.sections", "ValidationSettings"),
    },
    globals(),
)


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
    "RaySettings",
    "PenaltySettings",
    "PromptPools",
    "RacingSettings",
    "SubsetPolicy",
    "ValidationSettings",
    "describe_fields",
    "genome_file_problems",
    "load_experiment",
    "parse_duration",
]
