"""The runtime: plans, batched runs (one backend call per node step, one sandbox batch per executor
step), early stopping, selectors, feedback policy, determinism, trajectories, and the real transformers
path on a tiny model.

Runs use the synthetic coder against the real sandbox (one shared warm pool); one fault checker is
shared by the module, so each synthetic fault candidate runs once.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest

from neatpipe.bench import load_humaneval, load_mbpp
from neatpipe.bench.problem import Problem
from neatpipe.genome import GenomeError, NodeGene, PipelineGenome, Role, read_genome
from neatpipe.genome.fileio import genome_from_yaml
from neatpipe.genome.genes import OUTPUT, PROBLEM, ConnectionGene
from neatpipe.models import Backend, ChatRequest, Completion, CompletionCache, load_backend, make_tiny_model
from neatpipe.models.cache import CachedBackend
from neatpipe.runtime import (
    FORMAT,
    PipelineError,
    Trajectory,
    TrajectoryError,
    compile_plan,
    normalised_code,
    read_trajectories,
    request_seed,
    run_pipeline,
    write_trajectories,
)
from neatpipe.runtime.messages import parse_feedback
from neatpipe.synthetic import FaultChecker, SyntheticCoder

CODER = "qwen2.5-coder-1.5b"
LLAMA = "llama3.2-3b"


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


@pytest.fixture(scope="module")
def mbpp(mbpp_path):
    return load_mbpp(mbpp_path)


@pytest.fixture(scope="module")
def checker(sandbox):
    return FaultChecker(sandbox.run_many)


@pytest.fixture(scope="module")
def coder_factory(humaneval, mbpp, checker):
    def make(preset: str = "small-1.5b") -> SyntheticCoder:
        return SyntheticCoder(preset, [humaneval, mbpp], checker=checker)

    return make


def genome(name: str):
    return read_genome(f"genomes/{name}.yaml")


def pool(coder) -> dict[str, Backend]:
    return {CODER: coder, LLAMA: coder}


def without_timings(trajectories) -> list[dict]:
    """Trajectory dicts without the wall-time fields (the only fields a rerun may change)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "duration_s"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(t.to_dict()) for t in trajectories]


class CountingSandbox:
    """Delegates to the real sandbox and records the size of every ``run_many`` batch."""

    def __init__(self, sandbox) -> None:
        self.sandbox, self.batches = sandbox, []

    def run_many(self, programs, progress=None):
        programs = list(programs)
        self.batches.append(len(programs))
        return self.sandbox.run_many(programs, progress)


class Scripted(Backend):
    """Answers every request with the same fixed text; records the requests it saw."""

    kind = "scripted"

    def __init__(self, label: str, text: str) -> None:
        super().__init__(label)
        self.text, self.seen = text, []

    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        self.seen.extend(requests)
        return [Completion(self.text, 10, 5, "stop", 0.0) for _ in requests]

    def identity(self) -> str:
        return f"scripted:{self.label}"


def node(key: int, role: Role, **fields) -> NodeGene:
    defaults = {
        Role.GENERATOR: dict(model=CODER, prompt=0, temperature=0.0, max_tokens=256),
        Role.REFINER: dict(
            model=CODER, prompt=0, temperature=0.0, max_tokens=256, iterations=2, early_stop=True
        ),
        Role.ANALYZER: dict(model=CODER, prompt=0, temperature=0.0, max_tokens=128),
        Role.EXECUTOR: dict(feedback="visible", time_limit=5.0),
        Role.SELECTOR: dict(strategy="visible-tests"),
    }[role]
    return NodeGene(key=key, role=role, **{**defaults, **fields})


def build(nodes: list[NodeGene], edges: list[tuple[int, int]]) -> PipelineGenome:
    return PipelineGenome.from_genes(1, nodes, [ConnectionGene(e, i + 1) for i, e in enumerate(edges)])


# -- plans --------------------------------------------------------------------------------------------


