"""The fault checker: candidates run through the runner the caller gives it (no sandbox of its own),
each once, with the hidden tests' verdict remembered."""

from __future__ import annotations

import pytest

from neatpipe.bench import load_humaneval, reference_answer
from neatpipe.models import ChatRequest
from neatpipe.runtime.messages import generator_messages
from neatpipe.synthetic import FaultChecker, SyntheticCoder, fault_candidates


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


def test_candidates_run_through_the_given_runner_once_each(humaneval, sandbox) -> None:
    batches: list[int] = []

    def runner(programs):
        batches.append(len(programs))
        return sandbox.run_many(programs)

    checker = FaultChecker(runner)
    problem = humaneval["HumanEval/0"]
    right = reference_answer(problem, "chat")
    wrong = next(f for f in fault_candidates(problem, "name") if f.site.startswith("typo"))
    checker.check([(problem, right), (problem, wrong.code), (problem, right)])
    assert batches == [1, 2]  # the reference timed once, then the two distinct programs in one batch
    assert checker.outcome(problem, right) is None and checker.outcome(problem, wrong.code) == "NameError"
    checker.check([(problem, wrong.code)])
    assert batches == [1, 2] and checker.programs_run == 3
    checker.close()  # leaves the caller's runner alone: later checks still go through it
    other = next(f for f in fault_candidates(problem, "syntax"))
    checker.check([(problem, other.code)])
    assert batches == [1, 2, 1] and checker.outcome(problem, other.code) == "SyntaxError"


def test_a_runner_that_loses_results_is_an_error(humaneval) -> None:
    checker = FaultChecker(lambda programs: [])
    problem = humaneval["HumanEval/0"]
    with pytest.raises(RuntimeError, match="fault checker: 0 results for 1 programs"):
        checker.check([(problem, reference_answer(problem, "chat"))])
    with pytest.raises(ValueError, match="timeout_s must be a number > 0, got 0"):
        FaultChecker(timeout_s=0)


def test_each_candidate_runs_once(humaneval, sandbox) -> None:
    checker = FaultChecker(sandbox.run_many)
    requests = [ChatRequest(generator_messages(p, 0), temperature=0.5, seed=11) for p in list(humaneval)[:30]]
    SyntheticCoder("small-1.5b", humaneval, checker=checker).answers(requests)
    before = checker.programs_run
    assert before > 0
    SyntheticCoder("small-1.5b", humaneval, checker=checker).answers(requests)
    assert checker.programs_run == before
