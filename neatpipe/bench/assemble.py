"""From a model's answer to a :class:`~neatpipe.sandbox.program.Program` the sandbox can run.

Two answer styles are accepted:

* ``completion``: the answer continues the prompt (a function body under HumanEval's docstring);
  the candidate is the prompt followed by the answer. A prompt that is prose (MBPP) has nothing to
  continue, so there both styles mean a whole program.
* ``chat``: the answer is a whole function, often without the prompt's imports or helpers; the
  candidate is the prompt's context (imports, helper functions) followed by the answer, so that a
  correct function never fails on ``List`` or ``encode_cyclic``.

The harness (the benchmark's ``check``, the prompt's helpers, the test imports) runs in its own
namespace, so a candidate that redefines ``check`` or a helper changes nothing the tests do.
"""

from __future__ import annotations

import re
import textwrap

from neatpipe.bench.extract import extract_code, trim_completion
from neatpipe.bench.problem import Problem
from neatpipe.sandbox.program import Program, TestCase

STYLES = ("auto", "completion", "chat")
TEST_SETS = ("hidden", "visible", "plus")


def detect_style(code: str, entry_point: str) -> str:
    """``chat`` when the code defines the entry point at the top level, else ``completion``."""
    pattern = rf"^(async\s+)?def\s+{re.escape(entry_point)}\s*\("
    return "chat" if re.search(pattern, code, re.MULTILINE) else "completion"


def _as_body(code: str) -> str:
    """A completion whose first line is not indented (a model that dropped the indentation) is indented."""
    first = next((line for line in code.splitlines() if line.strip()), "")
    if first and not first[0].isspace() and not first.startswith(("def ", "class ", "import ", "from ", "@")):
        return textwrap.indent(code, "    ")
    return code


def candidate_code(problem: Problem, answer: str, style: str = "auto", extract: bool = True) -> str:
    """The candidate module source for ``answer`` (raw model text, or code when ``extract`` is False)."""
    if style not in STYLES:
        raise ValueError(f"unknown answer style {style!r}; choose one of {', '.join(STYLES)}")
    code = extract_code(answer, problem.entry_point) if extract else answer
    if style == "auto":
        style = detect_style(code, problem.entry_point)
    if style == "completion" and problem.prompt_is_code:
        return problem.prompt + _as_body(trim_completion(code))
    return f"{problem.context}\n\n{code}" if problem.context else code


def harness_for(problem: Problem, tests: str) -> tuple[str, tuple[str, ...]]:
    """The trusted setup code and the test lines for ``tests`` (``hidden``, ``visible`` or ``plus``:
    the hidden tests with the extra inputs of HumanEval+ / MBPP+)."""
    if tests not in TEST_SETS:
        raise ValueError(f"unknown test set {tests!r}; choose one of {', '.join(TEST_SETS)}")
    parts = [problem.context]
    if tests == "hidden":
        parts.append(problem.test_setup)
        lines = problem.hidden_tests
    elif tests == "plus":
        if not problem.plus_tests:
            raise ValueError(f"{problem.task_id} has no plus tests (only HumanEval+ and MBPP+ problems do)")
        parts += [problem.test_setup, problem.plus_setup]
        lines = problem.plus_tests
    else:
        # visible asserts are self-contained; MBPP's may use its test imports, float checks use math
        parts += ["import math", problem.test_setup if problem.benchmark == "mbpp" else ""]
        lines = problem.visible_tests
    return "\n\n".join(p for p in parts if p), lines


def assemble(
    problem: Problem,
    answer: str,
    *,
    tests: str = "hidden",
    style: str = "auto",
    extract: bool = True,
    seed: int = 0,
    timeout_s: float | None = None,
) -> Program:
    """The program that runs ``answer`` against ``problem``'s hidden or visible tests."""
    harness, lines = harness_for(problem, tests)
    return Program(
        code=candidate_code(problem, answer, style=style, extract=extract),
        tests=tuple(TestCase(source=line, name=f"{tests} {i + 1}") for i, line in enumerate(lines)),
        harness=harness,
        entry_point=problem.entry_point,
        timeout_s=timeout_s or problem.time_limit_s,
        seed=seed,
        label=f"{problem.task_id} ({tests})",
    )


def reference_answer(problem: Problem, style: str) -> str:
    """The reference solution written as a model would answer in ``style``.

    HumanEval chat style is the reference body under the prompt's ``def`` line, without the prompt's
    other lines (imports, helpers), so assembly must add them back for it to pass.
    """
    if problem.prompt_is_code:  # HumanEval and HumanEval+: the reference is a body under the prompt
        body = problem.meta["canonical_solution"]
        return body if style == "completion" else problem.signature + body
    return problem.reference_solution  # MBPP's prompt has no code to continue: both styles are whole programs
