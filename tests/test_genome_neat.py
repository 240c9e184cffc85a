"""PipelineGenome inside neat-python's own Population, reproduction, species, stagnation and
checkpointing."""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path

import neat
import pytest
from test_genome_kit import genome_config

from neatpipe.genome import (
    GenomeSettings,
    PipelineGenome,
    Role,
    make_neat_config,
    write_neat_config,
)
from neatpipe.genome.errors import ConfigError

GENOME = {
    "models": ["qwen2.5-coder-1.5b", "qwen2.5-coder-3b", "llama3.2-3b"],
    "max_nodes": 8,
    "add_stage_rate": 0.2,
    "add_analyzer_rate": 0.2,
    "add_generator_rate": 0.1,
    "remove_rate": 0.1,
    "early_stop_init": False,
    "early_stop_toggle_rate": 0.2,
}
NEAT = {
    "NEAT": {"pop_size": 30, "fitness_threshold": 1.0, "no_fitness_termination": True, "seed": 7},
    "DefaultSpeciesSet": {"compatibility_threshold": 1.5},
    "DefaultStagnation": {"species_fitness_func": "max", "max_stagnation": 20, "species_elitism": 1},
    "DefaultReproduction": {"elitism": 1, "survival_threshold": 0.3, "min_species_size": 1},
}


def target_fitness(genome: PipelineGenome) -> float:
    """Rewards generate -> execute -> analyze -> refine with early stopping, and nothing more."""
    best = 0.0
    for key, node in genome.nodes.items():
        if node.role != Role.REFINER:
            continue
        feeds = [s for s, t in genome.connections if t == key]
        has_analyzer = any(genome.nodes[s].role == Role.ANALYZER for s in feeds)
        best = max(best, 0.3 + 0.2 * bool(node.early_stop) + 0.3 * has_analyzer)
    exact = sorted(n.role.value for n in genome.nodes.values()) == [
        "analyzer",
        "executor",
        "generator",
        "refiner",
    ]
    return best + (0.2 if exact and best >= 0.8 else 0.0)


class Recorder(neat.reporting.BaseReporter):
    def __init__(self) -> None:
        self.species_counts: list[int] = []

    def post_evaluate(self, config, population, species, best_genome) -> None:
        self.species_counts.append(len(species.species))


def evaluate(genomes, config) -> None:
    for _, genome in genomes:
        genome.check(config.genome_config.settings)  # every genome neat-python makes is valid
        genome.fitness = target_fitness(genome)


def test_population_finds_the_target_speciates_and_survives_a_checkpoint(tmp_path: Path) -> None:
    config = make_neat_config(GENOME, NEAT)
    population = neat.Population(config)
    recorder = Recorder()
    population.add_reporter(recorder)
    prefix = str(tmp_path / "checkpoint-")
    population.add_reporter(neat.Checkpointer(15, filename_prefix=prefix))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        population.run(evaluate, 15)
        restored = neat.Checkpointer.restore_checkpoint(prefix + "15")
        assert restored.generation == 15
        counter = restored.reproduction.innovation_tracker.global_counter
        assert counter == config.genome_config.innovation_tracker.global_counter
        restored.add_reporter(recorder)
        best = restored.run(evaluate, 15)
    assert len(recorder.species_counts) == 30
    assert max(recorder.species_counts) > 1
    assert best.fitness == pytest.approx(1.0)
    assert restored.reproduction.innovation_tracker.global_counter > counter  # numbering went on
    for genome in restored.population.values():
        genome.check(config.genome_config.settings)


def test_same_structural_mutation_in_one_generation_gets_the_same_numbers() -> None:
    only_add_stage = GenomeSettings(
        add_stage_rate=1.0, add_analyzer_rate=0, add_generator_rate=0, remove_rate=0
    )
    config = genome_config(only_add_stage)
    random.seed(0)
    parent = PipelineGenome(1)
    parent.configure_new(config)
    a, b = parent.copy(2), parent.copy(3)
    a.mutate(config)
    b.mutate(config)
    assert set(a.nodes) == set(b.nodes) and len(a.nodes) == 3
    assert {c.innovation for c in a.connections.values()} == {c.innovation for c in b.connections.values()}
    assert a.distance(b, config) < 1.0  # only attributes differ
    config.innovation_tracker.reset_generation()
    c = parent.copy(4)
    c.mutate(config)
    assert set(c.nodes) - set(parent.nodes)
    assert (set(c.nodes) - set(parent.nodes)).isdisjoint(set(a.nodes))


