"""How likely a synthetic model is to solve a problem: per-problem difficulty and the preset's skill.

A preset promises a first-attempt pass rate over HumanEval (``first_pass``); this module turns that promise
into a probability per problem. Each problem gets a difficulty on the logit scale (a hash of its task id,
the same for every preset), each preset a skill, and the success probability is a logistic curve of
their difference whose slope depends on the temperature. The skill is solved for (bisection over the 164
HumanEval difficulties) so that the promise holds exactly in expectation, and because the difficulty does
not depend on the preset, a stronger preset solves a superset of what a weaker one solves. Repairs reuse
the same curve: a model fixes what it understands.
"""

from __future__ import annotations

import math
from functools import lru_cache

from neatpipe.bench.humaneval import load_humaneval
from neatpipe.bench.problem import Problem
from neatpipe.synthetic.draws import uniform
from neatpipe.synthetic.presets import FIXABILITY_SKEW, REFERENCE_TEMPERATURE, SyntheticPreset


def sigmoid(x: float) -> float:
    """The logistic function, without overflow for large negative ``x``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def difficulty(problem: Problem) -> float:
    """The problem's difficulty on the logit scale: logit of a uniform hash of benchmark and task id.

    It is the same for every preset, so presets disagree only on how far their skill reaches.
    """
    h = uniform("difficulty", problem.benchmark, problem.task_id)
    return math.log(h / (1.0 - h))


@lru_cache(maxsize=1)
def _calibration_difficulties() -> tuple[float, ...]:
    """The difficulties of HumanEval's problems: the set every preset's ``first_pass`` refers to."""
    return tuple(difficulty(p) for p in load_humaneval())


@lru_cache(maxsize=256)
def skill(first_pass: float, slope: float) -> float:
    """The skill at which the mean success probability over HumanEval is ``first_pass`` (bisection)."""
    zs = _calibration_difficulties()
    lo, hi = -40.0, 40.0
    for _ in range(80):
        mid = (lo + hi) / 2
        mean = sum(sigmoid(slope * (mid - z)) for z in zs) / len(zs)
        lo, hi = (mid, hi) if mean < first_pass else (lo, mid)
    return (lo + hi) / 2


def _slope(preset: SyntheticPreset, temperature: float) -> float:
    """Sharper at low temperature (the same problems every time), flatter when sampling hot."""
    return preset.sharpness * (1.0 + REFERENCE_TEMPERATURE) / (1.0 + temperature)


def first_pass_probability(preset: SyntheticPreset, problem: Problem, temperature: float = 0.0) -> float:
    """Probability that ``preset``'s first attempt at ``problem`` is the correct solution."""
    return success_probability(preset, problem, _slope(preset, temperature))


def success_probability(preset: SyntheticPreset, problem: Problem, slope: float) -> float:
    """The point of ``preset``'s success curve of slope ``slope`` at ``problem``'s difficulty."""
    return sigmoid(slope * (skill(preset.first_pass, slope) - difficulty(problem)))


@lru_cache(maxsize=256)
def failure_mean_skill(first_pass: float, sharpness: float) -> float:
    """Mean success probability over the HumanEval problems a model fails: E[q(1-q)] / E[1-q].

    The repair rates are averages over real failures, so a repair's difficulty factor is the model's
    success probability on the problem divided by this mean (1 on average over its own failures).
    """
    level = skill(first_pass, sharpness)
    qs = [sigmoid(sharpness * (level - z)) for z in _calibration_difficulties()]
    return sum(q * (1 - q) for q in qs) / sum(1 - q for q in qs)


def relative_understanding(preset: SyntheticPreset, problem: Problem) -> float:
    """How well ``preset`` understands ``problem`` compared with an average problem it fails (mean 1 over
    its failures): the factor by which a repair that depends on the problem is more or less likely."""
    q = success_probability(preset, problem, preset.sharpness)
    return q / failure_mean_skill(preset.first_pass, preset.sharpness)


def fixability(problem: Problem) -> float:
    """A second, preset-independent trait: some problems' bugs are easy to fix once seen, most are not.

    ``(k + 1) * h**k`` for a uniform hash ``h`` and ``k = FIXABILITY_SKEW``: mean 1, small for most
    problems, so fixes concentrate on the same problems run after run.
    """
    return (FIXABILITY_SKEW + 1) * uniform(
        "fixability", problem.benchmark, problem.task_id
    ) ** FIXABILITY_SKEW
