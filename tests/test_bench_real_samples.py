"""Answers real models wrote (``../shared/data/real-samples``), each of a kind that was once judged
wrongly: a program importing torch, code followed by a lone closing fence, a failing test followed by a
hanging one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neatpipe.bench import assemble, extract_code, load_humaneval, load_mbpp
from neatpipe.sandbox import Program, Sandbox, Status, TestCase


def sample(shared_data: Path, source: str, index: int) -> dict:
    """Line ``index`` (its ``i`` field) of a real-samples file."""
    with open(shared_data / "real-samples" / f"{source}.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["i"] == index:
                return record
    raise AssertionError(f"{source}.jsonl has no sample {index}")


@pytest.fixture(scope="module")
def mbpp(mbpp_path: Path):
    return load_mbpp(mbpp_path)


def test_answers_that_import_torch_are_judged_by_their_tests_not_as_tampering(
    sandbox: Sandbox, shared_data: Path
) -> None:
    problems = load_humaneval()
    # CodeGen-16B went on after the function with `import numpy as np` and `import torch`; torch
    # replaces typing._collect_parameters while it is imported
    right = sample(shared_data, "codet-humaneval", 334)
    # the same habit after a body that calls an is_prime() it never defined
    wrong = sample(shared_data, "codet-humaneval", 170)
    assert "import torch" in right["completion"] and "import torch" in wrong["completion"]
    results = sandbox.run_many([assemble(problems[s["task_id"]], s["completion"]) for s in (right, wrong)])
    assert results[0].passed, results[0]
    assert (results[1].status, results[1].error_type) == (Status.FAILED, "NameError")
    assert "is_prime" in results[1].message


def test_patching_what_the_tests_use_is_still_tampering_around_a_library_import(sandbox: Sandbox) -> None:
    right = "def f(x):\n    return x + 1\n"
    tests = (TestCase("assert math.isclose(f(1), 2)"),)
    programs = [
        # patched after torch was imported: the library's import is over, the change is the program's
        Program("import torch\nimport math\nmath.isclose = lambda *a, **k: True\n" + right, tests, "import math",
                "f"),
        # patched before torch was imported: noticed when the import starts
        Program("import math\nmath.isclose = lambda *a, **k: True\nimport torch\n" + right, tests, "import math",
                "f"),
        # what torch does on import, done by the program itself
        Program("import typing\ntyping._collect_parameters = lambda a: ()\n" + right, tests, "import math", "f"),
        # a module the program wrote itself is not a library: what its import patches counts
        Program("with open('helper_mod.py', 'w') as f:\n    f.write('import math\\nmath.isclose = max\\n')\n"
                "import sys\nsys.path.insert(0, '.')\nimport helper_mod\n" + right, tests, "import math", "f"),
        Program("import torch\n" + right, tests, "import math", "f"),
    ]  # fmt: skip
    results = sandbox.run_many(programs)
    assert [r.error_type for r in results] == ["TamperingDetected"] * 4 + [None], results
    assert [r.message.split()[3].rstrip(",") for r in results[:4]] == [
        "math.isclose", "math.isclose", "typing._collect_parameters", "math.isclose",
    ]  # fmt: skip


def test_code_followed_by_a_lone_closing_fence_is_that_code(
    sandbox: Sandbox, shared_data: Path, mbpp
) -> None:
    record = sample(shared_data, "ldb-mbpp", 244)  # gpt-3.5's remove_odd, then a line with only ```
    assert record["completion"].rstrip().endswith("\n```") and "```python" not in record["completion"]
    code = extract_code(record["completion"], "remove_odd")
    assert code.startswith("def remove_odd(str1):") and "```" not in code
    result = sandbox.run(assemble(mbpp[record["task_id"]], record["completion"]))
    assert result.passed, result


@pytest.mark.parametrize("index", [293, 326])
def test_a_failing_test_before_a_hanging_one_is_the_verdict(
    sandbox: Sandbox, shared_data: Path, mbpp, index: int
) -> None:
    # CodeLlama's bell_number (exponential recursion) and amicable_numbers_sum (cubic): the first
    # assert fails quickly, a later one runs until the CPU-time limit
    record = sample(shared_data, "ldb-mbpp", index)
    problem = mbpp[record["task_id"]]
    result = sandbox.run(assemble(problem, record["completion"], timeout_s=1.0))
    assert (result.status, result.error_type, result.phase) == (Status.FAILED, "AssertionError", "test")
    first = next(t for t in result.tests if not t.passed)
    assert result.failing_test == first.line == problem.hidden_tests[result.tests.index(first)]
    assert result.tests[-1].error_type == "Timeout" and result.extra["cpu_s"] >= 1.0
