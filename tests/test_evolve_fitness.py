"""Fitness: penalty kinds, statistics, the Evaluation record, and species separation under
neat-python 2.0's own DefaultReproduction."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import neat
import pytest
from neat.reporting import ReporterSet
from neat.species import Species

from neatpipe.evolution import (
    STUDY_PENALTY,
    Evaluation,
    Penalty,
    fitness_of,
    hoeffding_interval,
    mean_sd,
    wilson_interval,
)
from neatpipe.genome import load_genome, make_neat_config

GENOMES = Path(__file__).resolve().parents[1] / "genomes"


@pytest.fixture(scope="module")
def solo():
    return load_genome(GENOMES / "solo.yaml")


@pytest.fixture(scope="module")
def self_refine():
    return load_genome(GENOMES / "self-refine.yaml")


@pytest.fixture(scope="module")
def analyzer_stage():
    return load_genome(GENOMES / "analyzer-stage.yaml")


# -- penalty ---------------------------------------------------------------------------------------


def test_per_node_penalty_is_the_study_weight_times_the_nodes(solo, self_refine) -> None:
    assert STUDY_PENALTY == Penalty(per_node=0.02)
    assert STUDY_PENALTY.value(solo) == pytest.approx(0.02)  # one generator
    assert STUDY_PENALTY.value(self_refine) == pytest.approx(0.06)  # generator, executor, refiner
    assert Penalty.of("node", 0.05).value(self_refine) == pytest.approx(0.15)


def test_per_call_penalty_uses_worst_case_model_calls(solo, self_refine, analyzer_stage) -> None:
    per_call = Penalty.of("call", 0.01)
    assert per_call.value(solo) == pytest.approx(0.01)  # one generator call
    assert self_refine.complexity().model_calls == 4  # 1 generator + 3 refine iterations
    assert per_call.value(self_refine) == pytest.approx(0.04)
    # an analyzer doubles a stage's calls per iteration
    c = analyzer_stage.complexity()
    assert per_call.value(analyzer_stage) == pytest.approx(0.01 * c.model_calls)
    assert per_call.value(analyzer_stage) == pytest.approx(c.penalty(per_model_call=0.01))
    assert c.model_calls > c.model_nodes


def test_per_model_node_penalty_and_experiment_file_spellings(self_refine, analyzer_stage) -> None:
    assert Penalty.of("model-node", 0.02).value(self_refine) == pytest.approx(0.04)  # generator, refiner
    assert Penalty.of("model-node", 0.02).value(analyzer_stage) == pytest.approx(0.06)
    assert Penalty.of("per-node", 0.02) == Penalty.of("node", 0.02)
    assert Penalty.of("per-call", 0.01) == Penalty(per_call=0.01)
    assert Penalty.of("per-token", 0.01) == Penalty(per_1k_tokens=0.01)


def test_per_token_penalty_is_scaled_per_thousand_tokens(self_refine) -> None:
    p = Penalty.of("token", 0.01)
    assert p.value(self_refine, tokens_per_problem=0) == 0
    assert p.value(self_refine, tokens_per_problem=2500) == pytest.approx(0.025)
    assert p.uses_tokens and not STUDY_PENALTY.uses_tokens


def test_penalties_add_up_and_are_capped(self_refine) -> None:
    both = Penalty.parse("node:0.02+token:0.01")
    assert both == Penalty(per_node=0.02, per_1k_tokens=0.01)
    assert both.value(self_refine, 1000) == pytest.approx(0.06 + 0.01)
    assert Penalty(per_node=1.0, cap=0.5).value(self_refine) == 0.5
    assert Penalty.parse("none").value(self_refine, 10_000) == 0
    assert Penalty.parse("call:0.03") == Penalty(per_call=0.03)
    assert Penalty.from_dict(both.to_dict()) == both
    assert both.describe() == "0.02/node + 0.01/1k tokens per problem"


@pytest.mark.parametrize("bad", ["node", "edges:0.1", "node:x"])
def test_bad_penalty_text_is_an_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError):
        Penalty.parse(bad)


def test_penalty_weights_must_be_finite_and_non_negative() -> None:
    with pytest.raises(ValueError, match="per_node"):
        Penalty(per_node=-0.1)
    with pytest.raises(ValueError, match="per_call"):
        Penalty(per_call=math.inf)


def test_fitness_is_pass_rate_minus_penalty_and_never_a_sentinel() -> None:
    assert fitness_of(0.8, 0.06) == pytest.approx(0.74)
    assert fitness_of(0.0, 0.06) == pytest.approx(-0.06)
    with pytest.raises(ValueError):
        fitness_of(math.nan, 0.0)
    with pytest.raises(ValueError):
        fitness_of(0.5, -math.inf)


# -- statistics -------------------------------------------------------------------------------------


def test_mean_and_sample_sd() -> None:
    mean, sd = mean_sd([0.5, 0.7, 0.6])
    assert mean == pytest.approx(0.6)
    assert sd == pytest.approx(0.1)  # sample SD (n - 1)
    assert mean_sd([0.4]) == (0.4, None)
    with pytest.raises(ValueError):
        mean_sd([])


def test_wilson_interval_matches_the_formula() -> None:
    lo, hi = wilson_interval(8, 10, 0.95)
    assert lo == pytest.approx(0.4902, abs=1e-3)
    assert hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # more evidence, narrower interval
    assert (lambda a, b: b - a)(*wilson_interval(80, 100)) < (lambda a, b: b - a)(*wilson_interval(8, 10))


def test_hoeffding_interval_matches_the_formula() -> None:
    lo, hi = hoeffding_interval(5, 20, 0.9)
    half = math.sqrt(math.log(2 / 0.1) / 40)
    assert lo == pytest.approx(max(0.0, 0.25 - half))
    assert hi == pytest.approx(0.25 + half)


# -- the record --------------------------------------------------------------------------------------


def _evaluation(**changes) -> Evaluation:
    base = dict(
        genome="ab" * 32,
        label="self-refine",
        benchmark="humaneval",
        problems=("HumanEval/0", "HumanEval/1"),
        repeats=2,
        seeds=(11, 12),
        pass_rates=(0.5, 1.0),
        mean=0.75,
        sd=math.sqrt(0.125),
        per_problem={"HumanEval/0": 1, "HumanEval/1": 2},
        prompt_tokens=400,
        completion_tokens=300,
        model_calls=6,
        cache_hits=1,
        wall_s=1.5,
        feedback="visible",
        synthetic=True,
        penalty=0.06,
        fitness=0.69,
        rests_on=4,
        new_evaluations=2,
        penalty_spec=STUDY_PENALTY.to_dict(),
    )
    base.update(changes)
    return Evaluation(**base)


def test_evaluation_json_round_trip() -> None:
    ev = _evaluation()
    back = Evaluation.from_json(ev.to_json())
    assert back == ev
    assert back.passed == 3 and back.reused == 2 and back.tokens_per_problem == 175
    assert '"format": "neatpipe-evaluation/1"' in ev.to_json()
    single = _evaluation(repeats=1, seeds=(11,), pass_rates=(0.5,), sd=None, error="GenomeError: x")
    assert Evaluation.from_json(single.to_json()) == single
    assert "+/-" not in single.summary() and "[synthetic]" in single.summary()


def test_evaluation_json_rejects_other_records() -> None:
    data = _evaluation().to_dict()
    with pytest.raises(ValueError, match="format"):
        Evaluation.from_dict({**data, "format": "neatpipe-trajectory/1"})
    with pytest.raises(ValueError, match="colour"):
        Evaluation.from_dict({**data, "colour": "red"})


def test_interval_rests_on_all_problem_evaluations() -> None:
    ev = _evaluation()
    assert ev.interval() == wilson_interval(3, 4)
    assert ev.interval(0.9, "hoeffding") == hoeffding_interval(3, 4, 0.9)


# -- species separation under neat-python's own reproduction -----------------------------------------

NEAT_SETTINGS = {
    "NEAT": {"pop_size": 30, "no_fitness_termination": True},
    "DefaultStagnation": {"species_fitness_func": "mean", "max_stagnation": 15, "species_elitism": 3},
    "DefaultReproduction": {"elitism": 1, "survival_threshold": 0.3, "min_species_size": 2},
}


def offspring_per_species(fitness_of_species: dict[int, list[float]], seed: int = 0) -> dict[int, int]:
    """Builds species of the given members' fitness values by hand, lets neat-python's
    DefaultReproduction make the next generation, and counts each species' share of it."""
    random.seed(seed)
    config = make_neat_config({"models": ["m"]}, NEAT_SETTINGS)
    reporters = ReporterSet()
    stagnation = config.stagnation_type(config.stagnation_config, reporters)
    reproduction = config.reproduction_type(config.reproduction_config, reporters, stagnation)
    size = sum(len(v) for v in fitness_of_species.values())
    genomes = reproduction.create_new(config.genome_type, config.genome_config, size)
    species_set = config.species_set_type(config.species_set_config, reporters)
    keys = iter(sorted(genomes))
    species_of: dict[int, int] = {}
    for sid, values in fitness_of_species.items():
        members = {}
        for value in values:
            key = next(keys)
            genomes[key].fitness = value
            members[key] = genomes[key]
            species_of[key] = sid
        s = Species(sid, 0)
        s.update(next(iter(members.values())), members)
        species_set.species[sid] = s
    new = reproduction.reproduce(config, species_set, size, 1)
    assert len(new) == size
    counts: Counter[int] = Counter()
    for key in new:
        parent = key if key in species_of else reproduction.ancestors[key][0]
        counts[species_of[parent]] += 1
    return dict(counts)


