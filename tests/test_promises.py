"""Promises that a score rests on, each guarded by a test that fails when the promise breaks.

* A ``visible-tests`` selector never runs the hidden tests: they run only in the final scoring.
* The result store never answers for another model identity, nor for a problem whose tests changed.
* Racing bounds include the complexity penalty, so the genome with the best fitness is never dropped.
* An executor's ``time_limit`` reaches every program it runs (the sandbox request carries it).
* The penalty cap bounds the token part too; a per-token penalty is per problem evaluation, repeats
  included.
* A trajectory line with several refine stages is analysed on its last stage.

Pipelines run with scripted backends (fixed answers) on a toy problem whose visible and hidden tests
differ, against the real sandbox; evaluator promises use a test-double runner.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_evolve_evaluator import FakeRun, FakeTrajectory

from neatpipe.analysis import load_trajectories, regression_table, transition_table
from neatpipe.analysis.iterations import Attempt, neatpipe_sets_from_records
from neatpipe.bench import Problem, ProblemSet
from neatpipe.evolution import Evaluator, Penalty, Racing, ResultStore
from neatpipe.genome import PipelineGenome, load_genome
from neatpipe.genome.fileio import LoadedGenome, genome_from_yaml
from neatpipe.models import Backend, ChatRequest, Completion
from neatpipe.runtime import run_pipeline, write_trajectories

GENOMES = Path(__file__).resolve().parents[1] / "genomes"

VISIBLE = ("assert add(1, 2) == 3",)
HIDDEN = ("assert add(2, 2) == 4", "assert add(-1, 1) == 0")
RIGHT = "def add(a, b):\n    return a + b"
# passes the visible test only / the hidden tests only
VISIBLE_ONLY = "def add(a, b):\n    return 3 if (a, b) == (1, 2) else 0"
HIDDEN_ONLY = "def add(a, b):\n    return 0 if (a, b) == (1, 2) else a + b"
NAME_ERROR = "def add(a, b):\n    return a + c"
WRONG = "def add(a, b):\n    return a - b"


def add_problem() -> Problem:
    return Problem(
        task_id="toy/add",
        benchmark="mbpp",
        prompt="Write a function add(a, b) that returns the sum of two numbers.",
        entry_point="add",
        context="",
        signature="def add(a, b):",
        visible_tests=VISIBLE,
        hidden_tests=HIDDEN,
        test_setup="",
        reference_solution=RIGHT + "\n",
    )


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


class Scripted(Backend):
    """Answers the k-th ``generate`` call with ``answers[k]`` (the last one again after the end)."""

    kind = "scripted"

    def __init__(self, label: str, *answers: str) -> None:
        super().__init__(label)
        self.answers = [fenced(a) for a in answers]

    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        text = self.answers[min(len(self.calls), len(self.answers) - 1)]
        return [Completion(text, 10, 5, "stop", 0.0) for _ in requests]

    def identity(self) -> str:
        return f"scripted:{self.label}"


class StepRecorder:
    """A sandbox that runs programs on the real one and records each program with the plan step it
    was asked for in: ``progress`` moves to the next step (index ``len(plan.steps)`` is the scoring)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.step = 0
        self.programs: list[tuple[int, Any]] = []

    def run_many(self, programs: Any, progress: Any = None) -> list[Any]:
        programs = list(programs)
        self.programs += [(self.step, p) for p in programs]
        return self.sandbox.run_many(programs, progress)

    def progress(self, name: str, done: int, total: int) -> None:
        self.step = done

    def at(self, step: int) -> list[Any]:
        return [p for s, p in self.programs if s == step]


def sources_of(program: Any) -> set[str]:
    return {t.source for t in program.tests}


# -- a visible-tests selector never runs the hidden tests ---------------------------------------------

SELECT_TWO = """
format: neatpipe-genome/1
nodes:
  gen-a: {role: generator, model: a, prompt: 0, temperature: 0.0, max_tokens: 64}
  gen-b: {role: generator, model: b, prompt: 0, temperature: 0.0, max_tokens: 64}
  pick: {role: selector, strategy: visible-tests}
edges: [[problem, gen-a], [problem, gen-b], [gen-a, pick], [gen-b, pick], [pick, output]]
"""


