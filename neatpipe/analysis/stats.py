"""Statistics over repeated runs: mean and SD, separation in SD, Welch's and the paired t-test, Holm's
correction for multiple comparisons, bootstrap CIs.

Pure Python (``math`` and ``random`` only): the Student-t distribution is computed from the
regularized incomplete beta function, so no SciPy is needed.

The reference study ("Feedback Over Form") reports the *separation* between two configurations
as the difference of their 5-run means divided by ``sqrt(sd1**2 + sd2**2)``; one row of its
Table 2 (HumanEval, llama self-refine vs llama solo, 4.7 sigma) divides by the baseline's SD
alone instead. :func:`separation` computes both (``sd="both"`` and ``sd="b"``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Summary",
    "WelchResult",
    "PairedResult",
    "BootstrapCI",
    "PairedBootstrap",
    "mean",
    "sample_sd",
    "summarize",
    "separation",
    "welch_t_test",
    "paired_t_test",
    "holm_adjust",
    "student_t_cdf",
    "regularized_incomplete_beta",
    "bootstrap_pass_at_1",
    "DifferenceCI",
    "bootstrap_paired_difference",
]


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; raises ``ValueError`` on an empty sequence."""
    if len(values) == 0:
        raise ValueError("mean of an empty sequence")
    return math.fsum(values) / len(values)


def sample_sd(values: Sequence[float]) -> float:
    """Sample standard deviation (divides by n - 1); 0.0 for a single value."""
    n = len(values)
    if n == 0:
        raise ValueError("standard deviation of an empty sequence")
    if n == 1:
        return 0.0
    m = mean(values)
    return math.sqrt(math.fsum((x - m) ** 2 for x in values) / (n - 1))


@dataclass(frozen=True)
class Summary:
    """Mean and sample SD of n values (e.g. pass counts of n runs)."""

    n: int
    mean: float
    sd: float

    def format(self, digits: int = 1) -> str:
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def summarize(values: Sequence[float]) -> Summary:
    return Summary(n=len(values), mean=mean(values), sd=sample_sd(values))


def separation(a: Sequence[float], b: Sequence[float], *, sd: str = "both") -> float:
    """Separation of ``mean(a) - mean(b)`` in standard deviations.

    ``sd="both"`` (the study's formula): divide by ``sqrt(sd_a**2 + sd_b**2)``.
    ``sd="b"``: divide by the SD of ``b`` alone (the baseline; the study's HumanEval
    self-refine-vs-solo row). ``sd="a"``: by the SD of ``a`` alone.
    A zero denominator gives ``inf`` (or ``nan`` when the means are also equal).
    """
    diff = mean(a) - mean(b)
    if sd == "both":
        denom = math.hypot(sample_sd(a), sample_sd(b))
    elif sd == "a":
        denom = sample_sd(a)
    elif sd == "b":
        denom = sample_sd(b)
    else:
        raise ValueError(f"sd must be 'both', 'a' or 'b', not {sd!r}")
    if denom == 0.0:
        return math.nan if diff == 0.0 else math.copysign(math.inf, diff)
    return diff / denom


# --------------------------------------------------------------------------- Student t


def _betacf(x: float, a: float, b: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) for ``0 <= x <= 1``, ``a, b > 0`` (continued fraction, ~1e-14 accuracy)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1], not {x}")
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be positive")
    if x == 0.0 or x == 1.0:
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(x, a, b) / a
    return 1.0 - front * _betacf(1.0 - x, b, a) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df > 0`` degrees of freedom (``df`` may be fractional)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
    return 1.0 - tail if t > 0 else tail