def species_fitness(penalty: Penalty, genome, pass_rates: dict[int, list[float]]) -> dict[int, list[float]]:
    return {sid: [fitness_of(p, penalty.value(genome)) for p in rates] for sid, rates in pass_rates.items()}


PASS_RATES = {
    1: [0.70, 0.75, 0.80, 0.75, 0.70, 0.80, 0.75, 0.72, 0.78, 0.75],  # self-refine-like
    2: [0.45, 0.50, 0.55, 0.50, 0.45, 0.55, 0.50, 0.48, 0.52, 0.50],  # solo-like
    3: [0.20, 0.25, 0.30, 0.25, 0.20, 0.30, 0.25, 0.22, 0.28, 0.25],  # broken pipelines
}


def test_better_species_get_more_offspring_with_the_study_penalty(self_refine) -> None:
    counts = offspring_per_species(species_fitness(STUDY_PENALTY, self_refine, PASS_RATES))
    assert counts[1] > counts[2] > counts[3], counts
    assert sum(counts.values()) == 30


def test_negative_fitness_separates_species_the_same_way(self_refine) -> None:
    """A penalty larger than every pass rate makes all fitness negative; neat subtracts the
    population minimum, so the offspring shares do not change."""
    small = offspring_per_species(species_fitness(Penalty(per_node=0.02), self_refine, PASS_RATES))
    large = offspring_per_species(species_fitness(Penalty(per_node=0.5), self_refine, PASS_RATES))
    assert all(
        v < 0 for vs in species_fitness(Penalty(per_node=0.5), self_refine, PASS_RATES).values() for v in vs
    )
    assert small == large