def test_crossover_lines_up_genes_and_honours_fitness_criterion() -> None:
    config = genome_config(
        GenomeSettings(add_stage_rate=1.0, add_analyzer_rate=0, add_generator_rate=0, remove_rate=0)
    )
    random.seed(1)
    small = PipelineGenome(1)
    small.configure_new(config)
    big = small.copy(2)
    big.mutate(config)
    small.fitness, big.fitness = 1.0, 0.0
    child = PipelineGenome(3)
    child.configure_crossover(small, big, config)
    assert set(child.nodes) == set(small.nodes)  # disjoint genes come from the fitter parent
    child = PipelineGenome(4)
    child.configure_crossover(small, big, config, fitness_criterion="min")
    assert set(child.nodes) == set(big.nodes)  # lower is better: big is the fitter parent
    child.check(config.settings)


def test_config_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "neat.ini"
    write_neat_config(path, GENOME, NEAT)
    config = neat.Config(
        PipelineGenome, neat.DefaultReproduction, neat.DefaultSpeciesSet, neat.DefaultStagnation, str(path)
    )
    settings = config.genome_config.settings
    assert settings.models == tuple(GENOME["models"]) and settings.max_nodes == 8
    saved = tmp_path / "saved.ini"
    config.save(str(saved))  # neat-python writes the section through PipelineGenome.write_config
    again = neat.Config(
        PipelineGenome, neat.DefaultReproduction, neat.DefaultSpeciesSet, neat.DefaultStagnation, str(saved)
    )
    assert again.genome_config.settings == settings
    with pytest.raises(ConfigError, match="max_node"):
        make_neat_config({"max_node": 3})
    with pytest.raises(ConfigError, match="add_stage_rate"):
        make_neat_config({"add_stage_rate": 1.5})
    with pytest.raises(ConfigError, match="iterations_max"):
        GenomeSettings.from_mapping({"iterations_min": "3", "iterations_max": "2"})
    with pytest.raises(ConfigError, match="early_stop_mutable"):
        GenomeSettings.from_mapping({"early_stop_mutable": "maybe"})


def test_genomes_and_configs_pickle() -> None:
    config = make_neat_config(GENOME, NEAT)
    population = neat.Population(config)
    population.run(evaluate, 2)
    genome = next(iter(population.population.values()))
    clone = pickle.loads(pickle.dumps(genome))
    assert clone.nodes == genome.nodes and clone.connections == genome.connections
    assert pickle.loads(pickle.dumps(config.genome_config)).settings == config.genome_config.settings


def test_complexity_counts_worst_case_calls() -> None:
    from test_genome_kit import REPO

    from neatpipe.genome import load_genome

    c = load_genome(REPO / "genomes" / "analyzer-stage.yaml").complexity()
    assert (c.nodes, c.edges, c.model_nodes, c.model_calls, c.program_runs) == (4, 6, 3, 1 + 2 * 2, 2)
    c = load_genome(REPO / "genomes" / "best-of-3-refine.yaml").complexity()
    assert (c.model_calls, c.program_runs) == (3 + 3, 3 + 3)
    assert c.penalty(per_model_call=0.01) == pytest.approx(0.06)


def test_renumbered_baselines_join_a_population() -> None:
    from test_genome_kit import REPO

    from neatpipe.genome import load_genome

    config = genome_config()
    native = PipelineGenome(1)
    native.configure_new(config)
    baseline = load_genome(REPO / "genomes" / "best-of-3-refine.yaml")
    a, b = baseline.renumbered(config, 2), baseline.renumbered(config, 3)
    assert a.behaviour_hash() == baseline.behaviour_hash()
    assert set(a.nodes) == set(b.nodes) and set(a.nodes).isdisjoint(native.nodes)
    assert a.distance(b, config) == 0.0
    a.fitness, native.fitness = 1.0, 0.0
    child = PipelineGenome(4)
    child.configure_crossover(a, native, config)
    child.check(config.settings)