def test_plan_runs_generators_first_and_folds_executor_and_analyzer_into_their_stage():
    loaded = genome("best-of-3-refine")
    plan = compile_plan(loaded.genome, loaded.names)
    assert [s.kind for s in plan.steps] == ["generate", "generate", "generate", "select", "stage"]
    select, stage = plan.steps[3], plan.steps[4]
    assert [plan.names[k] for k in select.inputs] == ["gen-a", "gen-b", "gen-c"]
    assert stage.inputs == (select.node,) and stage.executor_name == "exec" and stage.analyzer is None
    assert plan.output == stage.node and plan.models == (CODER,)

    loaded = genome("analyzer-stage")
    plan = compile_plan(loaded.genome, loaded.names)
    stage = plan.steps[-1]
    assert (stage.executor_name, stage.analyzer_name, stage.name) == ("exec", "analyze", "refine")
    assert [g.role for g in stage.model_genes] == [Role.ANALYZER, Role.REFINER]
    assert "exec -> analyze -> refine x2 early-stop (input gen)" in plan.describe()


def test_invalid_genome_raises_the_genome_error_with_its_problems():
    g = genome("self-refine").genome.copy()
    del g.connections[next(k for k in g.connections if k[1] == OUTPUT)]
    with pytest.raises(GenomeError) as err:
        compile_plan(g)
    assert any("output" in str(p) for p in err.value.problems)
    with pytest.raises(GenomeError):
        run_pipeline(g, [], {CODER: Scripted("x", "")}, sandbox=None)


def test_missing_model_or_bad_arguments_fail_before_anything_runs(humaneval):
    backend = Scripted("coder", "```python\npass\n```")

    class NoSandbox:
        def run_many(self, programs, progress=None):
            raise AssertionError("nothing may run")

    problems = humaneval.problems[:2]
    with pytest.raises(PipelineError) as err:
        run_pipeline(genome("cross-model"), problems, {CODER: backend, "other": backend}, NoSandbox())
    message = str(err.value)
    assert (
        "'llama3.2-3b' (used by refine)" in message and "the pool has: other, qwen2.5-coder-1.5b" in message
    )
    with pytest.raises(PipelineError, match="feedback must be"):
        run_pipeline(genome("solo"), problems, {CODER: backend}, NoSandbox(), feedback="oracle")
    with pytest.raises(PipelineError, match="appears twice"):
        run_pipeline(genome("solo"), [problems[0], problems[0]], {CODER: backend}, NoSandbox())
    with pytest.raises(PipelineError, match="seed"):
        run_pipeline(genome("solo"), problems, {CODER: backend}, NoSandbox(), seed=-1)
    assert backend.calls == ()


def test_request_seeds_depend_on_every_part():
    base = request_seed(0, "HumanEval/0", 3, 1)
    assert base == request_seed(0, "HumanEval/0", 3, 1)
    others = {
        request_seed(1, "HumanEval/0", 3, 1),
        request_seed(0, "HumanEval/1", 3, 1),
        request_seed(0, "HumanEval/0", 4, 1),
        request_seed(0, "HumanEval/0", 3, 2),
    }
    assert base not in others and len(others) == 4
    assert all(0 <= s < 2**63 for s in others)


# -- what pipelines do --------------------------------------------------------------------------------


def test_self_refine_beats_solo_by_a_wide_margin(humaneval, mbpp, coder_factory, sandbox):
    coder = coder_factory("small-1.5b")
    for problems, margin in ((humaneval.problems[:80], 0.12), (mbpp.problems[:60], 0.08)):
        solo = run_pipeline(genome("solo"), problems, pool(coder), sandbox)
        refine = run_pipeline(genome("self-refine"), problems, pool(coder), sandbox)
        assert refine.pass_rate >= solo.pass_rate + margin, (
            problems[0].benchmark,
            solo.passed,
            refine.passed,
        )
        # every problem solo solved has the same first candidate in self-refine (same request)
        for s, r in zip(solo.trajectories, refine.trajectories, strict=True):
            assert s.steps[0].code == r.steps[0].code and s.steps[0].text == r.steps[0].text
        assert refine.synthetic and all(t.synthetic for t in refine.trajectories)