@dataclass(frozen=True)
class WelchResult:
    """Welch's unequal-variance t-test of ``mean(a) - mean(b)``: t, degrees of freedom, two-sided p."""

    t: float
    df: float
    p: float
    diff: float


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Welch's t-test (two-sided). Needs at least two values on each side.

    t = (mean_a - mean_b) / sqrt(va/na + vb/nb); df by Welch-Satterthwaite. When both samples
    have zero variance: t = 0, p = 1 if the means are equal, else t = +-inf, p = 0, and df is
    ``na + nb - 2``.
    """
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError("Welch's t-test needs at least two values in each sample")
    diff = mean(a) - mean(b)
    qa, qb = sample_sd(a) ** 2 / na, sample_sd(b) ** 2 / nb
    se2 = qa + qb
    if se2 == 0.0:
        if diff == 0.0:
            return WelchResult(t=0.0, df=float(na + nb - 2), p=1.0, diff=0.0)
        return WelchResult(t=math.copysign(math.inf, diff), df=float(na + nb - 2), p=0.0, diff=diff)
    t = diff / math.sqrt(se2)
    df = se2**2 / (qa**2 / (na - 1) + qb**2 / (nb - 1))
    p = regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)  # = 2 * P(T > |t|)
    return WelchResult(t=t, df=df, p=min(1.0, p), diff=diff)


@dataclass(frozen=True)
class PairedResult:
    """The paired t-test of ``mean(a - b)`` over ``n`` pairs: t, degrees of freedom, two-sided p."""

    t: float
    df: float
    p: float
    diff: float
    n: int


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedResult:
    """The paired t-test (two-sided) of ``a[i] - b[i]``: the pairs share what makes their values vary
    (the same problem), so only the differences count. Needs at least two pairs.

    t = mean(d) / (sd(d) / sqrt(n)), df = n - 1. When every difference is the same: t = 0, p = 1 if
    it is zero, else t = +-inf, p = 0.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length ({len(a)} vs {len(b)})")
    n = len(a)
    if n < 2:
        raise ValueError("the paired t-test needs at least two pairs")
    d = [x - y for x, y in zip(a, b, strict=True)]
    diff, sd = mean(d), sample_sd(d)
    df = float(n - 1)
    if sd == 0.0:
        if diff == 0.0:
            return PairedResult(t=0.0, df=df, p=1.0, diff=0.0, n=n)
        return PairedResult(t=math.copysign(math.inf, diff), df=df, p=0.0, diff=diff, n=n)
    t = diff / (sd / math.sqrt(n))
    p = regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)  # = 2 * P(T > |t|)
    return PairedResult(t=t, df=df, p=min(1.0, p), diff=diff, n=n)


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: rejecting where the adjusted value is
    below alpha keeps the chance of any false rejection among all the tests at most alpha.

    The i-th smallest p (from 1) is multiplied by ``m - i + 1``, capped at 1, and made monotone
    (never below the adjusted value of a smaller p).
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile-bootstrap confidence interval for pass@1 (a fraction in [0, 1])."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_boot: int
    n_problems: int
    n_runs: int
    seed: int

    def format(self, digits: int = 1) -> str:
        pct = round(self.confidence * 100)
        return (
            f"{100 * self.estimate:.{digits}f}% "
            f"[{pct}% CI {100 * self.low:.{digits}f}-{100 * self.high:.{digits}f}]"
        )


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (``q`` in [0, 1]) of an already sorted list."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1.0 - frac) + sorted_values[hi] * frac


