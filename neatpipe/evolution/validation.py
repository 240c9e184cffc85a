"""Champion validation: a genome's search score next to its score on held-out problems with repeats,
and the inflation between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neatpipe.evolution.fitness import Evaluation


@dataclass(frozen=True)
class ValidationResult:
    """A champion's search score next to its score on held-out problems with n repeats.

    ``inflation`` is the search pass rate minus the validated mean pass rate when the search
    evaluation is known (``inflation_basis == "pass_rate"``), else the search fitness minus the
    validated fitness (``"fitness"``; the same number under a node or call penalty, which does not
    depend on the problems)."""

    key: Any
    genome: str
    label: str
    search_fitness: float
    search_pass_rate: float | None
    search_rests_on: int | None
    validated: Evaluation

    @property
    def validated_mean(self) -> float:
        return self.validated.mean

    @property
    def validated_sd(self) -> float | None:
        return self.validated.sd

    @property
    def validated_fitness(self) -> float:
        return self.validated.fitness

    @property
    def inflation_basis(self) -> str:
        return "pass_rate" if self.search_pass_rate is not None else "fitness"

    @property
    def inflation(self) -> float:
        if self.search_pass_rate is not None:
            return self.search_pass_rate - self.validated.mean
        return self.search_fitness - self.validated.fitness

    def summary(self) -> str:
        sd = f" +/- {self.validated_sd:.3f}" if self.validated_sd is not None else ""
        search = self.search_pass_rate if self.search_pass_rate is not None else self.search_fitness
        return (
            f"{self.label}: search {self.inflation_basis.replace('_', ' ')} {search:.3f}, held-out"
            f" {self.validated_mean:.3f}{sd} ({len(self.validated.problems)} problems x"
            f" {self.validated.repeats}), inflation {self.inflation:+.3f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "genome": self.genome,
            "label": self.label,
            "search_fitness": self.search_fitness,
            "search_pass_rate": self.search_pass_rate,
            "search_rests_on": self.search_rests_on,
            "validated_mean": self.validated_mean,
            "validated_sd": self.validated_sd,
            "validated_fitness": self.validated_fitness,
            "inflation": self.inflation,
            "inflation_basis": self.inflation_basis,
            "validated": self.validated.to_dict(),
        }
