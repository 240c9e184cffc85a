"""``neatpipe compare``: only like with like, paired by problem, Holm-corrected, every row with its source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from neatpipe.analysis.stats import holm_adjust, paired_t_test, welch_t_test
from neatpipe.cli import main
from neatpipe.evolution.compare import ComparisonError, compare_runs, render_comparison
from neatpipe.evolution.runlog import RunDirError

IDS = [f"HumanEval/{i}" for i in range(40)]


def entry(label: str, passes: list[int], repeats: int, **over: Any) -> dict[str, Any]:
    """An evaluation.json entry whose per-repeat pass rates agree with its per-problem passes: the
    first ``passes[j]`` repeats pass problem j."""
    ids = over.pop("problems", IDS)
    rates = [sum(1 for n in passes if n > r) / len(ids) for r in range(repeats)]
    e = {"label": label, "benchmark": "humaneval", "problems": ids, "repeats": repeats, "pass_rates": rates,
         "per_problem": dict(zip(ids, passes, strict=True)), "feedback": "hidden", "synthetic": False}  # fmt: skip
    e.update(over)
    return e


def write_eval(path: Path, *entries: dict[str, Any]) -> Path:
    path.mkdir(parents=True)
    (path / "evaluation.json").write_text(
        json.dumps({"benchmark": "humaneval", "evaluations": list(entries)})
    )
    return path


SOLO = [3] * 20 + [0] * 20
REFINE = [3] * 20 + [3, 3, 2] + [0] * 17


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"benchmark": "mbpp"}, "benchmark humaneval vs mbpp"),
        ({"problems": IDS[:30] + [f"HumanEval/{i}" for i in range(100, 110)]}, "different problems (40 vs 40, 30 in common)"),
        ({"feedback": "oracle"}, "feedback hidden vs oracle"),
        ({"synthetic": True}, "real models vs synthetic models"),
    ],
)  # fmt: skip
def test_a_mismatched_pair_is_refused_in_one_line(tmp_path: Path, capsys, change, reason) -> None:
    a = write_eval(tmp_path / "a", entry("solo", SOLO, 3))
    b = write_eval(tmp_path / "b", entry("self-refine", REFINE, 3, **change))
    assert main(["compare", str(a), str(b)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and reason in err and str(a) in err and str(b) in err and "--split" in err


def test_split_compares_each_group_and_says_why_they_are_apart(tmp_path: Path, capsys) -> None:
    a = write_eval(tmp_path / "a", entry("solo", SOLO, 3), entry("self-refine", REFINE, 3))
    b = write_eval(tmp_path / "b", entry("solo", SOLO, 3, feedback="oracle"), entry("self-refine", REFINE, 3, feedback="oracle"))  # fmt: skip
    result = compare_runs([a, b], split=True)
    assert [len(g["entries"]) for g in result["groups"]] == [2, 2]
    assert [(p["a"], p["b"]) for p in result["pairs"]] == [
        ("solo @ a", "self-refine @ a"),
        ("solo @ b", "self-refine @ b"),
    ]  # never across the groups
    assert result["kept_apart"] == ["group 2 is kept apart from group 1: feedback hidden vs oracle"]
    assert result["tests"] == 2
    assert main(["compare", str(a), str(b), "--split"]) == 0
    out = capsys.readouterr().out
    assert "kept apart" in out and "hidden feedback" in out and "oracle feedback" in out


def test_pairs_are_compared_problem_by_problem(tmp_path: Path) -> None:
    a = write_eval(tmp_path / "a", entry("solo", SOLO, 3), entry("self-refine", REFINE, 3))
    (pair,) = compare_runs([a])["pairs"]
    rates_solo = [n / 3 for n in SOLO]
    rates_refine = [n / 3 for n in REFINE]
    expected = paired_t_test(rates_solo, rates_refine)
    assert pair["test"] == "paired t over problems" and pair["problems"] == 40
    assert pair["diff"] == pytest.approx(-8 / 120) and pair["t"] == pytest.approx(expected.t)
    assert pair["p"] == pytest.approx(expected.p) and pair["df"] == 39
    low, high = pair["ci"]
    assert low < pair["diff"] < high <= 0.0  # self-refine never loses a problem: no resample favours solo


def test_a_tiny_spread_over_repeats_is_not_a_tiny_p(tmp_path: Path) -> None:
    # the same problems pass in (nearly) every repeat, so the repeats' pass rates hardly vary and
    # Welch's test over them calls a difference on 2 problems of 40 significant; paired by problem it is not
    a = entry("a", [4] * 14 + [0] * 26, 4)
    b = entry("b", [4] * 12 + [3] + [0] * 27, 4)
    assert welch_t_test(a["pass_rates"], b["pass_rates"]).p < 0.02
    (pair,) = compare_runs([write_eval(tmp_path / "d", a, b)])["pairs"]
    assert pair["diff"] == pytest.approx(0.03125)
    assert pair["p"] > 0.2 and pair["p_holm"] > 0.2 and not pair["significant"]
    assert pair["ci"][0] <= 0.0 < pair["ci"][1]


def test_holm_corrects_every_test_made_and_says_so(tmp_path: Path) -> None:
    worse = [3] * 18 + [0] * 22
    d = write_eval(
        tmp_path / "d", entry("solo", SOLO, 3), entry("self-refine", REFINE, 3), entry("weak", worse, 3)
    )
    result = compare_runs([d])
    assert result["tests"] == 3 and result["correction"] == "holm"
    ps = [p["p"] for p in result["pairs"]]
    assert [p["p_holm"] for p in result["pairs"]] == pytest.approx(holm_adjust(ps))
    assert all(p["p_holm"] >= p["p"] for p in result["pairs"])
    assert any(p["p_holm"] > p["p"] for p in result["pairs"])
    assert all(p["significant"] == (p["p_holm"] < 0.05) for p in result["pairs"])
    text = render_comparison(result)
    assert "p (Holm)" in text and "Holm's method for the 3 tests" in text


def test_rows_carry_their_source_and_synthetic_rows_are_marked(tmp_path: Path) -> None:
    a = write_eval(tmp_path / "a", entry("solo", SOLO, 3, synthetic=True), entry("self-refine", REFINE, 3, synthetic=True))  # fmt: skip
    b = write_eval(tmp_path / "b", entry("solo", SOLO, 3, synthetic=True))
    result = compare_runs([a, b])
    names = [e["name"] for e in result["entries"]]
    assert names == ["solo @ a", "self-refine @ a", "solo @ b"]
    assert [e["source"] for e in result["entries"]] == [str(a), str(a), str(b)]
    text = render_comparison(result)
    assert "SYNTHETIC models" in text and text.count("SYNTHETIC") >= 4  # each row and the pairs' title
    real = render_comparison(
        compare_runs([write_eval(tmp_path / "r", entry("x", SOLO, 3), entry("y", REFINE, 3))])
    )
    assert "SYNTHETIC" not in real


def test_one_repeat_still_pairs_by_problem(tmp_path: Path) -> None:
    d = write_eval(tmp_path / "d", entry("solo", [min(n, 1) for n in SOLO], 1), entry("r", [min(n, 1) for n in REFINE], 1))  # fmt: skip
    (pair,) = compare_runs([d])["pairs"]
    assert "p" in pair and "separation_sd" not in pair
    assert "(one repeat)" in render_comparison(compare_runs([d]))


def test_a_validation_file_without_problem_ids_is_compared_only_within_itself(tmp_path: Path, capsys) -> None:
    old = tmp_path / "old"
    old.mkdir()
    rows = [
        {"label": "champion (7)", "mean": 0.5, "sd": 0.01, "pass_rates": [0.5, 0.49, 0.51], "repeats": 3,
         "problems": 40, "feedback": "hidden", "synthetic": False},
        {"label": "baseline: solo", "mean": 0.4, "sd": 0.01, "pass_rates": [0.4, 0.41, 0.39], "repeats": 3,
         "problems": 40, "feedback": "hidden", "synthetic": False},
    ]  # fmt: skip
    (old / "validation.json").write_text(json.dumps(rows))
    (pair,) = compare_runs([old])["pairs"]
    assert pair["test"] == "Welch t over repeats" and "not recorded" in pair["note"]
    other = write_eval(tmp_path / "new", entry("solo", SOLO, 3))
    with pytest.raises(ComparisonError, match="does not record which problems"):
        compare_runs([old, other])


def test_a_damaged_file_is_an_error_naming_entry_and_field(tmp_path: Path) -> None:
    bad = entry("solo", SOLO, 3)
    bad["per_problem"]["HumanEval/0"] = 9
    d = write_eval(tmp_path / "d", bad)
    with pytest.raises(RunDirError, match=r"evaluation.json: evaluation 0: per_problem\['HumanEval/0'\]"):
        compare_runs([d])
    gone = entry("solo", SOLO, 3)
    gone["pass_rates"] = "high"
    with pytest.raises(RunDirError, match="'pass_rates' must be a non-empty list"):
        compare_runs([write_eval(tmp_path / "e", gone)])


def test_evaluations_from_the_evaluate_command_compare(tmp_path: Path, capsys) -> None:
    args = ["evaluate", "genomes/solo.yaml", "genomes/self-refine.yaml", "--model",
            "qwen2.5-coder-1.5b=synthetic:coder-1.5b", "--limit", "12", "--repeats", "2"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tests"] == 6 and len(data["groups"]) == 1 and all("ci" in p for p in data["pairs"])
    same = [p for p in data["pairs"] if p["a"].split(" @ ")[0] == p["b"].split(" @ ")[0]]
    assert len(same) == 2 and all(p["diff"] == 0 and p["p"] == 1.0 for p in same)  # seeded: reproduced
