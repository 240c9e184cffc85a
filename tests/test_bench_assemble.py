"""Program assembly through the real sandbox: every reference passes, harness names are protected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neatpipe.bench import assemble, candidate_code, load_humaneval, load_mbpp, reference_answer
from neatpipe.bench.check import SamplesFileError, check_references, check_samples
from neatpipe.bench.humaneval import WRONG_DOCSTRING_EXAMPLES
from neatpipe.sandbox.program import Program, Status, TestCase


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_every_humaneval_reference_passes_hidden_and_visible_tests(sandbox, style: str) -> None:
    problems = load_humaneval()
    report = check_references(problems, style, sandbox)
    assert report.total == 164
    assert report.passed == 164, [(f.task_id, f.result.error_type, f.result.message) for f in report.failures]
    visible = [assemble(p, reference_answer(p, style), tests="visible") for p in problems if p.visible_tests]
    results = sandbox.run_many(visible)
    failed = [
        (prog.label, r.error_type, r.failing_test)
        for prog, r in zip(visible, results, strict=True)
        if not r.passed
    ]
    assert not failed
    assert sum(len(r.tests) for r in results) == sum(len(p.visible_tests) for p in problems)


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_every_mbpp_reference_passes_hidden_and_visible_tests(sandbox, mbpp_path: Path, style: str) -> None:
    problems = load_mbpp(mbpp_path, visible="all")
    report = check_references(problems, style, sandbox)
    assert (report.passed, report.total) == (427, 427), [
        (f.task_id, f.result.error_type) for f in report.failures
    ]
    # per-test results: one per MBPP assert
    assert all(len(s.result.tests) == len(problems[s.task_id].hidden_tests) for s in report.results)


def test_wrong_docstring_examples_really_fail_the_reference(sandbox) -> None:
    problems = load_humaneval()
    programs = []
    for task_id, tests in WRONG_DOCSTRING_EXAMPLES.items():
        p = problems[task_id]
        for t in tests:
            programs.append(
                Program(
                    code=p.reference_solution,
                    tests=(TestCase(t),),
                    harness="import math",
                    entry_point=p.entry_point,
                )
            )
    results = sandbox.run_many(programs)
    assert [r.status for r in results] == [Status.FAILED] * len(programs)
    assert all(r.error_type == "AssertionError" for r in results)


def test_chat_answer_without_imports_or_helpers_passes_but_naive_assembly_fails(sandbox) -> None:
    problems = load_humaneval()
    answers = {  # correct functions as chat models write them: no `from typing import List`, no helpers
        "HumanEval/0": "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n",
        "HumanEval/38": "def decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n",
    }
    ours = [assemble(problems[t], f"```python\n{a}```") for t, a in answers.items()]
    assert all(r.passed for r in sandbox.run_many(ours))
    naive = [
        Program(
            code=a,
            tests=(TestCase(f"check({problems[t].entry_point})"),),
            harness=problems[t].test_setup,
            entry_point=problems[t].entry_point,
        )
        for t, a in answers.items()
    ]
    assert [r.error_type for r in sandbox.run_many(naive)] == ["NameError", "NameError"]


def test_a_candidate_cannot_override_the_harness(sandbox) -> None:
    problems = load_humaneval()
    cheats = [
        # redefining the benchmark's check to accept anything
        (
            "HumanEval/0",
            "def check(candidate):\n    pass\n\ndef has_close_elements(numbers, threshold):\n    return 0\n",
        ),
        # replacing the prompt's helper the tests use: encode becomes identity, so identity "decodes"
        ("HumanEval/38", "def encode_cyclic(s):\n    return s\n\ndef decode_cyclic(s):\n    return s\n"),
    ]
    results = sandbox.run_many([assemble(problems[t], code, extract=False) for t, code in cheats])
    assert [r.status for r in results] == [Status.FAILED, Status.FAILED]
    assert all(r.error_type == "AssertionError" for r in results)


def test_random_test_inputs_give_the_same_verdict_every_time(sandbox) -> None:
    # a decoder right for about half of the random strings the tests draw: fixed seeds fix the verdict
    p = load_humaneval()["HumanEval/38"]
    flaky = (
        "import random\n\ndef decode_cyclic(s: str):\n"
        "    if random.random() < 0.995:\n        return encode_cyclic(encode_cyclic(s))\n    return s\n"
    )
    results = sandbox.run_many([assemble(p, flaky, extract=False, seed=0) for _ in range(6)])
    assert len({(r.status, r.message) for r in results}) == 1


def test_check_samples_reads_both_styles_and_reports_each_sample(sandbox, tmp_path: Path) -> None:
    problems = load_humaneval()
    p0, p2 = problems["HumanEval/0"], problems["HumanEval/2"]
    lines = [
        {"task_id": "HumanEval/0", "completion": reference_answer(p0, "completion")},
        {"task_id": "HumanEval/2", "completion": "```python\n" + reference_answer(p2, "chat") + "```"},
        {
            "task_id": "HumanEval/2",
            "completion": "def truncate_number(number: float) -> float:\n    return undefined\n",
        },
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = check_samples(problems, path, sandbox).to_dict()
    assert (report["passed"], report["total"]) == (2, 3)
    assert [r["passed"] for r in report["results"]] == [True, True, False]
    assert report["results"][2]["error_type"] == "NameError" and report["results"][2]["status"] == "failed"
    assert report["failures"][0]["task_id"] == "HumanEval/2"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "line 1: not JSON"),
        ('{"completion": "x"}', "line 1: needs a 'task_id'"),
        ('{"task_id": "HumanEval/0"}', "line 1: needs a 'completion'"),
        ('{"task_id": "HumanEval/999", "completion": ""}', "unknown task_id 'HumanEval/999'"),
    ],
)
def test_bad_samples_files_name_the_line(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(SamplesFileError, match=match) as err:
        check_samples(load_humaneval(), path, sandbox=None)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "tail",
    [
        "assert greatest_common_divisor(3, 5) == 3\n",  # the model tested its function, wrongly
        "print(greatest_common_divisor(25, 15))\n",
        "print(greatest_common_divisor(25, 15))\nassert greatest_common_divisor(3, 5) == 3\n",
    ],
)
def test_a_completion_is_cut_before_the_models_own_asserts_and_prints(sandbox, tail: str) -> None:
    problem = load_humaneval()["HumanEval/13"]  # greatest_common_divisor
    body = problem.meta["canonical_solution"]
    answer = body + "\n\n" + tail
    code = candidate_code(problem, answer, style="completion")
    assert code == problem.prompt + body.rstrip() + "\n"
    result = sandbox.run(assemble(problem, answer, style="completion"))
    assert result.passed and result.stdout == "", result
