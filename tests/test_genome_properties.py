"""Property-based tests: validity under evolution, lossless files, distance, behavioural hash."""

from __future__ import annotations

import random
import warnings
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_genome_kit import BUSY, evolve_randomly, genome_config, relabelled

from neatpipe.genome import PipelineGenome
from neatpipe.genome.fileio import (
    genome_from_graphml,
    genome_from_json,
    genome_from_yaml,
    genome_to_data,
    genome_to_graphml,
    genome_to_json,
    genome_to_yaml,
)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=2**32 - 1)
steps = st.lists(st.sampled_from(["mutate", "mutate", "cross", "generation"]), min_size=1, max_size=40)


def one_genome(seed: int, n: int) -> PipelineGenome:
    return evolve_randomly(seed, ["mutate", "cross", "generation"] * n)[-1]


@SETTINGS
@given(seed=seeds, plan=steps)
def test_mutation_and_crossover_always_yield_valid_genomes(seed: int, plan: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an undone invalid mutation warns
        made = evolve_randomly(seed, plan)
    for g in made:
        assert g.problems(BUSY) == [], (g.key, g.problems(BUSY))


@SETTINGS
@given(seed=seeds, n=st.integers(0, 12))
def test_file_round_trips_are_lossless(seed: int, n: int) -> None:
    g = one_genome(seed, n)
    g.fitness = random.Random(seed).choice([None, 0.5, 1.25])
    g.description = "round trip"
    want = genome_to_data(g)
    for text, reader in (
        (genome_to_yaml(g), genome_from_yaml),
        (genome_to_json(g), genome_from_json),
        (genome_to_graphml(g), genome_from_graphml),
    ):
        back = reader(text).genome
        assert back.nodes == g.nodes
        assert back.connections == g.connections
        assert (back.key, back.fitness, back.description) == (g.key, g.fitness, g.description)
        assert genome_to_data(back) == want


@SETTINGS
@given(seed_a=seeds, seed_b=seeds, n=st.integers(0, 10))
def test_distance_is_zero_to_self_and_symmetric(seed_a: int, seed_b: int, n: int) -> None:
    config = genome_config()
    made = evolve_randomly(seed_a, ["mutate", "cross"] * n, config) + evolve_randomly(
        seed_b, ["mutate"] * n, config
    )
    a, b = random.Random(seed_b).sample(made, 2)
    assert a.distance(a, config) == 0.0
    assert a.distance(b, config) == pytest.approx(b.distance(a, config))
    assert a.distance(b, config) >= 0.0


@SETTINGS
@given(seed=seeds, n=st.integers(0, 12), relabel=st.integers(0, 1000))
def test_behaviour_hash_ignores_keys_and_innovations(seed: int, n: int, relabel: int) -> None:
    g = one_genome(seed, n)
    assert relabelled(g, relabel).behaviour_hash() == g.behaviour_hash()


def _changed(gene, field: str):
    """The gene with ``field`` set to another valid value."""
    value = getattr(gene, field)
    if field == "model":
        other = next(m for m in BUSY.models if m != value)
    elif field == "prompt":
        other = (value + 1) % BUSY.prompt_pool_size(gene.role)
    elif field == "temperature":
        other = round(value + 0.05 if value < 0.5 else value - 0.05, 3)
    elif field in ("max_tokens", "time_limit"):
        other = value + 1
    elif field == "iterations":
        other = BUSY.iterations_min if value != BUSY.iterations_min else BUSY.iterations_max
    elif field == "early_stop":
        other = not value
    elif field == "feedback":
        other = "hidden" if value == "visible" else "visible"
    else:
        other = "agreement" if value == "visible-tests" else "visible-tests"
    return replace(gene, **{field: other})


@SETTINGS
@given(seed=seeds, n=st.integers(0, 12))
def test_behaviour_hash_changes_with_every_behavioural_attribute(seed: int, n: int) -> None:
    g = one_genome(seed, n)
    before = g.behaviour_hash()
    for key, gene in g.nodes.items():
        for field in gene.attributes():
            changed = g.copy()
            changed.nodes = {**g.nodes, key: _changed(gene, field)}
            assert changed.behaviour_hash() != before, (gene, field)
    # ...and with the wiring: one more refine stage after the output candidate.
    config = genome_config(
        replace(
            BUSY,
            add_stage_rate=1.0,
            add_analyzer_rate=0,
            add_generator_rate=0,
            remove_rate=0,
            max_nodes=20,
            max_stages=10,
        )
    )
    grown = g.copy()
    grown.mutate(config)
    if grown.size() != g.size():
        assert grown.behaviour_hash() != before


def test_behaviour_hash_tells_shared_from_separate_generators() -> None:
    """One generator feeding two stages is not the same pipeline as two identical generators."""
    from neatpipe.genome.fileio import genome_from_data

    stage = {
        "role": "refiner",
        "model": "m",
        "prompt": 0,
        "temperature": 0.2,
        "max_tokens": 9,
        "iterations": 2,
        "early_stop": True,
    }
    gen = {"role": "generator", "model": "m", "prompt": 0, "temperature": 0.2, "max_tokens": 9}
    ex = {"role": "executor"}
    sel = {"role": "selector"}
    shared = genome_from_data(
        {
            "nodes": {"g": gen, "e1": ex, "r1": stage, "e2": ex, "r2": stage, "s": sel},
            "edges": [
                ["problem", "g"],
                ["g", "e1"],
                ["e1", "r1"],
                ["g", "e2"],
                ["e2", "r2"],
                ["r1", "s"],
                ["r2", "s"],
                ["s", "output"],
            ],
        }
    ).genome
    separate = genome_from_data(
        {
            "nodes": {"g1": gen, "g2": gen, "e1": ex, "r1": stage, "e2": ex, "r2": stage, "s": sel},
            "edges": [
                ["problem", "g1"],
                ["problem", "g2"],
                ["g1", "e1"],
                ["e1", "r1"],
                ["g2", "e2"],
                ["e2", "r2"],
                ["r1", "s"],
                ["r2", "s"],
                ["s", "output"],
            ],
        }
    ).genome
    assert shared.behaviour_hash() != separate.behaviour_hash()
