"""What each synthetic model is like: the presets, the options that override them, and the numbers they
are calibrated with.

A preset is the whole personality of one synthetic model (how often its first attempt is right, which
faults it makes, how often it repairs each kind of error, how often refining breaks correct code), kept
as frozen, validated data so that it can be compared, hashed into the backend identity and overridden
field by field from a spec mapping (``{spec: "synthetic:coder-1.5b", regression: 0.2}``). The numbers shared by every
preset (how a repair's chance shrinks without a traceback or a failing test, how much it depends on the
problem's difficulty) live here too, next to the study figures they come from, so that changing the
calibration means editing one module. Nothing here runs code or reads a benchmark.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from neatpipe.models.errors import SpecError

ERROR_KINDS: tuple[str, ...] = ("name", "syntax", "assertion", "type")
REPAIR_KINDS: tuple[str, ...] = (*ERROR_KINDS, "other")
ERROR_TYPES: Mapping[str, str] = {
    "name": "NameError",
    "syntax": "SyntaxError",
    "assertion": "AssertionError",
    "type": "TypeError",
}
# how an error type reported in feedback maps to a repair kind (everything else is "other")
REPAIR_KIND_OF: Mapping[str, str] = {
    "NameError": "name",
    "UnboundLocalError": "name",
    "SyntaxError": "syntax",
    "IndentationError": "syntax",
    "TabError": "syntax",
    "AssertionError": "assertion",
    "TypeError": "type",
}

# How much a repair's chance shrinks when a part of the feedback is missing, per repair kind. A NameError's
# message already names the culprit, so the traceback matters less and the test not at all; an
# AssertionError is nearly hopeless without the failing test. Shared by every preset.
WITHOUT_TRACEBACK: Mapping[str, float] = {
    "name": 0.75,
    "syntax": 0.8,
    "assertion": 0.95,
    "type": 0.7,
    "other": 0.9,
}
WITHOUT_FAILING_TEST: Mapping[str, float] = {
    "name": 1.0,
    "syntax": 1.0,
    "assertion": 0.6,
    "type": 0.9,
    "other": 0.85,
}
# How much a repair depends on the problem's difficulty for the refining model, per repair kind: 0 means
# not at all, 1 means in proportion to the model's own chance of solving the problem. A misspelt name is
# fixed about as easily in a hard problem as in an easy one; a wrong result is fixed only where the model
# understands the problem, which is what makes fixes dry up after the first iteration (study: 22, 7, 1).
DIFFICULTY_DEPENDENCE: Mapping[str, float] = {
    "name": 0.3,
    "syntax": 0.3,
    "assertion": 1.0,
    "type": 0.5,
    "other": 0.7,
}
# The per-problem fixability factor is (k + 1) * h**k for a uniform hash h: mean 1, and for k = 4 more than
# half of the problems get less than 0.5. It makes fixes concentrate on the same problems run after run, so
# that repeated refinement stops paying after an iteration or two, as in the study.
FIXABILITY_SKEW = 4
MAX_REPAIR_PROBABILITY = 0.95
# The temperature at which a preset's ``sharpness`` applies (Ollama's default, the study's setting).
REFERENCE_TEMPERATURE = 0.8


def _check_probability(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {name} must be a probability in [0, 1], got {value!r}")


@dataclass(frozen=True)
class FaultWeights:
    """Relative frequency of each fault kind among a model's failed first attempts."""

    name: float
    syntax: float
    assertion: float
    type: float

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or not math.isfinite(v):
                raise ValueError(f"fault weight {f.name} must be a finite number >= 0, got {v!r}")
        if sum(asdict(self).values()) <= 0:
            raise ValueError("fault weights must not all be 0")

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ERROR_KINDS}


@dataclass(frozen=True)
class RepairRates:
    """Probability that one refinement step fixes a failure of each kind, given full feedback (error
    message, traceback and failing test, no analysis). ``other`` covers every other error type
    (IndexError, ValueError, timeouts, ...)."""

    name: float
    syntax: float
    assertion: float
    type: float
    other: float

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_probability("repair rates", f.name, getattr(self, f.name))

    def of(self, kind: str) -> float:
        return float(getattr(self, kind))