def test_early_stopping_stops_at_a_pass_and_its_absence_shows_regressions(humaneval, coder_factory, sandbox):
    coder = coder_factory("small-1.5b")
    problems = humaneval.problems[:60]
    on = run_pipeline(genome("self-refine"), problems, pool(coder), sandbox)
    off = run_pipeline(genome("self-refine-no-early-stop"), problems, pool(coder), sandbox)

    for t in on.trajectories:
        (stage,) = t.stages
        its = stage.iterations
        assert stage.early_stop and [it.iter for it in its] == list(range(len(its)))
        assert 1 <= len(its) <= 4
        assert not any(it.visible_passed for it in its[:-1])  # the list ends at the first visible pass
        if len(its) < 4:
            assert its[-1].visible_passed
        assert t.passed == its[-1].passed  # the stage's last candidate is the output
        refines = [s for s in t.steps if s.role == "refiner"]
        assert len(refines) == len(its) - 1

    regressions = 0
    for t in off.trajectories:
        (stage,) = t.stages
        assert not stage.early_stop and len(stage.iterations) == 4
        assert [s.iteration for s in t.steps if s.role == "refiner"] == [1, 2, 3]
        assert [s.iteration for s in t.steps if s.role == "executor"] == [0, 1, 2, 3]
        regressions += sum(a.passed and not b.passed for a, b in itertools.pairwise(stage.iterations))
    assert regressions > 0
    assert on.pass_rate > off.pass_rate
    assert off.requests == len(problems) * 4 and on.requests < off.requests


def test_three_stage_genome_on_all_of_humaneval_makes_one_backend_call_per_node_step(
    humaneval, coder_factory, sandbox
):
    text = """
format: neatpipe-genome/1
nodes:
  gen: {role: generator, model: gen-model, prompt: 0, temperature: 0.4, max_tokens: 512}
  exec-a: {role: executor, feedback: visible, time_limit: 5.0}
  analyze-a: {role: analyzer, model: fix-model, prompt: 0, temperature: 0.2, max_tokens: 256}
  refine-a: {role: refiner, model: fix-model, prompt: 0, temperature: 0.2, max_tokens: 768, iterations: 2, early_stop: true}
  exec-b: {role: executor, feedback: visible, time_limit: 5.0}
  refine-b: {role: refiner, model: fix-model, prompt: 1, temperature: 0.3, max_tokens: 768, iterations: 2, early_stop: false}
edges:
  - [problem, gen]
  - [gen, exec-a]
  - [exec-a, analyze-a]
  - [exec-a, refine-a]
  - [analyze-a, refine-a]
  - [refine-a, exec-b]
  - [exec-b, refine-b]
  - [refine-b, output]
"""
    loaded = genome_from_yaml(text)
    gen_model, fix_model = coder_factory("small-1.5b"), coder_factory("general-3b")
    counting = CountingSandbox(sandbox)
    problems = humaneval.problems
    assert len(problems) == 164
    run = run_pipeline(loaded, problems, {"gen-model": gen_model, "fix-model": fix_model}, counting)

    # per (node, iteration): how many problems the step ran for, from the trajectories
    active: dict[tuple[str, int], int] = {}
    for t in run.trajectories:
        for s in t.steps:
            if s.model is not None:
                active[(s.node, s.iteration)] = active.get((s.node, s.iteration), 0) + 1
    gen_calls, fix_calls = gen_model.calls, fix_model.calls
    assert [c.requests for c in gen_calls] == [164]
    fix_steps = [(s.node, s.iteration) for s in run.steps if s.kind == "model" and s.node != "gen"]
    assert len(set(fix_steps)) == len(fix_steps) == len(active) - 1  # each node step called once
    assert [c.requests for c in fix_calls] == [active[k] for k in fix_steps]  # ... with every active problem
    assert fix_steps[:2] == [("analyze-a", 1), ("refine-a", 1)] and fix_steps[-2:] == [
        ("refine-b", 1),
        ("refine-b", 2),
    ]
    assert active[("refine-b", 1)] == active[("refine-b", 2)] == 164  # no early stop in stage b
    assert active[("analyze-a", 1)] == active[("refine-a", 1)] < 164  # early stop in stage a
    assert run.backend_calls == 1 + len(fix_calls) and run.requests == sum(active.values())

    # one sandbox batch per executor step at most, plus the final hidden-test batch
    exec_steps = {(s.node, s.iteration) for t in run.trajectories for s in t.steps if s.role == "executor"}
    assert len(counting.batches) == run.sandbox_batches <= len(exec_steps) + 1
    assert counting.batches[0] == 164 and sum(counting.batches) == run.programs_run

    for t in run.trajectories:
        a, b = t.stages
        assert (a.node, b.node) == ("refine-a", "refine-b") and len(b.iterations) == 3
        # stage b starts from stage a's output candidate
        assert b.iterations[0].passed == a.iterations[-1].passed
        analyses = [s for s in t.steps if s.role == "analyzer"]
        assert all("```" not in s.text for s in analyses)
    first = sum(t.stages[0].iterations[0].passed for t in run.trajectories)
    after_a = sum(t.stages[0].iterations[-1].passed for t in run.trajectories)
    assert after_a > first + 10  # the analyzer stage fixes code
    assert run.passed == sum(t.stages[1].iterations[-1].passed for t in run.trajectories)


