"""neat-python's fitness function: ``population.run(fitness, n)`` calls ``fitness(genomes, config)``
once per generation; :class:`NeatFitness` scores the generation through the evaluator on the
generation's problems and records what it did."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.bench.subsets import SubsetSchedule
from neatpipe.evolution.evaluator import Evaluator
from neatpipe.evolution.fitness import Evaluation
from neatpipe.evolution.racing import RaceRound, Racing


@dataclass
class GenerationRecord:
    """What one call of the neat fitness function did."""

    generation: int
    problems: tuple[str, ...]
    genomes: int
    distinct: int
    problem_runs: int
    problem_reuses: int
    best_key: Any
    best_fitness: float
    race: list[RaceRound] = field(default_factory=list)


class NeatFitness:
    """neat-python 2.0's fitness function: ``population.run(fitness, n)`` calls
    ``fitness(genomes, config)`` with a list of ``(genome_id, genome)`` pairs once per generation;
    this sets each ``genome.fitness``. ``evaluations`` holds the last generation's evaluations by
    genome id and ``history`` one ``GenerationRecord`` per generation."""

    def __init__(
        self,
        evaluator: Evaluator,
        problems: SubsetSchedule | ProblemSet | Sequence[Problem] | Callable[[int], Sequence[Problem]],
        *,
        repeats: int | None = None,
        racing: Racing | None = None,
        start_generation: int = 0,
        progress: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.schedule = problems
        self.repeats = repeats
        self.racing = racing
        self.generation = start_generation
        self.progress = progress  # progress(generation, done, total) per distinct genome scored
        self.evaluations: dict[Any, Evaluation] = {}
        self.history: list[GenerationRecord] = []

    def problems_for(self, generation: int) -> ProblemSet | Sequence[Problem]:
        """The generation's problems: from a ``SubsetSchedule``, a function of the generation, or fixed."""
        if isinstance(self.schedule, SubsetSchedule):
            return self.schedule.for_generation(generation)
        if callable(self.schedule):
            return self.schedule(generation)
        return self.schedule

    def __call__(self, genomes: list[tuple[Any, Any]], config: Any) -> None:
        problems = self.problems_for(self.generation)
        runs, reuses = self.evaluator.problem_runs, self.evaluator.problem_reuses
        generation, progress = self.generation, self.progress
        evaluations = self.evaluator.evaluate_population(
            genomes,
            problems,
            self.repeats,
            racing=self.racing,
            progress=None if progress is None else lambda done, total: progress(generation, done, total),
        )
        for key, genome in genomes:
            genome.fitness = float(evaluations[key].fitness)
        best_key = max(evaluations, key=lambda k: evaluations[k].fitness)
        record = GenerationRecord(
            generation=self.generation,
            problems=tuple(p.task_id for p in problems),
            genomes=len(genomes),
            distinct=len({e.genome for e in evaluations.values()}),
            problem_runs=self.evaluator.problem_runs - runs,
            problem_reuses=self.evaluator.problem_reuses - reuses,
            best_key=best_key,
            best_fitness=evaluations[best_key].fitness,
            race=list(self.evaluator.last_race) if self.racing else [],
        )
        self.evaluations = evaluations
        self.history.append(record)
        self.generation += 1


#: The callable to hand to ``neat.Population.run(fitness_function, n)`` (the class itself).
neat_fitness_function = NeatFitness
