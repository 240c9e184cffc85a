"""The synthetic coder: an offline, clearly labelled stand-in for a small code model
(``synthetic:<preset>``, a backend kind of its own).

It lets a whole search run without a model and still get meaningful fitness (see
:mod:`neatpipe.synthetic.coder` for how an answer is made). The package sits above the runtime because it
reads the pipeline's messages; the model registry names its loader by a dotted string, so
:mod:`neatpipe.models` never imports it. One concept per module:

- :mod:`~neatpipe.synthetic.presets`: the presets, their options, the calibration constants;
- :mod:`~neatpipe.synthetic.calibration`: per-problem difficulty and the success curve;
- :mod:`~neatpipe.synthetic.draws`: hash-seeded randomness (no global random state);
- :mod:`~neatpipe.synthetic.faults`: single-site faults made from the reference with :mod:`ast`;
- :mod:`~neatpipe.synthetic.checker`: runs fault candidates once each through the caller's runner;
- :mod:`~neatpipe.synthetic.messages`: reads role, problem and feedback from a request;
- :mod:`~neatpipe.synthetic.writing`: the wording of code answers and analyses;
- :mod:`~neatpipe.synthetic.tokens`: token estimates without a tokenizer;
- :mod:`~neatpipe.synthetic.coder`: :class:`SyntheticCoder` and the registry's ``load_synthetic``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.synthetic.calibration import difficulty, first_pass_probability
    from neatpipe.synthetic.checker import CHECK_TIMEOUT_S, FaultChecker
    from neatpipe.synthetic.coder import (
        BEHAVIOUR_VERSION,
        OUTCOME_ANALYSIS,
        OUTCOME_CORRECT,
        OUTCOME_FAULT,
        OUTCOME_NON_ANSWER,
        OUTCOME_UNCHANGED,
        OUTCOMES,
        SyntheticAnswer,
        SyntheticCoder,
        load_synthetic,
    )
    from neatpipe.synthetic.faults import Fault, fault_candidates
    from neatpipe.synthetic.presets import (
        ERROR_KINDS,
        ERROR_TYPES,
        PRESET_OPTIONS,
        PRESETS,
        REFERENCE_TEMPERATURE,
        REPAIR_KINDS,
        WITHOUT_FAILING_TEST,
        WITHOUT_TRACEBACK,
        FaultWeights,
        RepairRates,
        SyntheticPreset,
        preset_named,
    )
    from neatpipe.synthetic.tokens import estimate_tokens

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "difficulty": ("neatpipe.synthetic.calibration", "difficulty"),
        "first_pass_probability": ("neatpipe.synthetic.calibration", "first_pass_probability"),
        "CHECK_TIMEOUT_S": ("neatpipe.synthetic.checker", "CHECK_TIMEOUT_S"),
        "FaultChecker": ("neatpipe.synthetic.checker", "FaultChecker"),
        "BEHAVIOUR_VERSION": ("neatpipe.synthetic.coder", "BEHAVIOUR_VERSION"),
        "OUTCOME_ANALYSIS": ("neatpipe.synthetic.coder", "OUTCOME_ANALYSIS"),
        "OUTCOME_CORRECT": ("neatpipe.synthetic.coder", "OUTCOME_CORRECT"),
        "OUTCOME_FAULT": ("neatpipe.synthetic.coder", "OUTCOME_FAULT"),
        "OUTCOME_NON_ANSWER": ("neatpipe.synthetic.coder", "OUTCOME_NON_ANSWER"),
        "OUTCOME_UNCHANGED": ("neatpipe.synthetic.coder", "OUTCOME_UNCHANGED"),
        "OUTCOMES": ("neatpipe.synthetic.coder", "OUTCOMES"),
        "SyntheticAnswer": ("neatpipe.synthetic.coder", "SyntheticAnswer"),
        "SyntheticCoder": ("neatpipe.synthetic.coder", "SyntheticCoder"),
        "load_synthetic": ("neatpipe.synthetic.coder", "load_synthetic"),
        "Fault": ("neatpipe.synthetic.faults", "Fault"),
        "fault_candidates": ("neatpipe.synthetic.faults", "fault_candidates"),
        "ERROR_KINDS": ("neatpipe.synthetic.presets", "ERROR_KINDS"),
        "ERROR_TYPES": ("neatpipe.synthetic.presets", "ERROR_TYPES"),
        "PRESET_OPTIONS": ("neatpipe.synthetic.presets", "PRESET_OPTIONS"),
        "PRESETS": ("neatpipe.synthetic.presets", "PRESETS"),
        "REFERENCE_TEMPERATURE": ("neatpipe.synthetic.presets", "REFERENCE_TEMPERATURE"),
        "REPAIR_KINDS": ("neatpipe.synthetic.presets", "REPAIR_KINDS"),
        "WITHOUT_FAILING_TEST": ("neatpipe.synthetic.presets", "WITHOUT_FAILING_TEST"),
        "WITHOUT_TRACEBACK": ("neatpipe.synthetic.presets", "WITHOUT_TRACEBACK"),
        "FaultWeights": ("neatpipe.synthetic.presets", "FaultWeights"),
        "RepairRates": ("neatpipe.synthetic.presets", "RepairRates"),
        "SyntheticPreset": ("neatpipe.synthetic.presets", "SyntheticPreset"),
        "preset_named": ("neatpipe.synthetic.presets", "preset_named"),
        "estimate_tokens": ("neatpipe.synthetic.tokens", "estimate_tokens"),
    },
    globals(),
)


__all__ = [
    "BEHAVIOUR_VERSION",
    "CHECK_TIMEOUT_S",
    "ERROR_KINDS",
    "ERROR_TYPES",
    "OUTCOMES",
    "OUTCOME_ANALYSIS",
    "OUTCOME_CORRECT",
    "OUTCOME_FAULT",
    "OUTCOME_NON_ANSWER",
    "OUTCOME_UNCHANGED",
    "PRESETS",
    "PRESET_OPTIONS",
    "REFERENCE_TEMPERATURE",
    "REPAIR_KINDS",
    "WITHOUT_FAILING_TEST",
    "WITHOUT_TRACEBACK",
    "Fault",
    "FaultChecker",
    "FaultWeights",
    "RepairRates",
    "SyntheticAnswer",
    "SyntheticCoder",
    "SyntheticPreset",
    "difficulty",
    "estimate_tokens",
    "fault_candidates",
    "first_pass_probability",
    "load_synthetic",
    "preset_named",
]
