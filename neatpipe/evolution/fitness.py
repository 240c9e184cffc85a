"""Fitness: a pass rate minus a complexity penalty, the record of one evaluation, and the
confidence bounds that racing uses.

Fitness is kept in pass-rate units: ``pass_rate`` (0..1) minus ``Penalty.value(...)``, never a
sentinel such as ``-inf`` or ``-1e9``. neat-python 2.0's ``DefaultReproduction`` gives each species
an adjusted fitness ``(species mean - population min) / max(1, population max - population min)``
and offspring in proportion to it, so only differences between fitness values matter: negative
values are fine, a common scale factor changes nothing, and one far outlier would squeeze every
other species onto the same adjusted fitness. A bounded fitness (the penalty is capped) keeps the
species apart. See docs/fitness.md.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from neatpipe.vocab import PENALTY_KINDS

#: Format tag of an ``Evaluation`` written as JSON.
EVALUATION_FORMAT = "neatpipe-evaluation/1"

#: The weight field each kind of :data:`neatpipe.vocab.PENALTY_KINDS` sets (``node`` is short for
#: ``per-node``, and so on).
_KIND_FIELDS = dict(
    zip(PENALTY_KINDS, (None, "per_node", "per_model_node", "per_call", "per_1k_tokens"), strict=True)
)


@dataclass(frozen=True)
class Penalty:
    """What a genome's fitness loses for its size or cost; the weights add up.

    ``per_node``: per node of the genome (the reference study used 0.02).
    ``per_model_node``: per model-calling node (generators, analyzers, refiners).
    ``per_call``: per model call a problem may need in the worst case (``Complexity.model_calls``:
    every generator once, every refine stage all its iterations, analyzer calls included).
    ``per_1k_tokens``: per 1000 tokens (prompt + completion) the pipeline spent per problem, on
    average over the problem evaluations the score rests on.
    ``cap``: the most a penalty may take away, so fitness stays within ``[-cap, 1]``.
    """

    per_node: float = 0.0
    per_model_node: float = 0.0
    per_call: float = 0.0
    per_1k_tokens: float = 0.0
    cap: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"penalty {f.name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"penalty {f.name} must not be negative, got {value!r}")

    @classmethod
    def of(cls, kind: str, weight: float = 0.02, cap: float = 1.0) -> Penalty:
        """One kind of :data:`neatpipe.vocab.PENALTY_KINDS` (``none``, ``per-node``, ``per-model-node``,
        ``per-call``, ``per-token``; without ``per-`` too) with one weight."""
        canonical = kind if kind == "none" or kind.startswith("per-") else f"per-{kind}"
        if canonical not in _KIND_FIELDS:
            raise ValueError(f"unknown penalty kind {kind!r}; choose one of {', '.join(PENALTY_KINDS)}")
        name = _KIND_FIELDS[canonical]
        return cls(cap=cap) if name is None else cls(**{name: weight}, cap=cap)

    @classmethod
    def parse(cls, text: str) -> Penalty:
        """``"node:0.02"``, ``"call:0.01"``, ``"token:0.005"``, ``"none"``, or several joined by
        ``+`` (``"node:0.02+token:0.001"``)."""
        total: dict[str, float] = {}
        for part in text.replace(" ", "").split("+"):
            kind, _, weight = part.partition(":")
            if kind == "none" and not weight:
                continue
            try:
                value = float(weight)
            except ValueError:
                raise ValueError(f"penalty {part!r}: expected KIND:WEIGHT, e.g. node:0.02") from None
            one = cls.of(kind, value)
            for f in ("per_node", "per_model_node", "per_call", "per_1k_tokens"):
                total[f] = total.get(f, 0.0) + getattr(one, f)
        return cls(**total)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Penalty:
        return cls(**{f.name: float(data[f.name]) for f in fields(cls) if f.name in data})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def uses_tokens(self) -> bool:
        return self.per_1k_tokens > 0

    def value(self, genome: Any, tokens_per_problem: float = 0.0) -> float:
        """The penalty of ``genome`` (anything with ``complexity()``), given its mean tokens per problem."""
        structural = genome.complexity().penalty(
            per_node=self.per_node, per_model_node=self.per_model_node, per_model_call=self.per_call
        )
        return min(self.cap, structural + self.per_1k_tokens * tokens_per_problem / 1000.0)

    def describe(self) -> str:
        parts = [
            f"{w:g}/{unit}"
            for w, unit in (
                (self.per_node, "node"),
                (self.per_model_node, "model node"),
                (self.per_call, "model call"),
                (self.per_1k_tokens, "1k tokens per problem"),
            )
            if w
        ]
        return " + ".join(parts) if parts else "none"


#: The reference study's penalty: 0.02 per node.
STUDY_PENALTY = Penalty(per_node=0.02)
NO_PENALTY = Penalty()


def fitness_of(pass_rate: float, penalty: float) -> float:
    """Fitness = pass rate minus penalty (both finite; the result lies in ``[-cap, 1]``)."""
    if not (math.isfinite(pass_rate) and math.isfinite(penalty)):
        raise ValueError(f"fitness needs finite numbers, got pass rate {pass_rate!r}, penalty {penalty!r}")
    return pass_rate - penalty


# -- statistics -------------------------------------------------------------------------------


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); the SD is ``None`` below two values."""
    if not values:
        raise ValueError("mean of no values")
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return statistics.NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a pass rate from ``successes`` out of ``n`` (``(0, 1)`` when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return lo, hi


def hoeffding_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Hoeffding's two-sided interval: ``p +/- sqrt(ln(2 / delta) / (2 n))``, ``delta = 1 - confidence``."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    p = successes / n
    half = math.sqrt(math.log(2 / (1 - confidence)) / (2 * n))
    return max(0.0, p - half), min(1.0, p + half)


BOUNDS = {"wilson": wilson_interval, "hoeffding": hoeffding_interval}


# -- the record of one evaluation ---------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """A genome's score on a set of problems with k repeats, and everything it rests on.

    ``pass_rates`` has one pass rate per repeat (hidden tests, pass@1 of the final candidate);
    ``mean`` and ``sd`` (sample SD, ``None`` with one repeat) summarise them. ``per_problem`` counts,
    per task id, the repeats whose final candidate passed. Tokens, model calls and cache hits are
    the totals over the problem evaluations the score rests on, whether they were run now or reused;
    ``new_evaluations`` says how many were run for this evaluation and ``wall_s`` how long those runs
    took (runs made in one stream overlap: each stream counts until the genome's last run in it ended). ``rests_on`` = problems x repeats. ``feedback`` is the feedback policy the runs used
    (visible, hidden, or genome: each executor's own setting); ``synthetic`` is true when a synthetic
    model produced any of it. ``error`` is set when the genome could not be run (fitness is then
    the pass rate 0 minus the penalty).
    """

    genome: str  # behaviour hash
    label: str
    benchmark: str
    problems: tuple[str, ...]
    repeats: int
    seeds: tuple[int, ...]
    pass_rates: tuple[float, ...]
    mean: float
    sd: float | None
    per_problem: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    model_calls: int
    cache_hits: int
    wall_s: float
    feedback: str
    synthetic: bool
    penalty: float
    fitness: float
    rests_on: int
    new_evaluations: int = 0
    penalty_spec: dict[str, float] = field(default_factory=dict)
    racing_rounds: int = 0  # rounds of a race this genome took part in (0: no racing)
    error: str | None = None

    @property
    def passed(self) -> int:
        """Problem evaluations that passed (sum over problems and repeats)."""
        return sum(self.per_problem.values())

    @property
    def reused(self) -> int:
        return self.rests_on - self.new_evaluations

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def tokens_per_problem(self) -> float:
        return self.tokens / self.rests_on if self.rests_on else 0.0

    def interval(self, confidence: float = 0.95, bound: str = "wilson") -> tuple[float, float]:
        """A confidence interval of the pass rate over the ``rests_on`` problem evaluations."""
        return BOUNDS[bound](self.passed, self.rests_on, confidence)

    def summary(self) -> str:
        spread = f" +/- {self.sd:.3f}" if self.sd is not None else ""
        tag = " [synthetic]" if self.synthetic else ""
        return (
            f"{self.label}: pass@1 {self.mean:.3f}{spread} on {len(self.problems)} {self.benchmark} problems"
            f" x {self.repeats} repeat(s) ({self.feedback} feedback){tag}; fitness {self.fitness:.4f}"
            f" (penalty {self.penalty:.4f})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = list(self.problems)
        data["seeds"] = list(self.seeds)
        data["pass_rates"] = list(self.pass_rates)
        return {"format": EVALUATION_FORMAT, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        fmt = data.get("format", EVALUATION_FORMAT)
        if fmt != EVALUATION_FORMAT:
            raise ValueError(f"not an evaluation record: format {fmt!r} (expected {EVALUATION_FORMAT!r})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"format"})
        if unknown:
            raise ValueError(f"evaluation record has unknown field(s): {', '.join(unknown)}")
        values = {k: v for k, v in data.items() if k in known}
        for name in ("problems", "seeds", "pass_rates"):
            values[name] = tuple(values[name])
        values["per_problem"] = {str(k): int(v) for k, v in values["per_problem"].items()}
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Evaluation:
        return cls.from_dict(json.loads(text))
