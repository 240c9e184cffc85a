"""How the synthetic coder reads a request: the role from the system prompt or the sections, the problem
from its task text (whatever visible tests an MBPP request shows, or a bare prompt without headings),
and the previous code with its feedback. Nothing here runs code."""

from __future__ import annotations

import pytest

from neatpipe.bench import load_humaneval, load_mbpp
from neatpipe.genome.prompts import PROMPT_POOLS
from neatpipe.models import ChatMessage, ChatRequest
from neatpipe.runtime.messages import analyzer_messages, generator_messages, refiner_messages
from neatpipe.sandbox.program import ExecResult, Status
from neatpipe.synthetic.messages import ProblemIndex, read_request


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


@pytest.fixture(scope="module")
def index(humaneval):
    return ProblemIndex(list(humaneval))


def test_roles_are_read_from_the_system_prompt_or_the_sections(humaneval, index) -> None:
    p = humaneval["HumanEval/2"]
    code = "def truncate_number(number: float) -> float:\n    return number % 2.0\n"
    result = ExecResult(
        status=Status.FAILED, error_type="AssertionError", phase="test", failing_test="check(truncate_number)"
    )
    stranger = ChatMessage("system", "You are a helpful assistant.")
    cases = {
        "generator": generator_messages(p, 0),
        "analyzer": analyzer_messages(p, 0, code, result),
        "refiner": refiner_messages(p, 0, code, result),
    }
    for role, msgs in cases.items():
        for variant in (msgs, (stranger, msgs[1]), msgs[1:]):
            reading = read_request(ChatRequest(variant), index)
            assert reading.role == role and reading.problem is p
            if role != "generator":  # the feedback sections come back as they were written
                assert reading.feedback.code.strip() == code.strip()
                assert reading.feedback.error_type == "AssertionError" and not reading.feedback.passed


def test_mbpp_problem_found_whatever_visible_tests_the_request_shows(mbpp_path) -> None:
    first = load_mbpp(mbpp_path, visible="first")
    every = load_mbpp(mbpp_path, visible="all")
    index = ProblemIndex(list(every))
    for task_id in ("Mbpp/2", "Mbpp/90", "Mbpp/404"):
        reading = read_request(ChatRequest(generator_messages(first[task_id], 0)), index)
        assert reading.problem is not None and reading.problem.task_id == task_id


def test_a_bare_prompt_without_headings_is_still_recognised(humaneval, index) -> None:
    problem = humaneval["HumanEval/7"]
    reading = read_request(ChatRequest.user("Complete this function:\n\n" + problem.prompt), index)
    assert (reading.role, reading.problem) == ("generator", problem)


def test_a_request_about_no_known_problem_has_none(index) -> None:
    reading = read_request(
        ChatRequest.user("Write a haiku about compilers.", system="You are a poet."), index
    )
    assert reading.problem is None and reading.role == "generator"


def test_a_known_system_prompt_decides_the_role_of_a_bare_message(humaneval, index) -> None:
    problem = humaneval["HumanEval/7"]
    for role, pool in PROMPT_POOLS.items():
        for variant in pool:
            request = ChatRequest.user("Here you go:\n\n" + problem.prompt, system=variant.system)
            assert read_request(request, index).role == role