@pytest.mark.parametrize("feedback", ["visible", "hidden", None])
def test_visible_tests_selector_never_runs_hidden_tests_before_scoring(sandbox, feedback) -> None:
    problem = add_problem()
    recorder = StepRecorder(sandbox)
    # gen-a's answer passes only the hidden tests, gen-b's only the visible one: a selector that saw
    # hidden verdicts would pick gen-a
    models = {"a": Scripted("a", HIDDEN_ONLY), "b": Scripted("b", VISIBLE_ONLY)}
    loaded = genome_from_yaml(SELECT_TWO)
    run = run_pipeline(loaded, [problem], models, recorder, feedback=feedback, progress=recorder.progress)

    scoring = len(run.plan.steps)
    assert [s.kind for s in run.plan.steps] == ["generate", "generate", "select"]
    selector_programs = recorder.at(2)
    assert len(selector_programs) == 2  # both candidates ran, on the visible tests only
    assert all(sources_of(p) == set(VISIBLE) for p in selector_programs)
    before = [p for s, p in recorder.programs if s < scoring]
    assert before == selector_programs
    assert all(sources_of(p) == set(HIDDEN) for p in recorder.at(scoring))

    (t,) = run.trajectories
    (sel,) = [s for s in t.steps if s.role == "selector"]
    assert sel.selected == "gen-b" and t.final.code.strip() == VISIBLE_ONLY
    assert sel.feedback_result.source == "visible" and sel.feedback_result.tests_total == len(VISIBLE)
    assert not t.passed  # the hidden tests, run at scoring, fail the visible-only answer


# -- an executor's time limit reaches every program it runs ----------------------------------------------

TWO_STAGES = """
format: neatpipe-genome/1
nodes:
  gen: {{role: generator, model: coder, prompt: 0, temperature: 0.0, max_tokens: 64}}
  exec-a: {{role: executor, feedback: visible, time_limit: {a}}}
  refine-a: {{role: refiner, model: coder, prompt: 0, temperature: 0.0, max_tokens: 64, iterations: {ia}, early_stop: {ea}}}
  exec-b: {{role: executor, feedback: visible, time_limit: {b}}}
  refine-b: {{role: refiner, model: coder, prompt: 0, temperature: 0.0, max_tokens: 64, iterations: {ib}, early_stop: {eb}}}
edges:
  - [problem, gen]
  - [gen, exec-a]
  - [exec-a, refine-a]
  - [refine-a, exec-b]
  - [exec-b, refine-b]
  - [refine-b, output]
"""


def two_stages(
    a: float = 5.0, b: float = 5.0, ia: int = 1, ea: str = "true", ib: int = 1, eb: str = "false"
) -> LoadedGenome:
    """gen -> stage a -> stage b: executor time limits, iterations and early stopping of each."""
    return genome_from_yaml(TWO_STAGES.format(a=a, b=b, ia=ia, ea=ea, ib=ib, eb=eb))


@pytest.mark.parametrize("feedback", ["visible", "hidden"])
def test_executor_time_limit_reaches_every_program_it_runs(sandbox, feedback) -> None:
    """Two stages whose executors have different limits check the same code (the refiner always gives
    it back): each stage's programs carry its own executor's limit, and scoring the problem's."""
    problem = add_problem()
    assert problem.time_limit_s not in (2.5, 7.0)
    loaded = two_stages(a=2.5, b=7.0, ia=2, ea="false", ib=1)
    recorder = StepRecorder(sandbox)
    coder = Scripted("coder", WRONG)
    run = run_pipeline(
        loaded, [problem], {"coder": coder}, recorder, feedback=feedback, progress=recorder.progress
    )

    names = [s.name for s in run.plan.steps]
    assert names == ["gen", "refine-a", "refine-b"]
    tests = set(VISIBLE) if feedback == "visible" else set(HIDDEN)
    assert recorder.at(0) == []
    for step, limit in ((1, 2.5), (2, 7.0)):
        programs = recorder.at(step)
        assert programs, f"stage {names[step]} ran no program with its own limit"
        assert [p.timeout_s for p in programs] == [limit] * len(programs)
        assert all(sources_of(p) == tests for p in programs)
    scoring = recorder.at(len(names))
    assert scoring and all(p.timeout_s == problem.time_limit_s for p in scoring)
    (t,) = run.trajectories
    checks = [(s.node, s.iteration) for s in t.steps if s.role == "executor"]
    assert checks == [("exec-a", 0), ("exec-a", 1), ("exec-a", 2), ("exec-b", 0), ("exec-b", 1)]