def test_same_seed_same_trajectories_other_seed_other_samples(humaneval, coder_factory, sandbox, tmp_path):
    coder = coder_factory("coder-1.5b")
    problems = humaneval.problems[:30]
    g = genome("best-of-3-refine")  # generators sample at T = 0.7
    one = run_pipeline(g, problems, pool(coder), sandbox, seed=5)
    two = run_pipeline(g, problems, pool(coder), sandbox, seed=5)
    write_trajectories(tmp_path / "a.jsonl", one.trajectories)
    write_trajectories(tmp_path / "b.jsonl", two.trajectories)
    assert without_timings(read_trajectories(tmp_path / "a.jsonl")) == without_timings(
        read_trajectories(tmp_path / "b.jsonl")
    )
    other = run_pipeline(g, problems, pool(coder), sandbox, seed=6, repeat=1)
    texts = [[s.text for s in t.steps if s.role == "generator"] for t in one.trajectories]
    other_texts = [[s.text for s in t.steps if s.role == "generator"] for t in other.trajectories]
    assert sum(a != b for a, b in zip(texts, other_texts, strict=True)) >= 5
    assert {t.repeat for t in other.trajectories} == {1} and {t.seed for t in other.trajectories} == {6}

    # at temperature 0 the seed does not matter
    solo = genome("solo")
    solo.genome.nodes = {k: dataclasses.replace(n, temperature=0.0) for k, n in solo.genome.nodes.items()}
    a = run_pipeline(solo, problems, pool(coder), sandbox, seed=1)
    b = run_pipeline(solo, problems, pool(coder), sandbox, seed=2)
    assert [t.final.code for t in a.trajectories] == [t.final.code for t in b.trajectories]


def test_feedback_policy_is_applied_and_recorded(humaneval, sandbox):
    problem = humaneval["HumanEval/2"]
    wrong = "```python\ndef truncate_number(number: float) -> float:\n    return number\n```"
    coder = Scripted("coder", wrong)
    g = genome("self-refine")
    for policy, recorded, tests in (
        ("hidden", "hidden", problem.hidden_tests),
        ("visible", "visible", problem.visible_tests),
        (None, "genome", problem.visible_tests),
    ):
        coder.seen.clear()
        run = run_pipeline(g, [problem], {CODER: coder}, sandbox, feedback=policy)
        (t,) = run.trajectories
        assert run.feedback == t.feedback == recorded
        source = "hidden" if policy == "hidden" else "visible"
        assert t.stages[0].feedback == source
        executors = [s for s in t.steps if s.role == "executor"]
        assert len(executors) == 4 and all(s.feedback_result.source == source for s in executors)
        assert all(s.feedback_result.tests_total == len(tests) for s in executors)
        refiner_requests = coder.seen[1:]
        assert len(refiner_requests) == 3
        label = "hidden tests" if source == "hidden" else "visible example tests"
        assert all(parse_feedback(r.messages[-1].content).source == label for r in refiner_requests)
        assert not t.passed and t.final.error_type == "AssertionError"


