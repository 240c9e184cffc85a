"""The evaluator: repeats and seeds, reuse of earlier results (memory and SQLite), racing, subsets
per generation, the neat-python fitness function and champion validation.

Most tests use a test-double runner whose verdicts are a fixed function of (genome, problem, seed),
so every number can be checked; the integration tests at the end use the real runtime with the
synthetic coder and the real sandbox.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import neat
import pytest

from neatpipe.bench import Problem, ProblemSet
from neatpipe.evolution import (
    STUDY_PENALTY,
    Evaluator,
    Penalty,
    Racing,
    ResultStore,
    SubsetSchedule,
    derive_seed,
    neat_fitness_function,
    repeat_seeds,
    validate_champions,
)
from neatpipe.genome import GenomeError, PipelineGenome, load_genome, make_neat_config

GENOMES = Path(__file__).resolve().parents[1] / "genomes"


# -- test doubles ------------------------------------------------------------------------------------


@dataclass
class FakeTrajectory:
    task_id: str
    passed: bool
    prompt_tokens: int = 100
    completion_tokens: int = 50
    model_calls: int = 1
    duration_s: float = 0.01
    synthetic: bool = False
    steps: tuple = ()
    final: Any = None


@dataclass
class FakeRun:
    trajectories: list[FakeTrajectory]
    wall_s: float = 0.5


@dataclass
class FakeRunner:
    """Stands in for ``run_pipelines``: ``verdict(genome_hash, problem, seed, repeat)`` decides each
    problem; every pipeline run is recorded."""

    verdict: Any
    calls: list[tuple[str, tuple[str, ...], int, int]] = field(default_factory=list)

    def __call__(self, jobs, models, sandbox, *, on_run=None, stats=None):
        out = []
        for i, job in enumerate(jobs):
            h = job.genome.behaviour_hash()
            self.calls.append((h, tuple(p.task_id for p in job.problems), job.seed, job.repeat))
            try:
                trajectories = [
                    FakeTrajectory(p.task_id, bool(self.verdict(h, p, job.seed, job.repeat)))
                    for p in job.problems
                ]
            except GenomeError as exc:
                out.append(exc)
                continue
            out.append(FakeRun(trajectories))
            if on_run is not None:
                on_run(i, out[-1])
        return out

    @property
    def problems_run(self) -> int:
        return sum(len(c[1]) for c in self.calls)


def by_rate(rates: dict[str, float]):
    """Pass with probability ``rates[hash]``, decided by a hash of (genome, problem, seed)."""

    def verdict(h, problem, seed, repeat):
        return derive_seed(h, problem.task_id, seed) % 10_000 < rates[h] * 10_000

    return verdict


def toy_problems(n: int = 40, benchmark: str = "toy") -> ProblemSet:
    return ProblemSet(
        benchmark,
        tuple(
            Problem(
                task_id=f"Toy/{i}",
                benchmark=benchmark,
                prompt=f"problem {i}",
                entry_point="f",
                context="",
                signature="def f():",
                visible_tests=(f"assert f() == {i}",),
                hidden_tests=(f"assert f() == {i}",),
                test_setup="",
                reference_solution=f"def f():\n    return {i}\n",
                difficulty="hard" if i % 4 == 0 else "easy",
            )
            for i in range(n)
        ),
    )


@pytest.fixture(scope="module")
def solo() -> PipelineGenome:
    return load_genome(GENOMES / "solo.yaml")


@pytest.fixture(scope="module")
def self_refine() -> PipelineGenome:
    return load_genome(GENOMES / "self-refine.yaml")


def variant(base: PipelineGenome, temperature: float, key: int) -> PipelineGenome:
    """The same wiring with another temperature: a different pipeline (another behaviour hash)."""
    nodes = [
        replace(g, temperature=temperature) if g.temperature is not None else g for g in base.nodes.values()
    ]
    return PipelineGenome.from_genes(key, nodes, base.connections.values(), description=f"t={temperature}")


def evaluator(runner: FakeRunner, **kw) -> Evaluator:
    return Evaluator({}, None, runner=runner, **kw)


# -- seeds, repeats and reuse --------------------------------------------------------------------------


def test_repeat_seeds_are_derived_and_stable() -> None:
    assert repeat_seeds(0, 3)[:2] == repeat_seeds(0, 2)
    assert len(set(repeat_seeds(0, 5))) == 5
    assert repeat_seeds(1, 2) != repeat_seeds(0, 2)
    assert all(0 <= s < 2**31 for s in repeat_seeds(7, 4))


def test_identical_genome_under_another_key_costs_no_runner_call(solo) -> None:
    problems = toy_problems(20)
    runner = FakeRunner(by_rate({solo.behaviour_hash(): 0.5}))
    ev = evaluator(runner)
    first = ev.evaluate(solo, problems)
    assert len(runner.calls) == 1 and first.new_evaluations == 20
    clone = solo.copy(key=99)
    second = ev.evaluate(clone, problems)
    assert len(runner.calls) == 1  # nothing new was run
    assert second.new_evaluations == 0 and second.reused == 20
    assert (second.mean, second.per_problem) == (first.mean, first.per_problem)
    assert ev.problem_runs == 20 and ev.problem_reuses == 20


def test_more_repeats_run_only_the_new_repeats(solo) -> None:
    problems = toy_problems(10)
    runner = FakeRunner(by_rate({solo.behaviour_hash(): 0.5}))
    ev = evaluator(runner, seed=3)
    one = ev.evaluate(solo, problems, repeats=1)
    three = ev.evaluate(solo, problems, repeats=3)
    seeds = repeat_seeds(3, 3)
    assert one.seeds == seeds[:1] and three.seeds == seeds
    assert [(c[2], c[3]) for c in runner.calls] == [(seeds[0], 0), (seeds[1], 1), (seeds[2], 2)]
    assert all(len(c[1]) == 10 for c in runner.calls)
    assert three.new_evaluations == 20 and three.rests_on == 30
    assert three.pass_rates[0] == one.pass_rates[0]


def test_a_larger_problem_set_runs_only_the_new_problems(solo) -> None:
    problems = toy_problems(20)
    runner = FakeRunner(by_rate({solo.behaviour_hash(): 0.5}))
    ev = evaluator(runner)
    ev.evaluate(solo, problems.select(problems.task_ids[:8]))
    ev.evaluate(solo, problems)
    assert runner.calls[1][1] == problems.task_ids[8:]


def test_mean_sd_and_per_problem_counts(solo) -> None:
    solved = [5, 7, 6]  # repeat r passes the first solved[r] of 10 problems

    def verdict(h, problem, seed, repeat):
        return int(problem.task_id.split("/")[1]) < solved[repeat]

    problems = toy_problems(10)
    e = evaluator(FakeRunner(verdict), penalty=STUDY_PENALTY).evaluate(solo, problems, repeats=3)
    assert e.pass_rates == (0.5, 0.7, 0.6)
    assert e.mean == pytest.approx(0.6) and e.sd == pytest.approx(statistics.stdev([0.5, 0.7, 0.6]))
    assert e.per_problem["Toy/0"] == 3 and e.per_problem["Toy/5"] == 2 and e.per_problem["Toy/6"] == 1
    assert e.per_problem["Toy/9"] == 0 and e.passed == 18
    assert e.prompt_tokens == 30 * 100 and e.completion_tokens == 30 * 50 and e.model_calls == 30
    # the three repeats ran in one stream, each taking 0.5 s of it; one after another they take 1.5 s
    assert e.wall_s == pytest.approx(0.5) and e.feedback == "visible" and not e.synthetic
    apart = evaluator(FakeRunner(verdict), batching="genome").evaluate(solo, problems, repeats=3)
    assert apart.wall_s == pytest.approx(1.5) and apart.pass_rates == e.pass_rates
    assert e.penalty == pytest.approx(0.02) and e.fitness == pytest.approx(0.58)
    assert (
        e.benchmark == "toy"
        and e.problems == problems.task_ids
        and e.label == "Solo: qwen2.5-coder-1.5b writes the code once"
    )


def test_per_token_penalty_uses_tokens_per_problem(solo) -> None:
    runner = FakeRunner(lambda *a: True)
    e = evaluator(runner, penalty=Penalty.of("token", 0.1)).evaluate(solo, toy_problems(4))
    assert e.tokens_per_problem == 150
    assert e.penalty == pytest.approx(0.015) and e.fitness == pytest.approx(0.985)


def test_without_a_result_cache_every_evaluation_pays(solo) -> None:
    runner = FakeRunner(by_rate({solo.behaviour_hash(): 0.5}))
    ev = evaluator(runner, result_cache=False)
    ev.evaluate(solo, toy_problems(5))
    ev.evaluate(solo, toy_problems(5))
    assert len(runner.calls) == 2


def test_sqlite_store_carries_results_across_runs(tmp_path, solo) -> None:
    path = tmp_path / "results.sqlite"
    problems = toy_problems(12)
    verdict = by_rate({solo.behaviour_hash(): 0.5})
    first_runner = FakeRunner(verdict)
    first = evaluator(first_runner, result_cache=path, repeats=2).evaluate(solo, problems)
    assert len(first_runner.calls) == 2
    resumed_runner = FakeRunner(verdict)
    with ResultStore(path) as store:
        assert len(store) == 24
        again = evaluator(resumed_runner, result_cache=store, repeats=2).evaluate(solo, problems)
    assert resumed_runner.calls == [] and again.mean == first.mean and again.new_evaluations == 0
    # another feedback policy is another context: nothing is reused
    other_runner = FakeRunner(verdict)
    evaluator(other_runner, result_cache=path, feedback="hidden").evaluate(solo, problems)
    assert other_runner.problems_run == 12


def test_results_of_finished_repeats_survive_a_failing_repeat(tmp_path, solo) -> None:
    path = tmp_path / "results.sqlite"

    def verdict(h, problem, seed, repeat):
        if repeat == 1:
            raise RuntimeError("backend went away")
        return True

    with pytest.raises(RuntimeError):
        evaluator(FakeRunner(verdict), result_cache=path, repeats=2).evaluate(solo, toy_problems(6))
    retry = FakeRunner(lambda *a: True)
    evaluator(retry, result_cache=path, repeats=2).evaluate(solo, toy_problems(6))
    assert [c[3] for c in retry.calls] == [1]  # repeat 0 was kept in the file


def test_a_genome_that_cannot_run_scores_zero_minus_its_penalty(self_refine) -> None:
    def verdict(*a):
        raise GenomeError("refiner 'refine' has no input")

    e = evaluator(FakeRunner(verdict)).evaluate(self_refine, toy_problems(5))
    assert e.error and "no input" in e.error
    assert e.mean == 0 and e.fitness == pytest.approx(-0.06) and e.rests_on == 0


def test_a_model_missing_from_the_pool_is_an_error_not_a_score(solo) -> None:
    from neatpipe.runtime import PipelineError, run_pipelines

    with pytest.raises(PipelineError, match="not in the model pool"):
        Evaluator({}, None, runner=run_pipelines).evaluate(solo, toy_problems(2))


# -- populations and racing ----------------------------------------------------------------------------


def test_population_scores_each_pipeline_once_and_keeps_keys(solo) -> None:
    a, b = variant(solo, 0.1, 1), variant(solo, 0.9, 2)
    twin = a.copy(key=3)
    runner = FakeRunner(by_rate({a.behaviour_hash(): 0.8, b.behaviour_hash(): 0.3}))
    out = evaluator(runner).evaluate_population([(1, a), (2, b), (3, twin)], toy_problems(10))
    assert list(out) == [1, 2, 3]
    assert len(runner.calls) == 2
    assert out[1].mean == out[3].mean and out[1].genome == out[3].genome


def race_setup(solo, rates: list[float]):
    genomes = [(i + 1, variant(solo, round(0.05 * (i + 1), 2), i + 1)) for i in range(len(rates))]
    table = {g.behaviour_hash(): r for (_, g), r in zip(genomes, rates, strict=True)}
    return genomes, FakeRunner(by_rate(table))


def test_racing_drops_clearly_worse_genomes_early(solo) -> None:
    problems = toy_problems(80)
    rates = [0.9, 0.85, 0.3, 0.2, 0.1, 0.05]
    genomes, runner = race_setup(solo, rates)
    ev = evaluator(runner, penalty=STUDY_PENALTY, result_cache=False)  # a race keeps its own store
    out = ev.evaluate_population(genomes, problems, racing=Racing(first=10))
    sizes = {k: len(e.problems) for k, e in out.items()}
    assert sizes[1] == 80 and sizes[2] == 80  # the two good ones are scored on everything
    assert all(sizes[k] < 80 for k in (3, 4, 5, 6)), sizes
    assert all(out[k].rests_on == sizes[k] for k in sizes)
    assert runner.problems_run < 80 * len(rates) / 2
    assert ev.last_race[0].problems == 10 and ev.last_race[0].scored == 6
    assert sum(len(r.dropped) for r in ev.last_race) == 4
    assert max(out, key=lambda k: out[k].fitness) == 1
    # scores of survivors equal a plain evaluation on all problems (results are shared)
    plain = evaluator(FakeRunner(runner.verdict)).evaluate_population(genomes[:1], problems)
    assert plain[1].mean == out[1].mean


@pytest.mark.parametrize("seed", range(8))
def test_racing_never_drops_the_best(solo, seed: int) -> None:
    problems = toy_problems(60)
    rates = [0.55, 0.5, 0.45, 0.4, 0.2, 0.1, 0.6]
    genomes, runner = race_setup(solo, rates)
    out = evaluator(runner, seed=seed).evaluate_population(
        genomes, problems, racing=Racing(first=8, bound="hoeffding" if seed % 2 else "wilson")
    )
    best = max(out, key=lambda k: out[k].fitness)
    assert len(out[best].problems) == 60
    truly_best = 7  # rate 0.6: with overlapping intervals it is never dropped
    assert len(out[truly_best].problems) == 60


def test_racing_with_top_k_keeps_k_genomes(solo) -> None:
    genomes, runner = race_setup(solo, [0.95, 0.9, 0.1, 0.05])
    ev = evaluator(runner)
    out = ev.evaluate_population(genomes, toy_problems(40), racing=Racing(first=10, top_k=2))
    assert [k for k, e in out.items() if len(e.problems) == 40] == [1, 2]


def test_racing_margin_keeps_close_genomes(solo) -> None:
    genomes, runner = race_setup(solo, [0.95, 0.9, 0.1, 0.05])
    out = evaluator(runner).evaluate_population(
        genomes, toy_problems(40), racing=Racing(first=10, margin=1.0)
    )
    assert all(len(e.problems) == 40 for e in out.values())  # nobody is that far behind
    with pytest.raises(ValueError):
        Racing(margin=-0.1)


def test_racing_slice_sizes() -> None:
    assert Racing(first=10).sizes(80) == [10, 20, 40, 80]
    assert Racing(first=10, growth=1.5).sizes(30) == [10, 15, 23, 30]
    assert Racing(first=50).sizes(20) == [20]
    with pytest.raises(ValueError):
        Racing(bound="normal")


# -- subsets and the neat-python fitness function -------------------------------------------------------


def test_fixed_and_rotating_subsets() -> None:
    problems = toy_problems(40)
    fixed = SubsetSchedule(problems, 8, seed=1)
    assert fixed.for_generation(0).task_ids == fixed.for_generation(5).task_ids
    rotating = SubsetSchedule(problems, 8, rotate=True, seed=1)
    ids = [rotating.for_generation(g).task_ids for g in range(4)]
    assert len(set(ids)) == 4
    assert rotating.for_generation(2).task_ids == ids[2]  # seeded by the generation
    assert SubsetSchedule(problems).for_generation(3) is problems
    # stratified: 10 of 40 problems keep the 1:3 hard/easy mix of the set
    labels = Counter(problems[t].difficulty for t in rotating.for_generation(0).task_ids)
    assert labels == {"hard": 2, "easy": 6}


def test_neat_fitness_function_sets_fitness_and_reuses_elites(solo) -> None:
    config = make_neat_config(
        {"models": ["qwen2.5-coder-1.5b", "qwen2.5-coder-3b"]},
        {"NEAT": {"pop_size": 8, "no_fitness_termination": True}, "DefaultReproduction": {"elitism": 1}},
    )
    runner = FakeRunner(lambda h, p, seed, r: derive_seed(h, p.task_id) % 3 == 0)
    ev = evaluator(runner)
    schedule = SubsetSchedule(toy_problems(30), 10, seed=2)
    fitness = neat_fitness_function(ev, schedule)
    population = neat.Population(config, seed=3)
    population.run(fitness, 3)
    assert [r.generation for r in fitness.history] == [0, 1, 2]
    assert all(isinstance(g.fitness, float) for g in population.population.values() if g.fitness is not None)
    later = fitness.history[1:]
    assert all(r.problem_reuses > 0 for r in later)  # elites and clones paid nothing
    assert sum(r.problem_runs for r in fitness.history) == 10 * len({e for e in _hashes(runner)})
    best = fitness.history[-1]
    assert fitness.evaluations[best.best_key].fitness == best.best_fitness


def _hashes(runner: FakeRunner) -> set[str]:
    return {c[0] for c in runner.calls}


def test_neat_fitness_function_rotates_subsets_per_generation(solo) -> None:
    runner = FakeRunner(lambda *a: True)
    fitness = neat_fitness_function(evaluator(runner), SubsetSchedule(toy_problems(30), 5, rotate=True))
    pairs = [(1, solo)]
    fitness(pairs, None)
    fitness(pairs, None)
    assert fitness.history[0].problems != fitness.history[1].problems
    assert solo.fitness == pytest.approx(0.98)


# -- champion validation ---------------------------------------------------------------------------------


def test_validation_measures_the_inflation_of_a_single_evaluation(solo, self_refine) -> None:
    search_ids = {f"Toy/{i}" for i in range(10)}
    held_out_solved = {solo.behaviour_hash(): 3, self_refine.behaviour_hash(): [6, 8, 7]}

    def verdict(h, problem, seed, repeat):
        i = int(problem.task_id.split("/")[1])
        if problem.task_id in search_ids:
            return i < 8  # a lucky 0.8 on the search subset
        solved = held_out_solved[h]
        return (i - 10) < (solved if isinstance(solved, int) else solved[repeat])

    problems = toy_problems(20)
    ev = evaluator(FakeRunner(verdict))
    search = ev.evaluate_population([(1, solo), (2, self_refine)], problems.select(sorted(search_ids)))
    held_out = problems.select([t for t in problems.task_ids if t not in search_ids])
    results = ev.validate_champions([(1, solo), (2, self_refine)], held_out, repeats=3, search=search)
    r_solo, r_refine = results
    assert r_solo.search_pass_rate == 0.8 and r_solo.validated_mean == pytest.approx(0.3)
    assert r_solo.inflation == pytest.approx(0.5) and r_solo.validated_sd == 0
    assert r_refine.validated_mean == pytest.approx(0.7) and r_refine.validated_sd == pytest.approx(0.1)
    assert r_refine.inflation == pytest.approx(0.1) and r_refine.inflation_basis == "pass_rate"
    assert r_refine.validated.repeats == 3 and len(r_refine.validated.problems) == 10
    assert "inflation +0.100" in r_refine.summary()
    assert r_refine.to_dict()["validated"]["mean"] == pytest.approx(0.7)
    # without the search evaluation, the genome's fitness is the search score
    g = self_refine.copy(key=5)
    g.fitness = 0.74
    (only_fitness,) = validate_champions(ev, [g], held_out, repeats=3)
    assert only_fitness.inflation_basis == "fitness"
    assert only_fitness.inflation == pytest.approx(0.74 - (0.7 - 0.06))


# -- the real runtime with the synthetic coder and the real sandbox ---------------------------------------


@pytest.fixture(scope="module")
def coder():
    from neatpipe.models import load_backend

    return load_backend("synthetic:small-1.5b")


@pytest.fixture(scope="module")
def humaneval_subset():
    from neatpipe.bench import load_benchmark, subset

    return subset(load_benchmark("humaneval"), 12, seed=0)


def test_self_refine_beats_solo_with_the_real_runner(coder, sandbox, solo, self_refine) -> None:
    from neatpipe.bench import load_benchmark, subset

    problems = subset(load_benchmark("humaneval"), 30, seed=0)
    runs = []
    ev = Evaluator({"qwen2.5-coder-1.5b": coder}, sandbox, penalty=STUDY_PENALTY, on_run=runs.append)
    out = ev.evaluate_population([(1, solo), (2, self_refine)], problems)
    assert out[2].fitness > out[1].fitness, (out[1].summary(), out[2].summary())
    assert out[2].mean - out[1].mean >= 2 / 30  # at least two more problems solved, despite 2 more nodes
    assert out[1].penalty == pytest.approx(0.02) and out[2].penalty == pytest.approx(0.06)
    for e in out.values():
        assert e.synthetic and e.feedback == "visible" and e.rests_on == 30 and e.error is None
        assert e.model_calls >= 30 and e.prompt_tokens > 0 and e.completion_tokens > 0
    assert out[1].model_calls == 30  # solo: one generator call per problem
    assert out[2].model_calls > 30  # self-refine: refiner calls on the problems that failed
    assert [len(r.trajectories) for r in runs] == [30, 30]
    assert runs[1].pass_rate == out[2].mean


def test_reuse_is_visible_in_the_backend_call_log(coder, sandbox, humaneval_subset, self_refine) -> None:
    ev = Evaluator({"qwen2.5-coder-1.5b": coder}, sandbox, seed=11)
    before = len(coder.calls)
    first = ev.evaluate(self_refine, humaneval_subset, repeats=1)
    one_repeat = len(coder.calls) - before
    assert one_repeat >= 1
    mark = len(coder.calls)
    ev.evaluate(self_refine.copy(key=42), humaneval_subset, repeats=1)
    assert len(coder.calls) == mark  # the identical genome made no backend call
    three = ev.evaluate(self_refine, humaneval_subset, repeats=3)
    new_calls = coder.calls[mark:]
    assert ev.pipeline_runs == 3  # repeat 0 once, then only repeats 1 and 2
    # repeats 1 and 2 ran as one stream: the generator's requests of both went out in one call
    assert new_calls[0].requests == 2 * len(humaneval_subset)
    assert all(c.requests <= 2 * len(humaneval_subset) for c in new_calls)
    assert three.new_evaluations == 24 and three.rests_on == 36
    assert three.pass_rates[0] == first.mean