# -- a multi-stage line is analysed on its last stage ------------------------------------------------------


def test_multi_stage_line_is_analysed_on_its_last_stage(sandbox, tmp_path) -> None:
    """Stage a fixes a NameError; stage b (no early stop) breaks the fixed code. The analysis sees
    stage b: passed -> AssertionError, one regression, never stage a's NameError -> passed."""
    loaded = two_stages(ia=1, ea="true", ib=1, eb="false")
    coder = Scripted("coder", NAME_ERROR, RIGHT, WRONG)  # generate, refine-a, refine-b
    run = run_pipeline(loaded, [add_problem()], {"coder": coder}, sandbox, label="two-stage")
    (t,) = run.trajectories
    a, b = t.stages
    assert (a.node, b.node) == ("refine-a", "refine-b")
    assert [(i.passed, i.error_type) for i in a.iterations] == [(False, "NameError"), (True, None)]
    assert [(i.passed, i.error_type) for i in b.iterations] == [(True, None), (False, "AssertionError")]
    assert not t.passed

    path = write_trajectories(tmp_path / "two-stage.jsonl", run.trajectories)
    from_file = load_trajectories(path)["two-stage"].trajectories
    in_memory = neatpipe_sets_from_records([("run", t.to_dict())])["two-stage"].trajectories
    for trajs in (from_file, in_memory):
        (traj,) = trajs
        assert traj.steps == (Attempt(0, True, None, True), Attempt(1, False, "AssertionError", False))
        assert traj.early_stop is False and traj.final_passed is False
        assert transition_table(trajs).counts == {("passed", "AssertionError"): 1}
        assert regression_table(trajs).broke == 1

    # with the stages' early stopping swapped, the line reports the last stage's setting
    swapped = two_stages(ia=1, ea="false", ib=1, eb="true")
    run = run_pipeline(swapped, [add_problem()], {"coder": Scripted("c", RIGHT)}, sandbox, label="s")
    (traj,) = neatpipe_sets_from_records([("run", run.trajectories[0].to_dict())])["s"].trajectories
    assert traj.early_stop is True and traj.steps == (Attempt(0, True, None, True),)


# -- the result store never answers for another model or for changed tests ---------------------------------


class Named(Backend):
    """A backend known only by its identity (the test runner never calls it)."""

    kind = "named"

    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        raise AssertionError("the test runner does not call models")

    def identity(self) -> str:
        return self.label


class Runner:
    """Stands in for ``run_pipelines``: ``verdict(models, genome_hash, problem, repeat)`` decides each
    problem and ``tokens(genome_hash, repeat)`` its tokens (half prompt, half completion); every call is recorded."""

    def __init__(self, verdict: Any = None, tokens: Any = None) -> None:
        self.verdict = verdict or (lambda *a: True)
        self.tokens = tokens or (lambda h, repeat: 100)
        self.calls: list[tuple[str, tuple[str, ...], int]] = []

    def __call__(self, jobs, models, sandbox, *, on_run=None, stats=None):
        out = []
        for i, job in enumerate(jobs):
            h, repeat = job.genome.behaviour_hash(), job.repeat
            self.calls.append((h, tuple(p.task_id for p in job.problems), repeat))
            out.append(
                FakeRun(
                    [
                        FakeTrajectory(
                            p.task_id,
                            bool(self.verdict(models, h, p, repeat)),
                            prompt_tokens=self.tokens(h, repeat) // 2,
                            completion_tokens=self.tokens(h, repeat) - self.tokens(h, repeat) // 2,
                        )
                        for p in job.problems
                    ]
                )
            )
            if on_run is not None:
                on_run(i, out[-1])
        return out

    @property
    def problems_run(self) -> list[str]:
        return [t for c in self.calls for t in c[1]]


