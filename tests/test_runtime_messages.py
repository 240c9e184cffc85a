"""Chat messages per role and the execution-feedback text: content, bounds, statuses, reading back."""

from __future__ import annotations

import pytest

from neatpipe.bench import load_humaneval, load_mbpp
from neatpipe.genome.prompts import ANALYZER_PROMPTS, GENERATOR_PROMPTS, REFINER_PROMPTS
from neatpipe.runtime import messages as M
from neatpipe.sandbox.program import ExecResult, Status

CODE = "def add(a, b):\n    return a - b\n"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "<test 1>", line 1, in <module>\n'
    "    assert add(1, 2) == 3\n"
    "AssertionError\n"
)


def failed(**fields) -> ExecResult:
    base = dict(
        status=Status.FAILED,
        error_type="AssertionError",
        message="",
        traceback=TRACEBACK,
        failing_test="assert add(1, 2) == 3",
        phase="test",
    )
    base.update(fields)
    return ExecResult(**base)


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


def test_generator_messages_show_the_task_and_ask_for_one_python_block(humaneval) -> None:
    problem = humaneval["HumanEval/0"]
    system, user = M.generator_messages(problem, 1)
    assert (system.role, user.role) == ("system", "user")
    assert system.content == GENERATOR_PROMPTS[1].system
    assert problem.prompt.strip() in user.content
    assert f"`{problem.entry_point}`" in user.content
    assert "```python" in user.content
    sections = M.split_sections(user.content)
    assert list(sections) == [M.TASK_HEADING, M.INSTRUCTIONS_HEADING]
    assert sections[M.TASK_HEADING] == problem.task_text.strip("\n")


def test_generator_messages_for_mbpp_show_description_and_visible_asserts(mbpp_path) -> None:
    problem = load_mbpp(mbpp_path)["Mbpp/2"]
    _, user = M.generator_messages(problem, "plain-expert")
    assert problem.prompt in user.content
    assert problem.visible_tests[0] in user.content
    assert problem.hidden_tests[-1] not in user.content  # hidden asserts stay hidden
    assert problem.entry_point in user.content


def test_variant_by_object_index_or_name_and_clear_errors(humaneval) -> None:
    problem = humaneval["HumanEval/0"]
    by_name = M.generator_messages(problem, "edge-cases")
    assert by_name == M.generator_messages(problem, 2) == M.generator_messages(problem, GENERATOR_PROMPTS[2])
    with pytest.raises(KeyError, match="unknown generator prompt 'nope'"):
        M.generator_messages(problem, "nope")
    with pytest.raises(IndexError, match="generator prompt index 9"):
        M.generator_messages(problem, 9)
    with pytest.raises(TypeError, match="generator prompt"):
        M.generator_messages(problem, 1.5)  # type: ignore[arg-type]


def test_analyzer_messages_carry_task_code_error_and_failing_test_and_ask_for_no_code(humaneval) -> None:
    problem = humaneval["HumanEval/0"]
    system, user = M.analyzer_messages(problem, 0, CODE, failed(message="3 != -1"))
    assert system.content == ANALYZER_PROMPTS[0].system
    text = user.content
    for needle in (
        problem.prompt.strip(),
        CODE.strip(),
        "AssertionError",
        "assert add(1, 2) == 3",
        "3 != -1",
    ):
        assert needle in text
    assert M.split_sections(text)[M.INSTRUCTIONS_HEADING] == M.ANALYZER_INSTRUCTION
    assert M.ANALYSIS_HEADING not in text


def test_refiner_messages_include_the_analysis_and_ask_for_the_whole_function(humaneval) -> None:
    problem = humaneval["HumanEval/0"]
    system, user = M.refiner_messages(
        problem, "keep-signature", CODE, failed(), "The minus should be a plus."
    )
    assert system.content == REFINER_PROMPTS[1].system
    sections = M.split_sections(user.content)
    assert sections[M.ANALYSIS_HEADING] == "The minus should be a plus."
    assert sections[M.CODE_HEADING] == CODE.strip()
    assert problem.entry_point in sections[M.INSTRUCTIONS_HEADING]
    assert "```python" in sections[M.INSTRUCTIONS_HEADING]
    # without an analysis there is no analysis section
    _, plain = M.refiner_messages(problem, 0, CODE, failed())
    assert M.ANALYSIS_HEADING not in plain.content


def test_feedback_reads_back_section_by_section() -> None:
    text = M.feedback_text(CODE, failed(message="3 != -1"), "The minus should be a plus.")
    fb = M.parse_feedback(text)
    assert fb.code == CODE.strip()
    assert fb.status == "failed" and not fb.passed and fb.has_result
    assert fb.error_type == "AssertionError"
    assert fb.phase == "running the tests"
    assert fb.message == "3 != -1"
    assert fb.traceback == TRACEBACK.strip()
    assert fb.failing_test == "assert add(1, 2) == 3"
    assert fb.analysis == "The minus should be a plus."
    assert fb.source == "visible example tests"