def bootstrap_pass_at_1(
    outcomes: Sequence[bool] | Sequence[Sequence[bool]],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Percentile-bootstrap CI for pass@1.

    ``outcomes`` is one run (a sequence of per-problem booleans) or several runs (a sequence of
    equally long sequences, problem ``j`` at the same position in every run). Each bootstrap
    replicate resamples problems with replacement and, when there are several runs, also resamples
    runs with replacement (a two-level bootstrap), then takes the mean pass rate over the chosen
    runs and problems. The interval is the (1-c)/2 and (1+c)/2 percentiles of the replicates.
    Deterministic for a given ``seed``.
    """
    if len(outcomes) == 0:
        raise ValueError("no outcomes to bootstrap")
    if isinstance(outcomes[0], (bool, int)):
        runs = [[int(bool(x)) for x in outcomes]]  # type: ignore[arg-type]
    else:
        runs = [[int(bool(x)) for x in run] for run in outcomes]  # type: ignore[union-attr]
    n_problems = len(runs[0])
    if n_problems == 0 or any(len(r) != n_problems for r in runs):
        raise ValueError("every run must hold the same, non-zero number of problems")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    if n_boot < 1:
        raise ValueError("n_boot must be positive")
    n_runs = len(runs)
    rng = random.Random(seed)
    estimate = sum(map(sum, runs)) / (n_runs * n_problems)
    reps: list[float] = []
    for _ in range(n_boot):
        idx = [rng.randrange(n_problems) for _ in range(n_problems)]
        chosen = runs if n_runs == 1 else [runs[rng.randrange(n_runs)] for _ in range(n_runs)]
        total = 0
        for row in chosen:
            total += sum([row[i] for i in idx])
        reps.append(total / (n_runs * n_problems))
    reps.sort()
    alpha = (1.0 - confidence) / 2.0
    return BootstrapCI(
        estimate=estimate,
        low=_percentile(reps, alpha),
        high=_percentile(reps, 1.0 - alpha),
        confidence=confidence,
        n_boot=n_boot,
        n_problems=n_problems,
        n_runs=n_runs,
        seed=seed,
    )


class PairedBootstrap:
    """One set of bootstrap resamples of ``n`` paired items (problems), shared by every sample scored on
    those items, so the replicate means of two samples subtract into a paired bootstrap of their
    difference (the mean is linear): many pairs cost one pass over each sample, not one per pair.
    Deterministic for a given ``seed``.
    """

    def __init__(self, n: int, *, n_boot: int = 2000, seed: int = 0) -> None:
        if n < 1:
            raise ValueError("nothing to resample")
        if n_boot < 1:
            raise ValueError("n_boot must be positive")
        rng = random.Random(seed)
        self.n, self.n_boot, self.seed = n, n_boot, seed
        self._resamples = [rng.choices(range(n), k=n) for _ in range(n_boot)]

    def replicate_means(self, values: Sequence[float]) -> list[float]:
        """The mean of ``values`` (one per item, in the items' order) in every resample."""
        if len(values) != self.n:
            raise ValueError(f"expected {self.n} values, got {len(values)}")
        get = values.__getitem__
        return [math.fsum(map(get, idx)) / self.n for idx in self._resamples]

    @staticmethod
    def interval(replicates: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
        """The percentile interval of ``replicates`` (e.g. differences of two samples' replicate means)."""
        if not 0.0 < confidence < 1.0:
            raise ValueError("confidence must lie strictly between 0 and 1")
        ordered = sorted(replicates)
        alpha = (1.0 - confidence) / 2.0
        return _percentile(ordered, alpha), _percentile(ordered, 1.0 - alpha)


@dataclass(frozen=True)
class DifferenceCI:
    """A percentile-bootstrap confidence interval for the mean of paired differences (a - b)."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_boot: int
    n_pairs: int
    seed: int

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly on one side of 0: the difference is distinguishable from
        the noise the resampling models."""
        return self.low > 0.0 or self.high < 0.0


def bootstrap_paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DifferenceCI:
    """Percentile-bootstrap CI of ``mean(a) - mean(b)`` for paired values (``a[i]`` and ``b[i]`` measured
    on the same problem, e.g. each problem's pass rate over the repeats). Each replicate resamples the
    pairs with replacement, so the interval reflects how much the difference depends on which problems
    were drawn; pairing removes the problems' shared difficulty from the noise. Deterministic for a
    given ``seed``."""
    if len(a) != len(b):
        raise ValueError(f"paired values must have equal length, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("no pairs to bootstrap")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    boot = PairedBootstrap(len(a), n_boot=n_boot, seed=seed)
    reps = [x - y for x, y in zip(boot.replicate_means(a), boot.replicate_means(b), strict=True)]
    low, high = boot.interval(reps, confidence)
    return DifferenceCI(
        estimate=math.fsum(float(x) - float(y) for x, y in zip(a, b, strict=True)) / len(a),
        low=low,
        high=high,
        confidence=confidence,
        n_boot=n_boot,
        n_pairs=len(a),
        seed=seed,
    )