def toy_problems(n: int) -> ProblemSet:
    return ProblemSet(
        "toy",
        tuple(
            Problem(
                task_id=f"Toy/{i}",
                benchmark="toy",
                prompt=f"problem {i}",
                entry_point="f",
                context="",
                signature="def f():",
                visible_tests=(f"assert f() == {i}",),
                hidden_tests=(f"assert f() == {i}", f"assert f() != {i + 1}"),
                test_setup="",
                reference_solution=f"def f():\n    return {i}\n",
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


def test_result_store_never_answers_for_another_model_identity(tmp_path, solo) -> None:
    path = tmp_path / "results.sqlite"
    problems = toy_problems(6)

    def verdict(models, h, problem, repeat):  # the new revision solves everything, the old nothing
        return models["qwen2.5-coder-1.5b"].identity() == "coder@rev2"

    def evaluate(identity: str) -> tuple[Runner, Any]:
        runner = Runner(verdict)
        models = {"qwen2.5-coder-1.5b": Named(identity)}
        with ResultStore(path) as store:
            ev = Evaluator(models, None, runner=runner, result_cache=store).evaluate(solo, problems)
        return runner, ev

    first_runner, first = evaluate("coder@rev1")
    assert len(first_runner.problems_run) == 6 and first.mean == 0.0
    same_runner, same = evaluate("coder@rev1")  # the store does answer for the same model
    assert same_runner.calls == [] and same.reused == 6
    other_runner, other = evaluate("coder@rev2")  # same pool name, another model
    assert len(other_runner.problems_run) == 6 and other.new_evaluations == 6
    assert other.mean == 1.0
    back_runner, back = evaluate("coder@rev1")  # both are kept apart, not overwritten
    assert back_runner.calls == [] and back.mean == 0.0


@pytest.mark.parametrize("in_file", [False, True])
def test_result_store_never_answers_for_a_problem_whose_tests_changed(tmp_path, solo, in_file) -> None:
    store = ResultStore(tmp_path / "results.sqlite" if in_file else None)
    problems = list(toy_problems(5))
    models = {"qwen2.5-coder-1.5b": Named("coder@rev1")}

    def evaluate(ps: list[Problem]) -> Runner:
        runner = Runner()
        Evaluator(models, None, runner=runner, result_cache=store).evaluate(solo, ps)
        return runner

    assert len(evaluate(problems).problems_run) == 5
    assert evaluate(problems).calls == []
    changed = list(problems)
    changed[1] = replace(problems[1], hidden_tests=(*problems[1].hidden_tests[:1], "assert f() > 0"))
    changed[2] = replace(problems[2], visible_tests=("assert f() == 99",))
    changed[3] = replace(problems[3], test_setup="import math")
    changed[4] = replace(problems[4], hidden_tests=problems[4].hidden_tests[:1])  # a test removed
    assert sorted(evaluate(changed).problems_run) == ["Toy/1", "Toy/2", "Toy/3", "Toy/4"]
    assert evaluate(problems).calls == []  # the results for the original tests are still there
    store.close()


# -- racing bounds include the penalty ------------------------------------------------------------------


def by_index(rates: dict[str, int]):
    """Genome ``h`` passes problem ``Toy/i`` when ``i % 20 < rates[h]``: every 20-problem block has
    exactly ``rates[h]`` passes, so a slice of 40 or 80 has the exact rate."""
    return lambda models, h, problem, repeat: int(problem.task_id.split("/")[1]) % 20 < rates[h]


def variant(base: PipelineGenome, temperature: float, key: int) -> PipelineGenome:
    nodes = [
        replace(g, temperature=temperature) if g.temperature is not None else g for g in base.nodes.values()
    ]
    return PipelineGenome.from_genes(key, nodes, base.connections.values(), description=f"{key}")


def test_racing_bounds_include_the_penalty_so_the_best_fitness_is_never_dropped(solo, self_refine) -> None:
    """Without the penalty in the bounds the large genome's pass rate (0.95) would set a threshold the
    small one (0.6) cannot reach, though the small one has the better fitness (0.35 against 0.2)."""
    small, large, poor = variant(solo, 0.3, 1), variant(self_refine, 0.3, 2), variant(solo, 0.9, 3)
    rates = {small.behaviour_hash(): 12, large.behaviour_hash(): 19, poor.behaviour_hash(): 2}
    ev = Evaluator({}, None, runner=Runner(by_index(rates)), penalty=Penalty(per_node=0.25))
    out = ev.evaluate_population(
        [(1, small), (2, large), (3, poor)], toy_problems(80), racing=Racing(first=40, shuffle=False)
    )
    assert (out[1].penalty, out[2].penalty) == (pytest.approx(0.25), pytest.approx(0.75))
    assert out[1].mean == pytest.approx(0.6) and out[2].mean == pytest.approx(0.95)
    assert max(out, key=lambda k: out[k].fitness) == 1
    assert len(out[1].problems) == 80 and len(out[2].problems) == 80  # both could still be best
    assert [r.dropped for r in ev.last_race] == [(poor.behaviour_hash(),), ()]  # the race does drop
    assert len(out[3].problems) == 40


# (passes per 20 problems, tokens per problem) of each genome
RACERS = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 1000)), min_size=2, max_size=5)


