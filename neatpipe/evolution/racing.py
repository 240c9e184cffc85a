"""Racing: score everyone on a first slice of the problems, then extend only the genomes that could
still be among the best (the rounds' plan and record; the evaluator runs them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from neatpipe.evolution.fitness import BOUNDS


@dataclass(frozen=True)
class Racing:
    """Score everyone on a first slice of the problems, then extend only the genomes that could
    still be among the ``top_k`` best.

    After each round, a genome's fitness interval is the confidence interval of its pass rate
    (``bound``: ``wilson`` or ``hoeffding``, over problems x repeats) minus its penalty. The
    threshold is the ``top_k``-th largest lower bound; a genome whose upper bound is below it is
    dropped and keeps the evaluation it has. Survivors get ``growth`` times more problems next
    round, until the whole set is used. The genome with the highest current fitness is never
    dropped: its upper bound is at least its mean, which is at least everyone's lower bound.
    ``margin`` (optional) also keeps every genome whose current fitness is within ``margin`` of
    the best current fitness, whatever the bounds say.
    """

    first: int = 10
    growth: float = 2.0
    confidence: float = 0.95
    bound: str = "wilson"
    top_k: int = 1
    shuffle: bool = True  # race on a seeded shuffle of the problems, so slices are not benchmark order
    margin: float | None = None

    def __post_init__(self) -> None:
        if self.first < 1:
            raise ValueError(f"racing: first slice must hold at least one problem, got {self.first}")
        if self.growth <= 1:
            raise ValueError(f"racing: growth must be above 1, got {self.growth}")
        if self.bound not in BOUNDS:
            raise ValueError(f"racing: unknown bound {self.bound!r}; choose one of {', '.join(BOUNDS)}")
        if self.top_k < 1:
            raise ValueError(f"racing: top_k must be at least 1, got {self.top_k}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"racing: confidence must be between 0 and 1, got {self.confidence}")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"racing: margin must not be negative, got {self.margin}")

    def sizes(self, total: int) -> list[int]:
        """Slice sizes round by round for ``total`` problems."""
        out = [min(self.first, total)]
        while out[-1] < total:
            out.append(min(total, max(out[-1] + 1, math.ceil(out[-1] * self.growth))))
        return out


@dataclass(frozen=True)
class RaceRound:
    """One round of a race: the slice size, how many genomes (distinct pipelines) it scored, and
    which were dropped after it, with the threshold they missed."""

    problems: int
    scored: int
    dropped: tuple[str, ...]
    threshold: float | None
