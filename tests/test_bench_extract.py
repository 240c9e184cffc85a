"""Code extraction from realistic model answers, and answer-style detection."""

from __future__ import annotations

import pytest

from neatpipe.bench import detect_style, extract_code, strip_reasoning, trim_completion

ADD = "def add(a, b):\n    return a + b\n"

CASES = [
    (
        "fenced with tag",
        "Here is the solution:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nIt adds.",
        ADD,
    ),
    ("fenced without tag", "```\ndef add(a, b):\n    return a + b\n```", ADD),
    ("fence tag py3 and trailing spaces", "```py3  \ndef add(a, b):\n    return a + b\n```  \n", ADD),
    ("tilde fence", "~~~python\ndef add(a, b):\n    return a + b\n~~~", ADD),
    ("unterminated fence", "Sure!\n```python\ndef add(a, b):\n    return a + b\n", ADD),
    (
        "no fence, prose around",
        "The function is:\ndef add(a, b):\n    return a + b\nThis returns the sum.",
        ADD,
    ),
    ("no fence, bare code", ADD, ADD),
    (
        "think block first",
        "<think>I could use ```python\ndef add(a, b): return 0```</think>\n```python\n" + ADD + "```",
        ADD,
    ),
    ("unclosed think", "```python\n" + ADD + "```\n<think>maybe rewrite it as\ndef add(a, b): pass", ADD),
    ("lone closing think", "so the answer is simple</think>\n```python\n" + ADD + "```", ADD),
    ("PYTHON tags", "[PYTHON]\n" + ADD + "[/PYTHON]", ADD),
    ("empty answer", "", ""),
    ("whitespace answer", "  \n\n ", ""),
    ("only prose", "I am not able to solve this problem.", ""),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_extract_code(name: str, text: str, expected: str) -> None:
    assert extract_code(text, "add") == expected


def test_several_blocks_prefers_the_last_that_defines_the_entry_point_and_keeps_helpers() -> None:
    text = (
        "First a helper:\n```python\nimport math\n\ndef helper(x):\n    return math.floor(x)\n```\n"
        "A first try:\n```python\ndef add(a, b):\n    return a - b\n```\n"
        "Fixed:\n```python\ndef add(a, b):\n    return helper(a) + b\n```\n"
        "Usage:\n```python\nprint(add(1, 2))\n```\n"
    )
    code = extract_code(text, "add")
    assert "return helper(a) + b" in code
    assert "return a - b" not in code
    assert "def helper" in code and "print(" not in code


def test_blocks_in_other_languages_are_ignored() -> None:
    text = "Run it with:\n```bash\npython add.py\n```\n```python\n" + ADD + "```"
    assert extract_code(text, "add") == ADD


def test_without_entry_point_the_longest_python_block_wins() -> None:
    text = "```python\nx = 1\n```\n```python\n" + ADD + "```"
    assert extract_code(text) == ADD


def test_unparseable_unfenced_code_is_returned_as_written_for_a_syntax_error() -> None:
    text = "def add(a, b)\n    return a + b\n"
    assert extract_code(text, "add").startswith("def add(a, b)")


def test_strip_reasoning_keeps_the_answer() -> None:
    assert strip_reasoning("<think>\nhmm\n</think>\nanswer") == "\nanswer"
    assert strip_reasoning("<THINKING>x</THINKING>y") == "y"


@pytest.mark.parametrize(
    ("code", "style"),
    [
        (ADD, "chat"),
        ("    return a + b\n", "completion"),
        ("import math\n\n\nasync def add(a, b):\n    return a\n", "chat"),
        ("    def add(a, b):\n        pass\n", "completion"),  # nested def is a body, not a whole function
    ],
)
def test_detect_style(code: str, style: str) -> None:
    assert detect_style(code, "add") == style


def test_trim_completion_stops_at_tests_and_main_blocks() -> None:
    text = "    return a + b\n\n\nprint(add(1, 2))\nassert add(1, 2) == 3\n"
    assert trim_completion(text) == "    return a + b\n"
    text = "    return a + b\n\nif __name__ == '__main__':\n    main()\n"
    assert trim_completion(text) == "    return a + b\n"
    assert trim_completion("    return helper(a)\n\ndef helper(x):\n    return x\n").count("def helper") == 1


@pytest.mark.parametrize(
    "broken_tail",
    ["    return a +", "    return (a,", "print(add(1, 2)", ")"],
)
def test_a_broken_last_code_line_is_kept_so_the_answer_stays_a_syntax_error(broken_tail: str) -> None:
    text = "def add(a, b):\n    c = a + b\n" + broken_tail + "\n"
    code = extract_code(text, "add")
    assert broken_tail in code
    with pytest.raises(SyntaxError):
        compile(code, "<answer>", "exec")


def test_trailing_prose_after_unfenced_code_is_still_dropped() -> None:
    text = "def add(a, b):\n    return a + b\n\nThis adds the two numbers.\nIt runs in O(1) time.\n"
    assert extract_code(text, "add") == "def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize(
    "usage",
    [
        "print(add(1, 2))\n",
        "assert add(1, 2) == 3\n",
        "result = add(1, 2)\nprint(result)\n",
        "result = add(1, 2)\n",  # an assignment, but it calls the function before it exists
        "x: int = add(1, 2)\n",
    ],
)
def test_a_usage_block_written_before_the_solution_is_never_prepended(usage: str) -> None:
    text = (
        f"You would call it like this:\n```python\n{usage}```\n"
        "Constants it needs:\n```python\nimport math\nLIMIT = 10\n```\n"
        f"The function:\n```python\n{ADD}```\n"
    )
    code = extract_code(text, "add")
    assert code == f"import math\nLIMIT = 10\n\n\n{ADD}"  # the helper block stays, the usage goes
    exec(compile(code, "<answer>", "exec"), {})  # and the program loads


def test_code_closed_by_a_lone_fence_is_the_code() -> None:
    assert extract_code(ADD + "```\n", "add") == ADD
    assert extract_code("The function:\n" + ADD + "```", "add") == ADD
    assert extract_code(ADD + "```\nIt adds the numbers.\n", "add") == ADD
    assert extract_code("Sure, here it is:\n```", "add") == ""  # an opening fence with nothing after it