def test_trajectories_record_the_cpu_time_limits_their_verdicts_ran_under(humaneval, sandbox, tmp_path):
    problem = dataclasses.replace(humaneval["HumanEval/2"], time_limit_s=1.25)  # as with_time_limits sets it
    loop = "```python\ndef truncate_number(number: float) -> float:\n    while True:\n        pass\n```"
    g = genome_from_yaml(
        "format: neatpipe-genome/1\nnodes:\n"
        "  gen: {role: generator, model: m, prompt: 0, temperature: 0.0, max_tokens: 256}\n"
        "  exec: {role: executor, feedback: visible, time_limit: 0.5}\n"
        "  refine: {role: refiner, model: m, prompt: 0, temperature: 0.0, max_tokens: 256, iterations: 1,"
        " early_stop: true}\n"
        "edges: [[problem, gen], [gen, exec], [exec, refine], [refine, output]]\n"
    )
    run = run_pipeline(g, [problem], {"m": Scripted("coder", loop)}, sandbox)
    (t,) = run.trajectories
    checks = [s.feedback_result for s in t.steps if s.role == "executor"]
    assert checks and all((c.status, c.time_limit_s) == ("timeout", 0.5) for c in checks)
    assert (t.final.status, t.final.time_limit_s) == ("timeout", 1.25)
    write_trajectories(tmp_path / "t.jsonl", [t])
    (back,) = read_trajectories(tmp_path / "t.jsonl")
    assert back == t and back.final.time_limit_s == 1.25
    old = t.to_dict()
    del old["final"]["time_limit_s"]  # a file written before limits were recorded still reads
    assert Trajectory.from_dict(old).final.time_limit_s is None


def test_problem_without_visible_tests_passes_its_check_once_the_code_loads(humaneval, sandbox):
    problem = humaneval["HumanEval/38"]
    assert problem.visible_tests == ()
    stub = f"```python\ndef {problem.entry_point}(s: str):\n    return s\n```"
    run = run_pipeline(genome("self-refine"), [problem], {CODER: Scripted("c", stub)}, sandbox)
    (t,) = run.trajectories
    (check,) = [s for s in t.steps if s.role == "executor"]
    assert check.feedback_result.status == "passed" and check.feedback_result.tests_total == 0
    assert t.stages[0].iterations[0].visible_passed and not t.stages[0].iterations[0].passed
    assert not t.passed and run.requests == 1  # the stage stopped: nothing to refine against

    broken = "```python\ndef decode_cyclic(s: str)\n    return s\n```"
    run = run_pipeline(genome("self-refine"), [problem], {CODER: Scripted("c", broken)}, sandbox)
    (t,) = run.trajectories
    assert [it.visible_passed for it in t.stages[0].iterations] == [False] * 4
    assert t.final.error_type == "SyntaxError" and run.requests == 4


# -- selectors ----------------------------------------------------------------------------------------


def _add_problem() -> Problem:
    return Problem(
        task_id="toy/add",
        benchmark="mbpp",
        prompt="Write a function add(a, b) that returns the sum of two numbers.",
        entry_point="add",
        context="",
        signature="def add(a, b):",
        visible_tests=("assert add(1, 2) == 3", "assert add(0, 0) == 0"),
        hidden_tests=("assert add(2, 2) == 4", "assert add(-1, 1) == 0"),
        test_setup="",
        reference_solution="def add(a, b):\n    return a + b\n",
    )


def _best_of(answers: list[str], strategy: str, sandbox) -> str:
    """The code a selector over one generator per answer picks."""
    n = len(answers)
    nodes = [node(i + 1, Role.GENERATOR, model=f"m{i}") for i in range(n)]
    nodes.append(node(n + 1, Role.SELECTOR, strategy=strategy))
    edges = [(PROBLEM, i + 1) for i in range(n)] + [(i + 1, n + 1) for i in range(n)] + [(n + 1, OUTPUT)]
    models = {f"m{i}": Scripted(f"m{i}", f"```python\n{a}\n```") for i, a in enumerate(answers)}
    run = run_pipeline(build(nodes, edges), [_add_problem()], models, sandbox)
    (t,) = run.trajectories
    (sel,) = [s for s in t.steps if s.role == "selector"]
    assert sel.code == t.final.code and sel.selected in {f"gen-{i + 1}" for i in range(n)}
    return t.final.code


