"""Refinement tables on small hand-made neatpipe trajectories, early-stopped ones included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neatpipe.analysis.iterations import (
    Attempt,
    IterationTrajectory,
    TrajectoryFormatError,
    detect_kind,
    early_stopping_table,
    error_category,
    error_fix_table,
    final_outcomes,
    load_trajectories,
    read_neatpipe_trajectories,
    regression_table,
    transition_table,
)
from neatpipe.analysis.render import render


def record(task, iterations, *, repeat=0, label="self-refine", early_stop=True, passed=None):
    """One neatpipe-trajectory/1 line; ``iterations`` as (hidden passed, error_type, visible passed)."""
    its = [
        {"iter": i, "passed": p, "error_type": e, "visible_passed": v}
        for i, (p, e, v) in enumerate(iterations)
    ]
    last = iterations[-1]
    return {
        "format": "neatpipe-trajectory/1",
        "task_id": task,
        "benchmark": "humaneval",
        "genome": "abc123",
        "label": label,
        "repeat": repeat,
        "seed": repeat,
        "feedback": "visible",
        "synthetic": True,
        "passed": last[0] if passed is None else passed,
        "final": {"code": "", "status": "passed" if last[0] else "failed", "error_type": last[1]},
        "steps": [],
        "stages": [{"node": "refine-3", "early_stop": early_stop, "max_iterations": 3, "iterations": its}],
    }


OK = (True, None, True)
A = (False, "AssertionError", False)

# An early-stopped self-refine run over six problems (visible-test feedback):
RUN0 = [
    record("T/0", [OK]),  # passed at once: the loop never ran
    record("T/1", [(False, "NameError", False), OK]),  # fixed at 1
    record("T/2", [A, A, A, A]),  # never fixed, ran to the limit
    record("T/3", [(False, "Timeout", False), (False, "SyntaxError", False), OK]),  # fixed at 2
    record("T/4", [A, (False, "AssertionError", True)]),  # visible tests pass, hidden fail: stops unsolved
    # Hidden tests pass at 1 while the visible ones fail, so the loop goes on and breaks it at 2:
    record("T/5", [(False, "KeyError", False), (True, None, False), (False, "IndexError", True)]),
]
RUN1 = (
    [dict(r, repeat=1) for r in RUN0[:2]]
    + [record("T/2", [OK], repeat=1)]
    + [dict(r, repeat=1) for r in RUN0[3:]]
)


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture()
def run_file(tmp_path):
    return write_jsonl(tmp_path / "traj.jsonl", RUN0)


def test_error_categories():
    assert error_category(None) == "passed"
    assert error_category("Timeout") == "TimeoutError"
    assert error_category("TimeoutError") == "TimeoutError"
    assert error_category("KeyError") == error_category("IndexError") == "IndexError/KeyError"
    assert error_category("IndentationError") == "SyntaxError"
    assert error_category("UnboundLocalError") == "Other"  # as the study grouped it
    assert error_category("ValueError") == error_category("Crash") == "Other"


def test_read_neatpipe_jsonl(run_file):
    assert detect_kind(run_file) == "neatpipe"
    sets = load_trajectories(run_file)
    assert list(sets) == ["self-refine"]
    ts = sets["self-refine"]
    assert ts.kind == "neatpipe" and ts.n_runs == 1 and ts.early_stop == "early-stopped"
    assert ts.meta["feedback"] == "visible" and ts.meta["synthetic"] is True
    assert [len(t.steps) for t in ts.trajectories] == [1, 2, 4, 3, 2, 3]
    assert ts.trajectories[5].steps[1] == Attempt(1, True, None, False)


def test_early_stopping_table_on_early_stopped_run(run_file):
    t = early_stopping_table(read_neatpipe_trajectories(run_file)["self-refine"].trajectories)
    assert t.stopping == "early-stopped" and t.n_trajectories == 6
    assert t.solved == [1, 3, 4, 4]  # T/5 counts as solved from iteration 1 on (oracle stopping)
    assert t.passing == [1, 3, 3, 3]  # held candidates: T/5's loop output fails
    assert [r.first_fixes for r in t.rows] == [1, 2, 1, 0]
    assert [r.fixes for r in t.rows] == [0, 2, 1, 0]
    assert [r.regressions for r in t.rows] == [0, 0, 1, 0]
    assert [r.net for r in t.rows[1:]] == [2, 0, 0]
    assert [r.net_first for r in t.rows[1:]] == [2, 0, 0]
    # A longer horizon holds every last candidate.
    assert early_stopping_table(run_trajs(), horizon=5).solved == [1, 3, 4, 4, 4, 4]


def run_trajs():
    return [
        IterationTrajectory(
            r["task_id"],
            tuple(Attempt(i["iter"], i["passed"], i["error_type"]) for i in r["stages"][0]["iterations"]),
        )
        for r in RUN0
    ]


def test_error_fix_table(run_file):
    t = error_fix_table(read_neatpipe_trajectories(run_file)["self-refine"].trajectories)
    assert t.horizon == 3 and t.n_initially_passed == 1
    assert t.as_study_dict() == {
        "NameError": {"total": 1, "fixed_iter_1": 1, "fixed_iter_2": 0, "fixed_iter_3": 0, "never_fixed": 0},
        "AssertionError": {
            "total": 2,
            "fixed_iter_1": 0,
            "fixed_iter_2": 0,
            "fixed_iter_3": 0,
            "never_fixed": 2,
        },
        "IndexError/KeyError": {
            "total": 1,
            "fixed_iter_1": 1,
            "fixed_iter_2": 0,
            "fixed_iter_3": 0,
            "never_fixed": 0,
        },
        "TimeoutError": {
            "total": 1,
            "fixed_iter_1": 0,
            "fixed_iter_2": 1,
            "fixed_iter_3": 0,
            "never_fixed": 0,
        },
    }
    assert [r.category for r in t.rows] == [
        "NameError",
        "AssertionError",
        "IndexError/KeyError",
        "TimeoutError",
    ]
    assert t.row("AssertionError").fix_rate == 0.0


def test_transition_and_regression_tables(run_file):
    trajs = read_neatpipe_trajectories(run_file)["self-refine"].trajectories
    t = transition_table(trajs)
    assert t.counts == {
        ("passed", "passed"): 1,
        ("NameError", "passed"): 1,
        ("AssertionError", "AssertionError"): 2,
        ("TimeoutError", "passed"): 1,
        ("IndexError/KeyError", "IndexError/KeyError"): 1,
    }
    assert t.states[0] == "passed" and t.after("passed") == 3 and t.before("AssertionError") == 2
    r = regression_table(trajs)
    assert (r.initial_passes, r.broke, r.first_break_at) == (1, 0, (0, 0, 0))


def test_repeats_are_grouped(tmp_path):
    path = write_jsonl(
        tmp_path / "two.jsonl", RUN0 + RUN1 + [record("T/0", [(False, "NameError", False)], label="solo")]
    )
    sets = read_neatpipe_trajectories(path)
    assert set(sets) == {"self-refine", "solo"}
    ts = sets["self-refine"]
    assert ts.n_runs == 2 and [len(v) for v in ts.runs.values()] == [6, 6]
    outcomes = final_outcomes(ts)
    assert [sum(run) for run in outcomes] == [3, 4]
    t = early_stopping_table(ts.trajectories)
    assert t.n_runs == 2 and t.solved == [2 + 1, 3 + 4, 4 + 5, 4 + 5]
    assert "2 runs" in render(t)


def test_line_without_stages_is_one_step(tmp_path):
    rec = record("T/9", [OK], label="solo")
    rec.update(stages=[], passed=False, final={"status": "timeout", "error_type": "Timeout"})
    ts = read_neatpipe_trajectories(write_jsonl(tmp_path / "s.jsonl", [rec]))["solo"]
    (traj,) = ts.trajectories
    assert traj.steps == (Attempt(0, False, "Timeout"),)
    assert traj.initial_category == "TimeoutError"


def test_final_passed_field_is_authoritative(tmp_path):
    rec = record("T/1", [(False, "NameError", False), OK], passed=False)  # a later stage failed it
    ts = read_neatpipe_trajectories(write_jsonl(tmp_path / "f.jsonl", [rec]))["self-refine"]
    assert final_outcomes(ts) == [[False]]


def test_bad_inputs_name_the_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(TrajectoryFormatError, match="nope.jsonl: no such file"):
        load_trajectories(missing)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(TrajectoryFormatError, match=r"notes.txt: expected neatpipe trajectory JSONL"):
        load_trajectories(text)
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    with pytest.raises(TrajectoryFormatError, match="other.json"):
        load_trajectories(other)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(RUN0[0]) + "\n{not json\n")
    with pytest.raises(TrajectoryFormatError, match=r"broken.jsonl:2: not JSON"):
        load_trajectories(broken)
    gap = tmp_path / "gap.jsonl"
    bad = record("T/1", [A, OK])
    bad["stages"][0]["iterations"][1]["iter"] = 2
    write_jsonl(gap, [bad])
    with pytest.raises(
        TrajectoryFormatError, match=r"gap.jsonl:1: stages\[-1\].iterations\[1\]: iteration 2"
    ):
        load_trajectories(gap)
    dup = write_jsonl(tmp_path / "dup.jsonl", [RUN0[0], RUN0[0]])
    with pytest.raises(TrajectoryFormatError, match=r"dup.jsonl:2: T/0 appears twice"):
        load_trajectories(dup)


def test_renderings(run_file):
    trajs = read_neatpipe_trajectories(run_file)["self-refine"].trajectories
    for table in (
        early_stopping_table(trajs),
        error_fix_table(trajs),
        transition_table(trajs),
        regression_table(trajs),
    ):
        text = render(table, "text", title="x")
        md = render(table, "markdown", title="x")
        assert ": x" in text.splitlines()[0]
        lines = [ln for ln in md.splitlines() if ln.startswith("|")]
        assert len({ln.count("|") for ln in lines}) == 1  # every Markdown row has the same columns
        assert lines[1].startswith("|:---")
    text = render(early_stopping_table(trajs))
    header, rule = text.splitlines()[1:3]
    assert header.split() == [
        "iter",
        "solved",
        "first",
        "fixes",
        "passing",
        "fixes",
        "regressions",
        "net",
        "net",
        "(study)",
    ]
    assert len(header) == len(rule)
    with pytest.raises(TypeError):
        render(object())


# --------------------------------------------------------------------------- properties

step_states = st.lists(
    st.sampled_from([None, "NameError", "AssertionError", "Timeout", "ValueError"]), min_size=1, max_size=5
)


def _traj(k, errors, early):
    if early:  # an early-stopped loop ends at its first pass
        cut = next((i for i, e in enumerate(errors) if e is None), len(errors) - 1)
        errors = errors[: cut + 1]
    return IterationTrajectory(
        f"T/{k}", tuple(Attempt(i, e is None, e) for i, e in enumerate(errors)), early_stop=early
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(step_states, st.booleans()), min_size=1, max_size=25))
def test_table_invariants(problems):
    trajs = [_traj(k, errs, early) for k, (errs, early) in enumerate(problems)]
    n = len(trajs)
    es = early_stopping_table(trajs)
    solved = es.solved
    assert all(a <= b for a, b in zip(solved, solved[1:], strict=False))  # cumulative solved never decreases
    assert sum(r.first_fixes for r in es.rows) == solved[-1] <= n
    for prev, row in zip(es.rows, es.rows[1:], strict=False):
        assert row.net == row.fixes - row.regressions == row.passing - prev.passing
        assert row.passing <= row.solved
    ef = error_fix_table(trajs)
    assert sum(r.total for r in ef.rows) + ef.n_initially_passed == n
    assert all(r.fixed + r.never == r.total for r in ef.rows)
    # An early-stopped trajectory can never regress, and every first fix is counted once.
    assert sum(r.fixed for r in ef.rows) == solved[-1] - solved[0]
    tt = transition_table(trajs)
    assert sum(tt.counts.values()) == n
    assert tt.after("passed") == es.rows[-1].passing
    if all(t.early_stop for t in trajs):
        assert es.solved == es.passing
        assert all(r.regressions == 0 for r in es.rows)