@dataclass(frozen=True)
class SyntheticPreset:
    """The behaviour of one synthetic model: what it gets right first, what it breaks, what it repairs.

    ``first_pass``: expected first-attempt pass rate over HumanEval. ``faults``: how first failures split
    by kind. ``repair``: per-step repair probability per error kind with full feedback. ``regression``:
    probability that refining a correct program breaks it. ``new_fault_on_failed_repair``: share of failed
    repairs that return a different fault rather than the same code. ``analysis_accuracy``: probability that
    its analysis of its own fault names the right cause. ``analysis_boost``: repair-probability multiplier
    when the feedback carries an analysis that points at the fault (a third of the boost for one that
    does not). ``sharpness``: slope of the per-problem success curve at ``REFERENCE_TEMPERATURE``; larger
    means the same problems are solved run after run.
    """

    name: str
    stands_for: str
    first_pass: float
    faults: FaultWeights
    repair: RepairRates
    regression: float
    analysis_accuracy: float
    analysis_boost: float = 1.3
    new_fault_on_failed_repair: float = 0.4
    sharpness: float = 3.0

    def __post_init__(self) -> None:
        owner = f"preset {self.name!r}"
        for name in ("first_pass", "regression", "analysis_accuracy", "new_fault_on_failed_repair"):
            _check_probability(owner, name, getattr(self, name))
        if not 0.0 < self.first_pass < 1.0:
            raise ValueError(f"{owner}: first_pass must be strictly between 0 and 1, got {self.first_pass!r}")
        for name in ("analysis_boost", "sharpness"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{owner}: {name} must be a finite number > 0, got {v!r}")
        if not isinstance(self.faults, FaultWeights):
            raise ValueError(f"{owner}: faults must be a FaultWeights, got {type(self.faults).__name__}")
        if not isinstance(self.repair, RepairRates):
            raise ValueError(f"{owner}: repair must be a RepairRates, got {type(self.repair).__name__}")

    def digest(self) -> str:
        """A short hash of every parameter: part of the backend identity, so caches see any change."""
        return hashlib.sha256(repr(asdict(self)).encode()).hexdigest()[:12]


PRESET_OPTIONS: tuple[str, ...] = (
    "first_pass",
    "regression",
    "analysis_accuracy",
    "analysis_boost",
    "new_fault_on_failed_repair",
    "sharpness",
)

# Calibrated to "Feedback Over Form" (HumanEval, 5 runs per configuration). Per-step repair rates come
# from its forced-refinement trajectories (llama3.2:3b as refiner: NameError 12/23 and 6/9 fixed at the
# first step, AssertionError 7/63 and 6/70, SyntaxError 2 of 3 within three steps; qwen2.5-coder:3b
# refining itself: 1/5 NameError, 1/24 AssertionError) and regressions from its raw pass counts
# (28 of 69 and 21 of 76 correct programs broken by llama3.2:3b's first refinement, 11 of 132 by
# qwen2.5-coder:3b's). small-1.5b has no counterpart in the study and is extrapolated.
PRESETS: Mapping[str, SyntheticPreset] = {
    p.name: p
    for p in (
        SyntheticPreset(
            name="small-1.5b",
            stands_for="a general 1.5B chat model (e.g. qwen2.5:1.5b), extrapolated",
            first_pass=0.33,
            faults=FaultWeights(name=0.20, syntax=0.08, assertion=0.66, type=0.06),
            repair=RepairRates(name=0.45, syntax=0.30, assertion=0.05, type=0.25, other=0.20),
            regression=0.40,
            analysis_accuracy=0.30,
            analysis_boost=1.2,
        ),
        SyntheticPreset(
            name="coder-1.5b",
            stands_for="qwen2.5-coder:1.5b (the study's weak generator: 69/164 first pass)",
            first_pass=0.42,
            faults=FaultWeights(name=0.25, syntax=0.04, assertion=0.68, type=0.03),
            repair=RepairRates(name=0.50, syntax=0.30, assertion=0.07, type=0.30, other=0.25),
            regression=0.30,
            analysis_accuracy=0.35,
        ),
        SyntheticPreset(
            name="general-3b",
            stands_for="llama3.2:3b (solo 76.6/164; the study's refiner)",
            first_pass=0.467,
            faults=FaultWeights(name=0.12, syntax=0.03, assertion=0.80, type=0.05),
            repair=RepairRates(name=0.65, syntax=0.35, assertion=0.10, type=0.30, other=0.30),
            regression=0.35,
            analysis_accuracy=0.50,
        ),
        SyntheticPreset(
            name="coder-3b",
            stands_for="qwen2.5-coder:3b (solo 133.6/164; strong generator, modest refiner)",
            first_pass=0.815,
            faults=FaultWeights(name=0.15, syntax=0.02, assertion=0.80, type=0.03),
            repair=RepairRates(name=0.30, syntax=0.40, assertion=0.05, type=0.40, other=0.30),
            regression=0.08,
            analysis_accuracy=0.45,
        ),
    )
}


def preset_named(name: str, spec: object = None) -> SyntheticPreset:
    """The preset called ``name``; an unknown name is a :class:`SpecError` that lists the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError(
            spec if spec is not None else f"synthetic:{name}",
            "preset",
            f"unknown synthetic preset {name!r}; presets: {', '.join(PRESETS)}",
        ) from None


def repair_kind(error_type: str | None) -> str:
    """The repair kind (one of :data:`REPAIR_KINDS`) of an error type reported in feedback."""
    return REPAIR_KIND_OF.get(error_type or "", "other")