def test_selector_prefers_tests_then_agreement_then_shortest_whatever_the_input_order(sandbox):
    wrong = "def add(a, b):\n    return a - b"
    plain = "def add(a, b):\n    return a + b"
    commented = 'def add(a, b):\n    """Sum."""\n    # the sum\n    return a + b'  # same AST as plain
    short = "def add(x, y): return y + x"  # shortest, agrees with nobody
    for order in itertools.permutations([wrong, plain, commented, short]):
        assert _best_of(list(order), "visible-tests", sandbox).strip() == plain
    # tests outrank agreement: two agreeing wrong answers lose to one right one
    for order in itertools.permutations([wrong, wrong + "\n", short]):
        assert _best_of(list(order), "visible-tests", sandbox).strip() == short
        assert _best_of(list(order), "agreement", sandbox).strip() == wrong


def test_normalised_code_ignores_formatting_comments_and_docstrings():
    a = 'def f(x):\n    """Doc."""\n    # note\n    return x+1\n'
    b = "def f(x):\n\n    return (x + 1)\n"
    assert normalised_code(a) == normalised_code(b)
    assert normalised_code(a) != normalised_code("def f(x):\n    return x + 2\n")
    assert normalised_code("def f(:\n  pass  \n\n") == "def f(:\n  pass"


# -- cost accounting and the cache ----------------------------------------------------------------------


def test_cache_serves_a_rerun_without_changing_scores_or_token_counts(
    humaneval, coder_factory, sandbox, tmp_path
):
    cached = CachedBackend(coder_factory("small-1.5b"), CompletionCache(tmp_path / "cache.sqlite"))
    problems = humaneval.problems[:20]
    first = run_pipeline(genome("self-refine"), problems, pool(cached), sandbox)
    second = run_pipeline(genome("self-refine"), problems, pool(cached), sandbox)
    assert first.cache_hits == 0 and first.model_calls == first.requests
    assert second.cache_hits == second.requests and second.model_calls == 0
    assert (second.prompt_tokens, second.completion_tokens) == (first.prompt_tokens, first.completion_tokens)
    assert second.synthetic  # seen through the cache wrapper
    strip = [
        {**d, "steps": [{**s, "cached": None} for s in d["steps"]]}
        for d in without_timings(first.trajectories)
    ]
    strip2 = [
        {**d, "steps": [{**s, "cached": None} for s in d["steps"]]}
        for d in without_timings(second.trajectories)
    ]
    assert strip == strip2
    assert all(s.cached for t in second.trajectories for s in t.steps if s.model)
    assert sum(t.model_calls for t in first.trajectories) == first.requests
    assert sum(t.prompt_tokens for t in first.trajectories) == first.prompt_tokens
    model_steps = [s for s in first.steps if s.kind == "model"]
    assert [s.requests for s in model_steps] == [c.requests for c in cached.calls[: len(model_steps)]]


def test_progress_reports_each_plan_step_and_the_scoring(humaneval, coder_factory, sandbox):
    seen = []
    run_pipeline(
        genome("analyzer-stage"),
        humaneval.problems[:3],
        pool(coder_factory()),
        sandbox,
        progress=lambda label, done, total: seen.append((label, done, total)),
    )
    assert seen == [("gen", 1, 3), ("refine", 2, 3), ("hidden tests", 3, 3)]


def test_an_empty_batch_runs_nothing(sandbox):
    backend = Scripted("c", "")
    run = run_pipeline(genome("self-refine"), [], {CODER: backend}, sandbox)
    assert run.total == 0 and run.pass_rate == 0.0 and backend.calls == () and run.sandbox_batches == 0


