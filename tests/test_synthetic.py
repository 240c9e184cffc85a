"""The synthetic coder: real faults with the intended error types, calibrated pass and repair rates,
regressions, determinism, and clear handling of what it does not know.

Every program here really runs in the sandbox; one fault checker is shared by the whole module, so each
fault candidate runs once. The parts have their own tests: presets and calibration
(test_synthetic_presets.py), the fault maker (test_synthetic_faults.py), the checker
(test_synthetic_checker.py) and message reading (test_synthetic_messages.py).
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from neatpipe.bench import assemble, extract_code, load_humaneval, load_mbpp, reference_answer
from neatpipe.models import ChatRequest, SpecError, parse_spec
from neatpipe.runtime.messages import analyzer_messages, generator_messages, refiner_messages
from neatpipe.sandbox.program import ExecResult, Status
from neatpipe.synthetic import (
    ERROR_KINDS,
    ERROR_TYPES,
    OUTCOME_ANALYSIS,
    OUTCOME_CORRECT,
    OUTCOME_FAULT,
    OUTCOME_NON_ANSWER,
    OUTCOME_UNCHANGED,
    PRESETS,
    FaultChecker,
    FaultWeights,
    SyntheticCoder,
    SyntheticPreset,
    estimate_tokens,
    load_synthetic,
)

# First-attempt pass rates over the 164 HumanEval problems at temperature 0 must be this close to the
# preset's target (about 1.3 standard deviations of a binomial count at p = 0.5, in rate units).
PASS_RATE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


@pytest.fixture(scope="module")
def mbpp_some(mbpp_path):
    problems = load_mbpp(mbpp_path)
    return problems.select(problems.task_ids[::5])  # 86 problems across the file


@pytest.fixture(scope="module")
def checker(sandbox):
    return FaultChecker(sandbox.run_many)


def coder(preset, problems, checker) -> SyntheticCoder:
    return SyntheticCoder(preset, problems, checker=checker)


def only(kind: str) -> SyntheticPreset:
    """A preset that almost never succeeds first and makes faults of one kind only."""
    weights = {k: 1.0 if k == kind else 0.0 for k in ERROR_KINDS}
    return replace(
        PRESETS["general-3b"], name=f"only-{kind}", first_pass=0.01, faults=FaultWeights(**weights)
    )


def run_answers(sandbox, problems, answers) -> list[ExecResult]:
    """Hidden-test results of the answers' code, each distinct program run once."""
    programs = [assemble(p, a.text) for p, a in zip(problems, answers, strict=True)]
    distinct = {(prog.label, prog.code): prog for prog in programs}
    results = dict(zip(distinct, sandbox.run_many(list(distinct.values())), strict=True))
    return [results[(prog.label, prog.code)] for prog in programs]


@pytest.fixture(scope="module")
def first_attempts(humaneval, checker, sandbox):
    """Greedy first attempts of every preset at every HumanEval problem, with their sandbox results."""
    out = {}
    for name in PRESETS:
        answers = coder(name, humaneval, checker).answers(
            [ChatRequest(generator_messages(p, 0)) for p in humaneval]
        )
        out[name] = (answers, run_answers(sandbox, list(humaneval), answers))
    return out


@pytest.fixture(scope="module")
def forced_faults(humaneval, mbpp_some, checker, sandbox):
    """For each fault kind, first attempts of a preset that makes only that kind, on HumanEval and MBPP."""
    problems = [*humaneval, *mbpp_some]
    out = {}
    for kind in ERROR_KINDS:
        c = coder(only(kind), [humaneval, mbpp_some], checker)
        answers = c.answers([ChatRequest(generator_messages(p, 0)) for p in problems])
        out[kind] = (problems, answers, run_answers(sandbox, problems, answers))
    return out


# ---------------------------------------------------------------------------------------------------------
# construction


def test_unknown_preset_is_an_error_listing_the_presets(humaneval) -> None:
    with pytest.raises(
        SpecError, match="unknown synthetic preset 'huge-70b'; presets: small-1.5b, coder-1.5b"
    ):
        SyntheticCoder("huge-70b", humaneval)
    with pytest.raises(SpecError, match="preset: unknown synthetic preset 'nope'"):
        SyntheticCoder.from_spec("synthetic:nope")


def test_from_spec_options_and_errors(checker) -> None:
    c = SyntheticCoder.from_spec({"spec": "synthetic:coder-3b", "regression": 0.2}, checker=checker)
    assert c.preset.regression == 0.2 and c.preset.first_pass == PRESETS["coder-3b"].first_pass
    plain = SyntheticCoder.from_spec(parse_spec("synthetic:coder-3b"), checker=checker)
    assert c.identity() != plain.identity()  # the override reaches the cache key
    with pytest.raises(SpecError, match="colour: unknown option for synthetic; options are mbpp_path"):
        SyntheticCoder.from_spec({"spec": "synthetic:coder-3b", "colour": "red"})
    with pytest.raises(SpecError, match="first_pass: .*first_pass must be a probability"):
        SyntheticCoder.from_spec({"spec": "synthetic:coder-3b", "first_pass": 3})
    with pytest.raises(SpecError, match="expected a synthetic: spec"):
        SyntheticCoder.from_spec("ollama:qwen2.5-coder:1.5b")


