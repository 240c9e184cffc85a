"""Evolution: fitness with a complexity penalty, the evaluator (repeats, reuse of earlier results,
racing, subsets per generation), neat-python's fitness function and champion validation.

>>> from neatpipe.evolution import Evaluator, Penalty, SubsetSchedule, neat_fitness_function
>>> evaluator = Evaluator(models, sandbox, penalty=Penalty(per_node=0.02), repeats=3)   # doctest: +SKIP
>>> evaluation = evaluator.evaluate(genome, problems)                                   # doctest: +SKIP
>>> population.run(neat_fitness_function(evaluator, SubsetSchedule(problems, 40, rotate=True)), 10)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports
from neatpipe.seeds import derive_seed

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.bench.subsets import SubsetSchedule
    from neatpipe.evolution.evaluator import FEEDBACK_POLICIES, Evaluator, repeat_seeds, validate_champions
    from neatpipe.evolution.fitness import (
        BOUNDS,
        EVALUATION_FORMAT,
        NO_PENALTY,
        PENALTY_KINDS,
        STUDY_PENALTY,
        Evaluation,
        Penalty,
        fitness_of,
        hoeffding_interval,
        mean_sd,
        wilson_interval,
    )
    from neatpipe.evolution.neat_fitness import GenerationRecord, NeatFitness, neat_fitness_function
    from neatpipe.evolution.racing import RaceRound, Racing
    from neatpipe.evolution.run import Budgets, EvolutionRun, SetupError, evolve, run_evolution
    from neatpipe.evolution.store import (
        ProblemResult,
        ResultStore,
        SearchRecord,
        problem_digest,
        result_from_trajectory,
        result_key,
    )
    from neatpipe.evolution.validation import ValidationResult

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SubsetSchedule": ("neatpipe.bench.subsets", "SubsetSchedule"),
        "FEEDBACK_POLICIES": ("neatpipe.evolution.evaluator", "FEEDBACK_POLICIES"),
        "Evaluator": ("neatpipe.evolution.evaluator", "Evaluator"),
        "repeat_seeds": ("neatpipe.evolution.evaluator", "repeat_seeds"),
        "validate_champions": ("neatpipe.evolution.evaluator", "validate_champions"),
        "BOUNDS": ("neatpipe.evolution.fitness", "BOUNDS"),
        "EVALUATION_FORMAT": ("neatpipe.evolution.fitness", "EVALUATION_FORMAT"),
        "NO_PENALTY": ("neatpipe.evolution.fitness", "NO_PENALTY"),
        "PENALTY_KINDS": ("neatpipe.evolution.fitness", "PENALTY_KINDS"),
        "STUDY_PENALTY": ("neatpipe.evolution.fitness", "STUDY_PENALTY"),
        "Evaluation": ("neatpipe.evolution.fitness", "Evaluation"),
        "Penalty": ("neatpipe.evolution.fitness", "Penalty"),
        "fitness_of": ("neatpipe.evolution.fitness", "fitness_of"),
        "hoeffding_interval": ("neatpipe.evolution.fitness", "hoeffding_interval"),
        "mean_sd": ("neatpipe.evolution.fitness", "mean_sd"),
        "wilson_interval": ("neatpipe.evolution.fitness", "wilson_interval"),
        "GenerationRecord": ("neatpipe.evolution.neat_fitness", "GenerationRecord"),
        "NeatFitness": ("neatpipe.evolution.neat_fitness", "NeatFitness"),
        "neat_fitness_function": ("neatpipe.evolution.neat_fitness", "neat_fitness_function"),
        "RaceRound": ("neatpipe.evolution.racing", "RaceRound"),
        "Racing": ("neatpipe.evolution.racing", "Racing"),
        "Budgets": ("neatpipe.evolution.run", "Budgets"),
        "EvolutionRun": ("neatpipe.evolution.run", "EvolutionRun"),
        "SetupError": ("neatpipe.evolution.run", "SetupError"),
        "evolve": ("neatpipe.evolution.run", "evolve"),
        "run_evolution": ("neatpipe.evolution.run", "run_evolution"),
        "ProblemResult": ("neatpipe.evolution.store", "ProblemResult"),
        "ResultStore": ("neatpipe.evolution.store", "ResultStore"),
        "SearchRecord": ("neatpipe.evolution.store", "SearchRecord"),
        "problem_digest": ("neatpipe.evolution.store", "problem_digest"),
        "result_from_trajectory": ("neatpipe.evolution.store", "result_from_trajectory"),
        "result_key": ("neatpipe.evolution.store", "result_key"),
        "ValidationResult": ("neatpipe.evolution.validation", "ValidationResult"),
    },
    globals(),
)


__all__ = [
    "BOUNDS",
    "Budgets",
    "EvolutionRun",
    "SetupError",
    "evolve",
    "run_evolution",
    "EVALUATION_FORMAT",
    "FEEDBACK_POLICIES",
    "NO_PENALTY",
    "PENALTY_KINDS",
    "STUDY_PENALTY",
    "Evaluation",
    "Evaluator",
    "GenerationRecord",
    "NeatFitness",
    "Penalty",
    "ProblemResult",
    "RaceRound",
    "Racing",
    "ResultStore",
    "SearchRecord",
    "SubsetSchedule",
    "ValidationResult",
    "derive_seed",
    "fitness_of",
    "hoeffding_interval",
    "mean_sd",
    "neat_fitness_function",
    "problem_digest",
    "repeat_seeds",
    "result_from_trajectory",
    "result_key",
    "validate_champions",
    "wilson_interval",
]