@pytest.mark.parametrize(
    ("source", "label"), [("visible", "visible example tests"), ("hidden", "hidden tests")]
)
def test_feedback_source_is_stated(source: str, label: str) -> None:
    text = M.feedback_text(CODE, failed(), feedback_source=source)
    assert f"{M.TESTS_LABEL} {label}" in text
    assert M.parse_feedback(text).source == label
    passed = M.feedback_text(CODE, ExecResult(status=Status.PASSED), feedback_source=source)
    assert f"All {label} passed." in passed


def test_unknown_feedback_source_and_tiny_budget_are_errors_naming_the_value() -> None:
    with pytest.raises(ValueError, match="feedback_source must be one of 'visible', 'hidden', got 'oracle'"):
        M.feedback_text(CODE, failed(), feedback_source="oracle")
    with pytest.raises(ValueError, match="max_chars must be an integer >= 800, got 100"):
        M.feedback_text(CODE, failed(), max_chars=100)


@pytest.mark.parametrize(
    ("status", "error_type", "phrase"),
    [
        (Status.TIMEOUT, "Timeout", "timed out"),
        (Status.OUT_OF_MEMORY, "MemoryError", "ran out of memory"),
        (Status.CRASHED, "Crash", "crashed"),
    ],
)
def test_timeout_oom_and_crash_are_said_plainly(status: Status, error_type: str, phrase: str) -> None:
    # the error type is filled in from the status when the sandbox gave none
    text = M.feedback_text("while True:\n    pass\n", ExecResult(status=status))
    assert phrase in text
    fb = M.parse_feedback(text)
    assert fb.error_type == error_type
    assert fb.status == status.value
    assert M.TRACEBACK_HEADING not in text and M.FAILING_TEST_HEADING not in text


def test_load_phase_errors_say_so() -> None:
    result = failed(error_type="SyntaxError", message="expected ':'", phase="load", failing_test=None)
    text = M.feedback_text("def f(x)\n    return x\n", result)
    assert "while loading the code" in text
    assert M.FAILING_TEST_HEADING not in text


def test_huge_traceback_and_code_stay_under_the_limit_with_head_and_tail() -> None:
    frames = "".join(f'  File "<candidate>", line {i}, in f\n    return f(x - 1)\n' for i in range(3000))
    traceback = (
        "Traceback (most recent call last):\n" + frames + "RecursionError: maximum recursion depth exceeded\n"
    )
    assert len(traceback) > 100_000
    code = "def f(x):\n" + "".join(f"    y{i} = x + {i}\n" for i in range(2500)) + "    return y0\n"
    assert len(code) > 50_000
    result = failed(
        error_type="RecursionError", message="maximum recursion depth exceeded", traceback=traceback
    )
    analysis = "The recursion never stops. " * 500
    for limit in (M.MIN_FEEDBACK_CHARS, 2000, M.DEFAULT_FEEDBACK_CHARS, 12_000):
        text = M.feedback_text(code, result, analysis, max_chars=limit)
        assert len(text) <= limit
        fb = M.parse_feedback(text)
        # head and tail of the traceback survive, and the cut is announced
        assert fb.traceback.startswith("Traceback (most recent call last):")
        assert fb.traceback.endswith("RecursionError: maximum recursion depth exceeded")
        assert "characters cut ...]" in fb.traceback
        # head and tail of the code survive, the cut marked as a comment
        assert fb.code.startswith("def f(x):")
        assert fb.code.endswith("return y0")
        assert "# [..." in fb.code
        assert "characters cut" in fb.analysis
        assert fb.error_type == "RecursionError"
        assert fb.failing_test == "assert add(1, 2) == 3"  # short sections are kept whole


def test_short_feedback_is_not_cut() -> None:
    text = M.feedback_text(CODE, failed())
    assert "characters cut" not in text


def test_clip_text_keeps_head_and_tail_on_line_boundaries() -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    clipped = M.clip_text(text, 300)
    assert len(clipped) <= 300
    assert clipped.startswith("line 0\n") and clipped.endswith("line 999")
    assert all(line.startswith(("line ", "[...")) for line in clipped.splitlines())
    assert M.clip_text("short", 300) == "short"


def test_text_that_looks_like_a_heading_or_fence_does_not_break_the_sections() -> None:
    code = 'def f():\n    s = """\n## Task\n```\n"""\n    return s\n'
    analysis = "## Failing test\nnot really a section"
    text = M.feedback_text(code, failed(message="## Traceback\nmessage line"), analysis)
    fb = M.parse_feedback(text)
    assert fb.code == code.strip()
    assert fb.failing_test == "assert add(1, 2) == 3"
    assert fb.traceback == TRACEBACK.strip()
    assert "not really a section" in fb.analysis


def test_passed_result_has_no_error_sections() -> None:
    text = M.feedback_text(CODE, ExecResult(status=Status.PASSED))
    fb = M.parse_feedback(text)
    assert fb.passed and fb.error_type is None
    assert not fb.traceback and not fb.failing_test


def test_messages_are_pure(humaneval) -> None:
    problem = humaneval["HumanEval/5"]
    a = M.refiner_messages(problem, 0, CODE, failed(), "x")
    b = M.refiner_messages(problem, 0, CODE, failed(), "x")
    assert a == b and hash(a) == hash(b)
