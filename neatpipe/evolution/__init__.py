"""Evolution: fitness with a complexity penalty, the evaluator (repeats, reuse of earlier results,
racing, subsets per generation), neat-python's fitness function and champion validation.

>>> from neatpipe.evolution import Evaluator, Penalty, SubsetSchedule, neat_fitness_function
>>> evaluator = Evaluator(models, sandbox, penalty=Penalty(per_node=0.02), repeats=3)   # doctest: +SKIP
>>> evaluation = evaluator.evaluate(genome, problems)                                   # doctest: +SKIP
>>> population.run(neat_fitness_function(evaluator, SubsetSchedule(problems, 40, rotate=True)), 10)  # doctest: +SKIP
"""

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
from neatpipe.seeds import derive_seed

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
