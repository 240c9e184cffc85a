"""``neatpipe sandbox check``: references and samples files through assembly and the sandbox."""

from __future__ import annotations

import json

import pytest

from neatpipe.bench import load_humaneval
from neatpipe.cli import main


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


def _samples(tmp_path, rows) -> str:
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_references_json_lists_passed_total_and_failures(capsys):
    assert main(["sandbox", "check", "--benchmark", "humaneval", "--style", "chat", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["passed"], report["total"], report["failures"]) == (164, 164, [])
    assert report["checked"] == "reference solutions (chat style)"
    # each problem's CPU-time limit derived from its reference's measured cost, recorded per result
    assert report["options"]["time_limits"].startswith("max(6 s, 4 x reference CPU time)")
    assert all(
        r["cpu_limit_s"] >= 6.0 and r["wall_limit_s"] == 4 * r["cpu_limit_s"] + 5 for r in report["results"]
    )
    assert all(0 < r["cpu_s"] < r["cpu_limit_s"] for r in report["results"])


def test_a_fixed_time_limit_replaces_the_derived_ones(tmp_path, capsys, humaneval):
    p = humaneval["HumanEval/4"]
    rows = [{"task_id": p.task_id, "completion": p.meta["canonical_solution"]},
            {"task_id": p.task_id, "completion": "    while True:\n        pass\n"}]  # fmt: skip
    args = ["sandbox", "check", "--benchmark", "humaneval", "--samples", _samples(tmp_path, rows)]
    assert main([*args, "--time-limit", "0.5", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["time_limits"] == "0.5 s for every problem"
    assert [(r["status"], r["cpu_limit_s"]) for r in report["results"]] == [("passed", 0.5), ("timeout", 0.5)]
    assert 0.5 <= report["results"][1]["cpu_s"] < 0.8
    assert main([*args, "--time-limit", "0"]) == 2
    assert "--time-limit must be positive" in capsys.readouterr().err


def test_mbpp_references_both_styles(capsys, mbpp_path):
    assert main(["sandbox", "check", "--benchmark", "mbpp", "--mbpp", str(mbpp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "mbpp, reference solutions (completion style): 427/427 passed",
        "mbpp, reference solutions (chat style): 427/427 passed",
    ]


def test_samples_in_both_styles_are_scored_with_per_sample_results(tmp_path, capsys, humaneval):
    p0, p2 = humaneval["HumanEval/0"], humaneval["HumanEval/2"]
    rows = [
        {"task_id": p0.task_id, "completion": p0.reference_solution},  # completion style, correct
        {"task_id": p2.task_id, "completion": f"```python\ndef {p2.entry_point}(number):\n    return 1\n```"},
        {"task_id": p0.task_id, "completion": "    return undefined_name\n"},
    ]
    code = main(
        ["sandbox", "check", "--benchmark", "humaneval", "--samples", _samples(tmp_path, rows), "--json"]
    )
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["passed"], report["total"]) == (1, 3)
    got = [(r["task_id"], r["passed"], r["status"], r["error_type"]) for r in report["results"]]
    assert got == [
        ("HumanEval/0", True, "passed", None),
        ("HumanEval/2", False, "failed", "AssertionError"),
        ("HumanEval/0", False, "failed", "NameError"),
    ]
    assert len(report["failures"]) == 2


def test_text_output_names_each_failure(tmp_path, capsys, humaneval):
    p = humaneval["HumanEval/4"]
    rows = [{"task_id": p.task_id, "completion": "    return 0.0\n"}]
    assert main(["sandbox", "check", "--benchmark", "humaneval", "--samples", _samples(tmp_path, rows)]) == 1
    out = capsys.readouterr().out
    assert "0/1 passed" in out and "FAIL HumanEval/4: failed (AssertionError)" in out


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"task_id": "HumanEval/0"}\n', "line 1: needs a 'completion' string"),
        ('{"task_id": "HumanEval/999", "completion": ""}\n', "line 1: unknown task_id"),
        ('\n{"task_id": "HumanEval/0", "completion": "x"}\nnot json\n', "line 3: not JSON"),
    ],
)
def test_bad_samples_files_name_the_file_and_line(tmp_path, capsys, content, words):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["sandbox", "check", "--benchmark", "humaneval", "--samples", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and words in err


def test_missing_mbpp_file_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere.json"
    assert main(["sandbox", "check", "--benchmark", "mbpp", "--mbpp", str(missing)]) == 2
    assert f"MBPP file not found: {missing}" in capsys.readouterr().err
