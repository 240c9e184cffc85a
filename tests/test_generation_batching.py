"""A generation scored as one stream of batches equals the same generation scored genome by genome.

The population is the benchmark's (``neatpipe bench evaluation``): parents of mixed shapes and their
mutants. Each way gets fresh backends and no result store, so every pipeline really runs both times; the
only difference is how requests and programs are grouped. Wall times are the one thing allowed to differ.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from neatpipe.bench import load_humaneval
from neatpipe.evolution import Evaluator
from neatpipe.models import load_backend
from neatpipe.perf.evaluation import mixed_population


def _untimed(value: Any) -> Any:
    """``value`` with every wall-clock field left out (the only thing grouping may change)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in ("duration_s", "wall_s")}
    if isinstance(value, list | tuple):
        return [_untimed(v) for v in value]
    return value


def _score(population, problems, make_models, sandbox, batching: str, repeats: int):
    models = make_models()
    try:
        runs: list[Any] = []
        ev = Evaluator(
            models,
            sandbox,
            repeats=repeats,
            seed=5,
            result_cache=False,
            batching=batching,
            on_run=runs.append,
        )
        evaluations = ev.evaluate_population(population, problems)
        calls = [c for b in models.values() for c in b.calls]
        return ev, evaluations, runs, calls
    finally:
        for b in models.values():
            b.close()


def _trajectories(runs) -> dict[tuple[str, int, str], Any]:
    out = {}
    for run in runs:
        for t in run.trajectories:
            out[(t.genome, t.repeat, t.task_id)] = _untimed(t.to_dict())
    return out


def _compare_both_ways(population, problems, make_models, sandbox, repeats):
    apart = _score(population, problems, make_models, sandbox, "genome", repeats)
    together = _score(population, problems, make_models, sandbox, "generation", repeats)
    (ev_a, evals_a, runs_a, calls_a), (ev_t, evals_t, runs_t, calls_t) = apart, together

    # identical fitness and evaluations (all but the wall time), genome by genome
    assert set(evals_a) == set(evals_t) == {k for k, _ in population}
    for key in evals_a:
        a, t = evals_a[key], evals_t[key]
        assert dataclasses.replace(a, wall_s=0.0) == dataclasses.replace(t, wall_s=0.0), key
    # identical trajectories, every step of every problem of every repeat
    traj_a, traj_t = _trajectories(runs_a), _trajectories(runs_t)
    distinct = {g.behaviour_hash() for _, g in population}
    assert len(traj_a) == len(distinct) * repeats * len(problems)
    assert traj_a == traj_t

    # the grouping: genome by genome each pipeline step is its own call; together, one call per model per
    # round, and identical requests (mutants share their parent's unchanged genes) are sent once
    assert len(calls_a) == sum(r.backend_calls for r in runs_a) == ev_a.stream.backend_calls
    assert len(calls_t) == ev_t.stream.backend_calls <= ev_t.stream.rounds
    assert ev_t.stream.rounds <= max(len(r.steps) for r in runs_t)
    assert len(calls_t) * 3 <= len(calls_a)
    assert max(c.requests for c in calls_t) > max(c.requests for c in calls_a)
    assert ev_t.stream.requests == ev_a.stream.requests == sum(r.requests for r in runs_t)
    assert sum(c.requests for c in calls_t) == ev_t.stream.requests_sent < ev_t.stream.requests
    assert (
        ev_t.stream.sandbox_batches <= ev_t.stream.rounds
        and ev_t.stream.sandbox_batches * 2 <= ev_a.stream.sandbox_batches
    )
    return apart, together


def test_a_generation_scores_the_same_as_one_stream_and_genome_by_genome(sandbox) -> None:
    population = mixed_population(12, seed=3, models=("m",), tokens=256)
    shapes = {tuple(sorted(n.role.value for n in g.nodes.values())) for _, g in population}
    assert len(shapes) >= 4  # one generator, best-of-n, refine stages with and without analyzers
    problems = list(load_humaneval())[:6]
    _compare_both_ways(
        population, problems, lambda: {"m": load_backend("synthetic:small-1.5b")}, sandbox, repeats=2
    )


def test_a_real_transformers_model_answers_the_same_in_any_grouping(sandbox, tmp_path) -> None:
    """Sampling at temperature > 0 with per-request seeds, float32, the real decoding path."""
    from neatpipe.models.tiny import make_tiny_model

    path = make_tiny_model(tmp_path / "tiny", arch="qwen2", seed=0).path
    population = mixed_population(6, seed=1, models=("m",), tokens=8)
    assert any(g.temperature and g.temperature > 0 for _, genome in population for g in genome.nodes.values())
    problems = list(load_humaneval())[:3]
    spec = {"spec": f"hf:{path}", "device": "cpu", "dtype": "float32"}
    _compare_both_ways(population, problems, lambda: {"m": load_backend(spec)}, sandbox, repeats=1)


def test_a_genome_that_cannot_run_does_not_stop_the_others(sandbox) -> None:
    from neatpipe.genome import PipelineGenome

    population = mixed_population(3, seed=0, models=("m",))
    broken = PipelineGenome(99)  # no nodes: it cannot compile
    ev = Evaluator({"m": load_backend("synthetic:small-1.5b")}, sandbox, result_cache=False)
    out = ev.evaluate_population([*population, (99, broken)], list(load_humaneval())[:2])
    assert "GenomeError" in out[99].error and out[99].mean == 0 and out[99].rests_on == 0
    assert all(out[k].error is None and out[k].rests_on == 2 for k, _ in population)


@pytest.mark.parametrize("batching", ["generation", "genome"])
def test_progress_reports_every_genome_once(sandbox, batching) -> None:
    population = mixed_population(5, seed=2, models=("m",))
    seen: list[tuple[int, int]] = []
    ev = Evaluator(
        {"m": load_backend("synthetic:small-1.5b")}, sandbox, result_cache=False, batching=batching
    )
    ev.evaluate_population(population, list(load_humaneval())[:2], progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 5) for i in range(1, 6)]