def test_it_says_it_is_synthetic(humaneval, checker, mbpp_path) -> None:
    c = coder("general-3b", humaneval, checker)
    assert c.synthetic is True and c.kind == "synthetic"
    assert "synthetic" in c.identity() and "general-3b" in c.identity()
    assert c.label == "synthetic:general-3b"
    loaded = load_synthetic(parse_spec({"spec": "synthetic:small-1.5b", "mbpp_path": str(mbpp_path)}))
    assert isinstance(loaded, SyntheticCoder) and {s.benchmark for s in loaded.problem_sets} == {
        "humaneval",
        "mbpp",
    }
    loaded.close()


# ---------------------------------------------------------------------------------------------------------
# first attempts


def test_first_attempt_pass_rates_are_near_their_targets(first_attempts) -> None:
    for name, (answers, results) in first_attempts.items():
        rate = sum(r.passed for r in results) / len(results)
        assert abs(rate - PRESETS[name].first_pass) <= PASS_RATE_TOLERANCE, (name, rate)
        # what the coder meant is what happened
        assert [a.outcome == OUTCOME_CORRECT for a in answers] == [r.passed for r in results]


def test_stronger_presets_solve_a_superset(first_attempts) -> None:
    solved = {
        name: {i for i, r in enumerate(results) if r.passed} for name, (_, results) in first_attempts.items()
    }
    names = list(PRESETS)
    for weaker, stronger in zip(names, names[1:], strict=False):
        assert solved[weaker] <= solved[stronger]


def test_first_failures_are_mostly_assertion_errors_then_name_errors(first_attempts) -> None:
    counts = {t: 0 for t in ERROR_TYPES.values()}
    for _answers, results in first_attempts.values():
        for r in results:
            if not r.passed:
                counts[r.error_type] += 1
    assert counts["AssertionError"] > 2 * counts["NameError"] > 0
    assert counts["NameError"] > counts["SyntaxError"] > 0
    assert counts["NameError"] > counts["TypeError"] > 0


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_faults_really_raise_the_intended_error(forced_faults, kind: str) -> None:
    problems, answers, results = forced_faults[kind]
    faults = [
        (p, a, r) for p, a, r in zip(problems, answers, results, strict=True) if a.outcome == OUTCOME_FAULT
    ]
    mismatched = [
        (p.task_id, a.fault.site, a.intended_error, r.error_type)
        for p, a, r in faults
        if a.intended_error != r.error_type
    ]
    assert not mismatched
    of_kind = [a for _, a, _ in faults if a.fault.kind == kind]
    # the kind is used wherever the problem allows it (a TypeError site exists in about 40% of them)
    assert len(of_kind) >= (0.3 if kind == "type" else 0.85) * len(faults), len(of_kind)
    for benchmark in ("humaneval", "mbpp"):
        assert any(p.benchmark == benchmark for p, a, _ in faults if a.fault.kind == kind)
    # a fault is a real model-like answer: one python block, the function still defined
    for p, a, _ in faults[:20]:
        assert a.text.count("```python") == 1
        assert f"def {p.entry_point}" in extract_code(a.text, p.entry_point)


def test_assertion_faults_pass_the_code_through_the_load_phase(forced_faults) -> None:
    problems, answers, results = forced_faults["assertion"]
    for a, r in zip(answers, results, strict=True):
        if a.intended_error == "AssertionError":
            assert r.phase == "test" and r.status is Status.FAILED


# ---------------------------------------------------------------------------------------------------------
# refinement


def refine_rates(c: SyntheticCoder, cases, seeds=range(4), **variant) -> dict[str, float]:
    """Fraction of refinements that return the reference, per error type, over cases and seeds."""
    requests, types = [], []
    for problem, code, result, analysis in cases:
        for seed in seeds:
            msgs = refiner_messages(problem, 0, code, result, analysis, feedback_source="hidden")
            requests.append(ChatRequest(msgs, temperature=0.8, seed=seed))
            types.append(result.error_type)
    answers = c.answers(requests)
    rates = {}
    for t in set(types):
        picked = [a for a, u in zip(answers, types, strict=True) if u == t]
        rates[t] = sum(a.outcome == OUTCOME_CORRECT for a in picked) / len(picked)
    return rates