# -- trajectory files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def some_trajectories(humaneval, coder_factory, sandbox):
    run = run_pipeline(
        genome("best-of-3-refine"), humaneval.problems[:6], pool(coder_factory()), sandbox, label="bo3"
    )
    return run.trajectories


def test_trajectories_round_trip_through_jsonl(some_trajectories, tmp_path):
    path = write_trajectories(tmp_path / "t.jsonl", some_trajectories)
    lines = path.read_text().splitlines()
    assert len(lines) == len(some_trajectories)
    first = json.loads(lines[0])
    assert first["format"] == FORMAT and first["label"] == "bo3" and first["synthetic"] is True
    assert list(first)[:3] == ["format", "task_id", "benchmark"]
    selector = next(s for s in first["steps"] if s["role"] == "selector")
    assert selector["selected"] in {"gen-a", "gen-b", "gen-c"}
    back = read_trajectories(path)
    assert back == some_trajectories
    assert [Trajectory.from_dict(t.to_dict()) for t in back] == some_trajectories


def test_bad_trajectory_files_name_the_file_line_and_field(some_trajectories, tmp_path):
    good = some_trajectories[0].to_dict()
    path = tmp_path / "bad.jsonl"

    def fails(lines: list[str], *needles: str) -> None:
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(TrajectoryError) as err:
            read_trajectories(path)
        for needle in needles:
            assert needle in str(err.value), str(err.value)

    ok = json.dumps(good)
    fails([ok, "{not json"], f"{path}:2: not valid JSON")
    fails(
        [ok, "", json.dumps({k: v for k, v in good.items() if k != "steps"})],
        f"{path}:3:",
        "missing field 'steps'",
    )
    fails([json.dumps({**good, "format": "other/1"})], ":1:", "'format'", "neatpipe-trajectory/1")
    fails([json.dumps({**good, "passed": "yes"})], "field 'passed': expected true or false, got str")
    bad_step = {**good["steps"][0], "role": "oracle"}
    fails([json.dumps({**good, "steps": [bad_step]})], "steps[0].role", "'oracle'")
    bad_iter = dict(good)
    bad_iter["stages"] = [{**good["stages"][0], "iterations": [{"iter": 0, "passed": True}]}]
    fails([json.dumps(bad_iter)], "missing field 'stages[0].iterations[0].error_type'")
    fails(["[1, 2]"], ":1:", "expected a JSON object, got list")
    with pytest.raises(TrajectoryError, match="cannot read"):
        read_trajectories(tmp_path / "missing.jsonl")


def test_writing_is_atomic(some_trajectories, tmp_path):
    path = write_trajectories(tmp_path / "t.jsonl", some_trajectories[:2])
    before = path.read_text()
    with pytest.raises(TypeError):
        write_trajectories(path, [some_trajectories[0], {"task_id": "x"}])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]


# -- the real transformers path -----------------------------------------------------------------------


def test_tiny_model_runs_end_to_end_through_transformers(humaneval, sandbox, tmp_path):
    path = make_tiny_model(tmp_path / "tiny", arch="qwen2", seed=3).path
    backend = load_backend({"spec": f"hf:{path}", "device": "cpu", "dtype": "float32"})
    try:
        g = genome("analyzer-stage")
        g.genome.nodes = {
            k: dataclasses.replace(n, max_tokens=12) if n.max_tokens else n for k, n in g.genome.nodes.items()
        }
        problems = humaneval.problems[:3]
        run = run_pipeline(g, problems, {LLAMA: backend}, sandbox, feedback="visible", seed=1)
    finally:
        backend.close()
    assert not run.synthetic and run.total == 3
    # random weights never pass: 1 generate + 2 x (analyze + refine) calls of 3 requests each
    assert [c.requests for c in backend.calls] == [3, 3, 3, 3, 3]
    assert run.completion_tokens > 0 and all(0 < c.completion_tokens <= 36 for c in backend.calls)
    for t in run.trajectories:
        assert [s.role for s in t.steps] == [
            "generator",
            *["executor", "analyzer", "refiner"] * 2,
            "executor",
        ]
        assert t.models == {LLAMA: backend.label} and not t.passed
