"""The cross-configuration tables: unfixable problems with their dominant error, regressions vs solo,
consistency over repeats; from hand-made trajectories, the reference study's file and neatpipe analyze."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neatpipe.analysis.cross import cross_tables, final_state
from neatpipe.analysis.iterations import (
    Attempt,
    IterationTrajectory,
    TrajectorySet,
    error_category,
    neatpipe_sets_from_records,
)
from neatpipe.cli import main

STUDY = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper" / "iteration_analysis.json"
if not STUDY.exists():
    STUDY = Path("/work/shared/data/paper/iteration_analysis.json")


def config(name: str, outcomes: dict[str, list[str | None]], solo: bool = False) -> TrajectorySet:
    """A configuration whose problem ``task`` ended in run r as ``outcomes[task][r]`` (None: passed)."""
    trajs = [
        IterationTrajectory(task, (Attempt(0, error is None, error),), repeat=r)
        for task, errors in outcomes.items()
        for r, error in enumerate(errors)
    ]
    return TrajectorySet(name, trajs, meta={"solo": solo})


SOLO = config("solo", {"a": [None, None, "NameError"], "b": [None, "X", "X"], "c": ["AssertionError"] * 3,
                       "d": [None] * 3, "only-solo": [None] * 3}, solo=True)  # fmt: skip
PIPE = config("pipe", {"a": ["AssertionError", None, "AssertionError"], "b": [None] * 3,
                       "c": ["NameError", "AssertionError", "AssertionError"], "d": [None] * 3})  # fmt: skip
OTHER = config("other", {"a": [None], "b": [None], "c": ["NameError"], "d": ["TypeError"]})


def test_unfixable_are_problems_no_run_of_any_configuration_passes() -> None:
    tables = cross_tables([SOLO, PIPE, OTHER])
    u = tables.unfixable
    assert u.n_problems == 4  # only-solo is not attempted by every configuration
    assert [p.task_id for p in u.problems] == ["c"]
    # c failed with AssertionError 3 (solo) + 2 (pipe) times, NameError 1 + 1: AssertionError dominates
    assert u.problems[0].dominant_error == "AssertionError" and dict(u.problems[0].errors) == {
        "AssertionError": 5,
        "NameError": 2,
    }
    assert u.by_dominant_error == {"AssertionError": 1}


def test_a_tie_goes_to_the_category_listed_first() -> None:
    a = config("a", {"t": ["AssertionError"]})
    b = config("b", {"t": ["NameError"]})
    assert cross_tables([a, b]).unfixable.problems[0].dominant_error == "NameError"


def test_regressions_vs_solo_use_the_majority_of_runs() -> None:
    tables = cross_tables([SOLO, PIPE, OTHER])
    assert tables.solo == ("solo",)
    by = {t.pipeline: t for t in tables.regressions}
    assert set(by) == {"pipe", "other"}
    pipe = by["pipe"]
    # a: solo 2/3 (solves), pipe 1/3 (does not): a regression; b: solo 1/3, pipe 3/3: a gain
    assert [r.task_id for r in pipe.regressions] == ["a"] and [g.task_id for g in pipe.gains] == ["b"]
    a = pipe.regressions[0]
    assert (a.solo_passes, a.solo_runs, a.pipeline_passes, a.pipeline_runs) == (2, 3, 1, 3)
    assert a.pipeline_error == "AssertionError" and pipe.errors == {"AssertionError": 1}
    other = by["other"]  # d: solo 3/3, other 0/1 with TypeError
    assert [r.task_id for r in other.regressions] == ["d"] and other.errors == {"TypeError": 1}


def test_a_named_reference_replaces_the_solo_ones_and_an_unknown_one_is_named() -> None:
    tables = cross_tables([SOLO, PIPE, OTHER], solo=["other"])
    assert {(t.solo, t.pipeline) for t in tables.regressions} == {("other", "solo"), ("other", "pipe")}
    with pytest.raises(KeyError, match="no configuration named 'nope'; there are: solo, pipe, other"):
        cross_tables([SOLO, PIPE, OTHER], solo=["nope"])


def test_consistency_counts_the_runs_that_pass_each_problem() -> None:
    rows = {r.configuration: r for r in cross_tables([SOLO, PIPE]).consistency.rows}
    assert rows["solo"].histogram == (1, 1, 1, 1) and dict(rows["solo"].passes) == {
        "a": 2,
        "b": 1,
        "c": 0,
        "d": 3,
    }
    assert rows["pipe"].histogram == (1, 1, 0, 2)
    assert (rows["pipe"].never, rows["pipe"].sometimes, rows["pipe"].always) == (1, 1, 2)


def test_the_study_file_unfixable_problems_match_a_direct_count() -> None:
    from neatpipe.analysis.iterations import read_study_trajectories

    sets = read_study_trajectories(STUDY)
    raw = json.loads(STUDY.read_text())["raw_trajectories"]
    by_task: dict[str, list[dict]] = {}
    for problems in raw.values():
        for p in problems:
            by_task.setdefault(p["task_id"], []).append(p["trajectory"][-1])
    expected = sorted(t for t, last in by_task.items() if not any(s["passed"] for s in last))
    u = cross_tables(sets).unfixable
    assert sorted(p.task_id for p in u.problems) == expected and u.n_problems == 164
    for p in u.problems:  # each dominant error is the most common category of its final errors
        cats = [error_category(s["error_type"]) for s in by_task[p.task_id]]
        assert cats.count(p.dominant_error) == max(cats.count(c) for c in cats)


def _line(label: str, task: str, repeat: int, passed: bool, roles: list[str]) -> dict:
    return {
        "format": "neatpipe-trajectory/1",
        "task_id": task,
        "label": label,
        "repeat": repeat,
        "passed": passed,
        "final": {"error_type": None if passed else "NameError"},
        "steps": [{"role": r} for r in roles],
    }


def test_solo_configurations_are_recognised_from_their_steps() -> None:
    records = [
        _line("solo", "t", 0, True, ["generator", "executor"]),
        _line("refine", "t", 0, False, ["generator", "executor", "refiner", "executor"]),
        _line("best-of-2", "t", 0, False, ["generator", "generator", "selector"]),
    ]
    sets = neatpipe_sets_from_records((f"line {i}", r) for i, r in enumerate(records))
    assert [n for n, ts in sets.items() if ts.meta["solo"]] == ["solo"]
    assert final_state(sets["refine"].trajectories[0]) == "NameError"
    tables = cross_tables(sets)
    assert {t.pipeline for t in tables.regressions} == {"refine", "best-of-2"}
    assert all([r.task_id for r in t.regressions] == ["t"] for t in tables.regressions)


def test_analyze_prints_the_tables_for_several_configurations(tmp_path: Path, capsys) -> None:
    path = tmp_path / "t.jsonl"
    lines = [
        _line("solo", "HumanEval/0", 0, True, ["generator"]),
        _line("solo", "HumanEval/1", 0, False, ["generator"]),
        _line("refine", "HumanEval/0", 0, False, ["generator", "refiner"]),
        _line("refine", "HumanEval/1", 0, False, ["generator", "refiner"]),
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Across the 2 configurations" in out and "Unfixable problems" in out
    assert "Regressions vs solo" in out and "Consistency over repeats" in out
    assert main(["analyze", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["cross_configuration"]
    assert data["unfixable"]["problems"] == [
        {"task_id": "HumanEval/1", "dominant_error": "NameError", "errors": {"NameError": 2}}
    ]
    assert data["regressions_vs_solo"][0]["regressions"][0]["task_id"] == "HumanEval/0"
    assert main(["analyze", str(path), "--solo", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--solo" in err[0] and "no configuration named 'nope'" in err[0]
    assert main(["analyze", str(path), "--pipeline", "solo"]) == 0  # one configuration: no cross tables
    assert "Across" not in capsys.readouterr().out


def test_evaluate_prints_the_tables_for_several_genomes(tmp_path: Path, capsys) -> None:
    repo = Path(__file__).resolve().parents[1]
    args = ["evaluate", str(repo / "genomes" / "solo.yaml"), str(repo / "genomes" / "self-refine.yaml"),
            "--model", "qwen2.5-coder-1.5b=synthetic:coder-1.5b", "--limit", "10", "--repeats", "2",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "== Across the 2 designs" in out and "self-refine  solo" in out
    report = json.loads((tmp_path / "evaluation.json").read_text())
    cross = report["cross_configuration"]
    assert cross["solo"] == ["solo"] and cross["consistency"]["n_problems"] == 10
    assert set(cross["consistency"]["configurations"]["solo"]["consistency"]) == {"0", "1", "2"}


def test_passing_in_half_the_runs_is_not_solving() -> None:
    solo = config("solo", {"t": [None, "AssertionError"], "u": [None, None]}, solo=True)
    pipe = config("pipe", {"t": ["AssertionError"] * 2, "u": [None, "NameError"]})
    table = cross_tables([solo, pipe]).regressions[0]
    assert [r.task_id for r in table.regressions] == ["u"] and not table.gains