def fault_cases(forced_faults, first_attempts, kinds=("name", "syntax", "assertion"), failed_by="general-3b"):
    """Forced faults on the HumanEval problems that ``failed_by`` fails first: the failures a refiner
    really meets are on the harder problems, where a wrong result is hard to put right."""
    answers, results = first_attempts[failed_by]
    hard = {a.task_id for a, r in zip(answers, results, strict=True) if not r.passed}
    cases = []
    for kind in kinds:
        problems, answers, results = forced_faults[kind]
        for p, a, r in zip(problems, answers, results, strict=True):
            if a.outcome == OUTCOME_FAULT and p.task_id in hard:
                cases.append((p, extract_code(a.text, p.entry_point), r, None))
    return cases


def test_name_and_syntax_errors_are_repaired_far_more_often_than_assertion_errors(
    forced_faults, first_attempts, humaneval, checker
) -> None:
    rates = refine_rates(coder("general-3b", humaneval, checker), fault_cases(forced_faults, first_attempts))
    assert rates["NameError"] > 3 * rates["AssertionError"]
    assert rates["SyntaxError"] > 2 * rates["AssertionError"]
    assert 0.02 < rates["AssertionError"] < 0.2
    # coder-3b, a modest refiner, repairs its own failures less than general-3b repairs its own
    own = fault_cases(forced_faults, first_attempts, failed_by="coder-3b")
    modest = refine_rates(coder("coder-3b", humaneval, checker), own, seeds=range(8))
    assert modest["NameError"] < rates["NameError"] and modest["AssertionError"] < rates["AssertionError"]


def test_repairs_really_pass_and_failed_repairs_really_fail(
    forced_faults, first_attempts, humaneval, checker, sandbox
) -> None:
    c = coder("general-3b", humaneval, checker)
    cases = fault_cases(forced_faults, first_attempts)[::3]
    answers = c.answers(
        [ChatRequest(refiner_messages(p, 0, code, r, feedback_source="hidden")) for p, code, r, _ in cases]
    )
    results = run_answers(sandbox, [p for p, *_ in cases], answers)
    outcomes = {a.outcome for a in answers}
    assert {OUTCOME_CORRECT, OUTCOME_UNCHANGED, OUTCOME_FAULT} <= outcomes
    for a, r, (_, _, before, _) in zip(answers, results, cases, strict=True):
        if a.outcome == OUTCOME_CORRECT:
            assert r.passed
        elif a.outcome == OUTCOME_UNCHANGED:
            assert r.error_type == before.error_type
        else:
            assert r.error_type == a.intended_error


def test_feedback_parts_change_the_repair_chance(forced_faults, first_attempts, humaneval, checker) -> None:
    c = coder("general-3b", humaneval, checker)
    cases = fault_cases(forced_faults, first_attempts, kinds=("assertion",))
    full = refine_rates(c, cases, seeds=range(8))["AssertionError"]
    bare_cases = [(p, code, replace(r, traceback="", failing_test=None), a) for p, code, r, a in cases]
    bare = refine_rates(c, bare_cases, seeds=range(8))["AssertionError"]
    assert bare < full
    # an analysis that names the faulty line helps more than one that does not
    problems, answers, _ = forced_faults["assertion"]
    by_task = {
        p.task_id: a.fault for p, a in zip(problems, answers, strict=True) if a.outcome == OUTCOME_FAULT
    }
    right = [(p, code, r, f"The bug is in `{by_task[p.task_id].key}`.") for p, code, r, _ in cases]
    vague = [(p, code, r, "Something in the function is wrong.") for p, code, r, _ in cases]
    right_rate = refine_rates(c, right, seeds=range(8))["AssertionError"]
    vague_rate = refine_rates(c, vague, seeds=range(8))["AssertionError"]
    assert right_rate > vague_rate >= full * 0.95


def test_refining_correct_code_causes_regressions(humaneval, checker, sandbox) -> None:
    c = coder("general-3b", humaneval, checker)
    problems = list(humaneval)
    passed = ExecResult(status=Status.PASSED)
    requests = [
        ChatRequest(refiner_messages(p, 0, reference_answer(p, "chat"), passed), temperature=0.8, seed=s)
        for s in range(2)
        for p in problems
    ]
    answers = c.answers(requests)
    broken = [a for a in answers if a.outcome == OUTCOME_FAULT]
    assert {a.outcome for a in answers} == {OUTCOME_CORRECT, OUTCOME_FAULT}
    assert abs(len(broken) / len(answers) - PRESETS["general-3b"].regression) < 0.08
    results = run_answers(sandbox, problems * 2, answers)
    assert all(r.passed == (a.outcome == OUTCOME_CORRECT) for a, r in zip(answers, results, strict=True))
    strong = coder("coder-3b", humaneval, checker).answers(requests)
    assert sum(a.outcome == OUTCOME_FAULT for a in strong) < len(broken) / 2


