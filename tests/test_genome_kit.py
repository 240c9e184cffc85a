"""Shared helpers for the genome tests (random valid genomes, relabelling), plus their own checks."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from neat.innovation import InnovationTracker

from neatpipe.genome import (
    ConnectionGene,
    GenomeSettings,
    PipelineGenome,
    PipelineGenomeConfig,
)

REPO = Path(__file__).resolve().parents[1]
BASELINES = sorted((REPO / "genomes").glob("*.yaml"))

#: High rates so a few steps reach every kind of structure (selectors, analyzers, chains).
BUSY = GenomeSettings(
    models=("qwen2.5-coder-1.5b", "qwen2.5-coder-3b", "llama3.2-3b"),
    max_nodes=10,
    max_stages=3,
    max_generators=3,
    add_stage_rate=0.5,
    add_analyzer_rate=0.4,
    add_generator_rate=0.4,
    remove_rate=0.3,
    model_swap_rate=0.3,
    prompt_change_rate=0.3,
    temperature_perturb_rate=0.3,
    iterations_change_rate=0.3,
    early_stop_toggle_rate=0.3,
)


def genome_config(settings: GenomeSettings = BUSY) -> PipelineGenomeConfig:
    config = PipelineGenomeConfig(settings)
    config.innovation_tracker = InnovationTracker()
    return config


def evolve_randomly(
    seed: int, steps: list[str], config: PipelineGenomeConfig | None = None, pool_size: int = 4
) -> list[PipelineGenome]:
    """A small population pushed through ``steps`` ("mutate" / "cross" / "generation") with a
    seeded ``random``; returns every genome made on the way."""
    config = config or genome_config()
    random.seed(seed)
    made: list[PipelineGenome] = []
    pool = []
    for i in range(pool_size):
        g = PipelineGenome(i)
        g.configure_new(config)
        pool.append(g)
        made.append(g)
    next_key = pool_size
    for step in steps:
        if step == "generation":
            config.innovation_tracker.reset_generation()
            continue
        if step == "mutate":
            child = random.choice(pool).copy(next_key)
            child.mutate(config)
        else:
            a, b = random.choice(pool), random.choice(pool)
            a.fitness, b.fitness = random.choice([(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (None, None)])
            child = PipelineGenome(next_key)
            child.configure_crossover(a, b, config)
        next_key += 1
        pool[random.randrange(len(pool))] = child
        made.append(child)
    return made


def relabelled(genome: PipelineGenome, seed: int) -> PipelineGenome:
    """The same pipeline under other node keys and innovation numbers."""
    rng = random.Random(seed)
    keys = list(genome.nodes)
    fresh = rng.sample(range(1000, 100000), len(keys))
    mapping = {-1: -1, 0: 0, **dict(zip(keys, fresh, strict=True))}
    innovations = rng.sample(range(100000, 200000), len(genome.connections))
    nodes = [replace(n, key=mapping[n.key]) for n in reversed(list(genome.nodes.values()))]
    conns = [
        ConnectionGene((mapping[s], mapping[t]), i)
        for (s, t), i in zip(genome.connections, innovations, strict=True)
    ]
    return PipelineGenome.from_genes(genome.key, nodes, conns, genome.fitness)


def test_random_evolution_helper_reaches_every_role() -> None:
    made = evolve_randomly(3, ["mutate", "cross", "generation"] * 30)
    roles = set()
    for g in made:
        roles |= {n.role.value for n in g.nodes.values()}
        g.check(BUSY)
    assert roles == {"generator", "executor", "analyzer", "refiner", "selector"}


def test_baselines_exist() -> None:
    names = {p.stem for p in BASELINES}
    assert {
        "solo",
        "self-refine",
        "self-refine-no-early-stop",
        "cross-model",
        "analyzer-stage",
        "best-of-3",
        "best-of-3-refine",
    } <= names


@pytest.mark.parametrize("seed", [0, 1])
def test_relabelled_keeps_structure(seed: int) -> None:
    g = evolve_randomly(seed, ["mutate"] * 10)[-1]
    r = relabelled(g, seed)
    assert r.size() == g.size()
    assert set(r.nodes).isdisjoint(g.nodes)