def test_a_sentinel_would_flatten_species_but_a_failed_genome_scores_minus_its_penalty(self_refine) -> None:
    fitness = species_fitness(STUDY_PENALTY, self_refine, PASS_RATES)
    flat = offspring_per_species({**fitness, 3: [*fitness[3][:-1], -1e9]})
    assert abs(flat[1] - flat[2]) <= 1, flat  # the outlier squeezes species 1 and 2 together
    failed = fitness_of(0.0, STUDY_PENALTY.value(self_refine))  # what the evaluator gives a failed genome
    kept = offspring_per_species({**fitness, 3: [*fitness[3][:-1], failed]})
    assert kept[1] > kept[2] > kept[3], kept


def test_species_shares_do_not_depend_on_the_fitness_scale(self_refine) -> None:
    fitness = species_fitness(STUDY_PENALTY, self_refine, PASS_RATES)
    scaled = {sid: [100 * v for v in vs] for sid, vs in fitness.items()}
    assert offspring_per_species(fitness) == offspring_per_species(scaled)


def test_config_runs_with_population_fitness_function_signature() -> None:
    """``Population.run`` hands the fitness function a list of (genome id, genome) and the config."""
    config = make_neat_config(
        {"models": ["m"]}, {**NEAT_SETTINGS, "NEAT": {"pop_size": 6, "no_fitness_termination": True}}
    )
    seen = []

    def fitness(genomes, cfg):
        assert cfg is config
        seen.append([type(k) for k, _ in genomes])
        for _, g in genomes:
            g.fitness = fitness_of(0.5, STUDY_PENALTY.value(g))

    neat.Population(config, seed=1).run(fitness, 1)
    assert seen and all(t is int for t in seen[0])