# ---------------------------------------------------------------------------------------------------------
# analysis


def test_analyzer_names_the_error_and_often_the_cause_of_its_own_faults(
    forced_faults, first_attempts, humaneval, checker
) -> None:
    c = coder("general-3b", humaneval, checker)
    problems, answers, results = forced_faults["name"]
    cases = [
        (p, a, r)
        for p, a, r in zip(problems, answers, results, strict=True)
        if a.outcome == OUTCOME_FAULT and p.benchmark == "humaneval"
    ]
    requests = [
        ChatRequest(analyzer_messages(p, 1, extract_code(a.text, p.entry_point), r), temperature=0.8, seed=s)
        for p, a, r in cases
        for s in range(3)
    ]
    analyses = c.answers(requests)
    assert all(x.outcome == OUTCOME_ANALYSIS and x.role == "analyzer" for x in analyses)
    assert all("```" not in x.text for x in analyses)  # words, not code
    assert all(
        r.error_type in x.text
        for (_, _, r), x in zip([c_ for c_ in cases for _ in range(3)], analyses, strict=True)
    )
    own = [x for x in analyses if x.fault is not None]
    assert len(own) == len(analyses)  # it recognises its own faults
    right = sum(x.fault.key in x.text and "The cause is" in x.text for x in own) / len(own)
    assert abs(right - PRESETS["general-3b"].analysis_accuracy) < 0.1


# ---------------------------------------------------------------------------------------------------------
# determinism, batches, unknown input, tokens


def test_same_request_same_answer_and_batches_do_not_matter(humaneval, checker) -> None:
    problems = list(humaneval)[:40]
    requests = [ChatRequest(generator_messages(p, 0), temperature=0.8, seed=3) for p in problems]
    a = coder("small-1.5b", humaneval, checker).generate(requests)
    shuffled = requests[:]
    random.Random(1).shuffle(shuffled)
    fresh = coder("small-1.5b", humaneval, checker)
    b = {r: x.text for r, x in zip(shuffled, fresh.generate(shuffled + shuffled[:5]), strict=False)}
    one_by_one = [fresh.complete(r).text for r in requests[:10]]
    assert [x.text for x in a] == [b[r] for r in requests]
    assert one_by_one == [x.text for x in a[:10]]


def test_greedy_ignores_the_seed_and_sampling_uses_it(humaneval, checker) -> None:
    c = coder("small-1.5b", humaneval, checker)
    problems = list(humaneval)[:60]
    greedy = [c.answers([ChatRequest(generator_messages(p, 0), seed=s) for p in problems]) for s in (0, 9)]
    assert [x.text for x in greedy[0]] == [x.text for x in greedy[1]]
    hot = [
        c.answers([ChatRequest(generator_messages(p, 0), temperature=1.0, seed=s) for p in problems])
        for s in (0, 9)
    ]
    assert [x.text for x in hot[0]] != [x.text for x in hot[1]]


def test_unknown_problem_gets_a_labelled_non_answer(humaneval, checker) -> None:
    c = coder("general-3b", humaneval, checker)
    request = ChatRequest.user("Write a haiku about compilers.", system="You are a poet.")
    completion = c.complete(request)
    assert "synthetic" in completion.text and extract_code(completion.text) == ""
    answer = c.answers([request])[0]
    assert answer.outcome == OUTCOME_NON_ANSWER and answer.task_id is None


def test_mbpp_requests_without_mbpp_data_get_the_non_answer(humaneval, mbpp_some, checker) -> None:
    only_humaneval = coder("general-3b", humaneval, checker)
    problem = mbpp_some.problems[0]
    assert (
        only_humaneval.answers([ChatRequest(generator_messages(problem, 0))])[0].outcome == OUTCOME_NON_ANSWER
    )


def test_token_estimates_budget_and_stop_strings(humaneval, checker) -> None:
    c = coder("coder-3b", humaneval, checker)
    request = ChatRequest(generator_messages(humaneval["HumanEval/0"], 0))
    full = c.complete(request)
    assert full.finish_reason == "stop" and full.latency_s == 0.0
    assert full.completion_tokens == estimate_tokens(full.text) > 10
    assert full.prompt_tokens > estimate_tokens(humaneval["HumanEval/0"].prompt)
    short = c.complete(replace(request, max_tokens=8))
    assert short.finish_reason == "length" and short.completion_tokens == 8
    assert full.text.startswith(short.text)
    cut = c.complete(replace(request, stop=("return",)))
    assert "return" not in cut.text and full.text.startswith(cut.text)
    record = c.calls[-1]  # the call log sees the estimates like any backend's counts
    assert (record.requests, record.completion_tokens) == (1, cut.completion_tokens)