@settings(max_examples=80, deadline=None)
@given(
    genomes=RACERS,
    first=st.integers(2, 20),
    bound=st.sampled_from(["wilson", "hoeffding"]),
    top_k=st.integers(1, 2),
)
# a pass rate of 1.0 at 0.6 penalty next to 0.5 at none: without the penalty the better one is dropped
@example(genomes=[(10, 0), (20, 600)], first=20, bound="wilson", top_k=1)
def test_racing_never_drops_the_genome_with_the_best_current_fitness(
    solo, genomes, first, bound, top_k
) -> None:
    """Under a token penalty that differs per genome: in every round, the genomes with the highest
    fitness on that round's slice are not among the dropped."""
    pairs = [(i, variant(solo, round(0.05 * (i + 1), 2), i)) for i in range(len(genomes))]
    hashes = [g.behaviour_hash() for _, g in pairs]
    rates = dict(zip(hashes, [r for r, _ in genomes], strict=True))
    tokens = dict(zip(hashes, [t for _, t in genomes], strict=True))
    runner = Runner(by_index(rates), lambda h, repeat: tokens[h])
    ev = Evaluator({}, None, runner=runner, penalty=Penalty(per_1k_tokens=1.0))
    ev.evaluate_population(
        pairs, toy_problems(40), racing=Racing(first=first, shuffle=False, bound=bound, top_k=top_k)
    )
    alive = set(hashes)
    for rnd in ev.last_race:
        fitness = {
            h: sum(i % 20 < rates[h] for i in range(rnd.problems)) / rnd.problems - tokens[h] / 1000
            for h in alive
        }
        best = max(fitness.values())
        assert not {h for h in alive if fitness[h] >= best - 1e-12} & set(rnd.dropped)
        alive -= set(rnd.dropped)


# -- the penalty cap and the per-token penalty --------------------------------------------------------------


def test_penalty_cap_bounds_the_token_part_too(self_refine) -> None:
    capped = Penalty(per_node=0.02, per_1k_tokens=1.0, cap=0.3)
    assert capped.value(self_refine, 0) == pytest.approx(0.06)
    assert capped.value(self_refine, 100) == pytest.approx(0.16)
    assert capped.value(self_refine, 10_000) == 0.3
    assert Penalty(per_1k_tokens=1.0, cap=0.3).value(self_refine, 10_000) == 0.3
    # through the evaluator: a pipeline that spends 50k tokens per problem still scores >= -cap
    runner = Runner(lambda *a: False, lambda h, repeat: 50_000)
    e = Evaluator({}, None, runner=runner, penalty=capped).evaluate(self_refine, toy_problems(4))
    assert e.penalty == 0.3 and e.fitness == pytest.approx(-0.3)


def test_per_token_penalty_is_per_problem_evaluation_with_repeats(solo) -> None:
    """Repeat r spends 100 * (2r + 1) tokens per problem: 100, then 300, so the mean per problem
    evaluation is 200 over 4 problems x 2 repeats (not per problem: 400; nor the first repeat: 100),
    whether the results were run now or reused."""
    runner = Runner(tokens=lambda h, repeat: 100 * (2 * repeat + 1))
    ev = Evaluator({}, None, runner=runner, penalty=Penalty.of("token", 0.1), repeats=2)
    problems = toy_problems(4)
    one = ev.evaluate(solo, problems, repeats=1)
    assert one.tokens_per_problem == 100 and one.penalty == pytest.approx(0.01)
    two = ev.evaluate(solo, problems, repeats=2)
    assert two.rests_on == 8 and two.reused == 4 and two.new_evaluations == 4
    assert two.tokens_per_problem == 200 and two.penalty == pytest.approx(0.02)
    assert two.fitness == pytest.approx(1.0 - 0.02)
    fresh = Evaluator({}, None, runner=Runner(tokens=runner.tokens), penalty=Penalty.of("token", 0.1))
    assert fresh.evaluate(solo, problems, repeats=2).penalty == pytest.approx(0.02)
