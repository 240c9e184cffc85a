"""Per-problem CPU-time limits from the references' measured cost, stored once per machine."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from neatpipe.bench import BenchmarkDataError, assemble, load_humaneval, reference_answer
from neatpipe.bench.limits import (
    FORMAT,
    ReferenceCosts,
    TimeLimitPolicy,
    default_cache_path,
    machine_tag,
    problem_key,
    with_time_limits,
)
from neatpipe.sandbox import Sandbox

# A cheap problem and a few more; HumanEval/0's reference takes milliseconds.
TASKS = ("HumanEval/0", "HumanEval/2", "HumanEval/13")


@pytest.fixture(scope="module")
def problems():
    return load_humaneval().select(TASKS)


def test_policy_is_a_floor_a_multiple_and_a_ceiling() -> None:
    policy = TimeLimitPolicy(floor_s=2.0, factor=4.0, ceiling_s=60.0)
    assert policy.limit(0.003) == 2.0
    assert policy.limit(2.6641) == 10.656
    assert policy.limit(100.0) == 60.0
    assert "max(2 s, 4 x reference CPU time)" in policy.describe()


@pytest.mark.parametrize(
    ("fields", "words"),
    [({"floor_s": 0}, "floor_s"), ({"factor": -1}, "factor"), ({"floor_s": 5, "ceiling_s": 1}, "below")],
)
def test_bad_policies_name_the_field(fields: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        TimeLimitPolicy(**fields)


def test_costs_are_measured_once_stored_and_reused(problems, sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "costs.json"
    first = ReferenceCosts(path)
    costs = first.costs(problems, sandbox)
    assert set(costs) == set(TASKS) and first.measured == len(TASKS)
    assert all(0 < c < 1.0 for c in costs.values())  # CPU seconds of one run of each reference
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["machine"] == machine_tag()
    assert {v["task_id"] for v in data["costs"].values()} == set(TASKS)
    assert all(v["status"] == "passed" for v in data["costs"].values())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]  # written by a rename
    again = ReferenceCosts(path)
    assert again.costs(problems, sandbox) == costs and again.measured == 0  # the same numbers, no run


def test_a_changed_problem_is_measured_again(problems, sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "costs.json"
    ReferenceCosts(path).costs(problems, sandbox)
    p = problems["HumanEval/0"]
    edited = dataclasses.replace(p, test_setup=p.test_setup + "\n# one more line\n")
    assert problem_key(edited) != problem_key(p)
    costs = ReferenceCosts(path)
    costs.costs([edited, problems["HumanEval/2"]], sandbox)
    assert costs.measured == 1
    assert len(json.loads(path.read_text())["costs"]) == len(TASKS) + 1


def test_limits_follow_the_costs_and_are_recorded(problems, sandbox: Sandbox, tmp_path: Path) -> None:
    costs = ReferenceCosts(tmp_path / "costs.json")
    policy = TimeLimitPolicy(floor_s=0.5, factor=1000.0, ceiling_s=30.0)
    limited = with_time_limits(problems, sandbox, policy, costs)
    measured = costs.costs(problems, sandbox)
    for p in limited:
        assert p.time_limit_s == policy.limit(measured[p.task_id]) > 0.5
    assert str(costs.path) in limited.options["time_limits"] and "1000 x" in limited.options["time_limits"]
    program = assemble(limited["HumanEval/0"], reference_answer(limited["HumanEval/0"], "chat"))
    result = sandbox.run(program)
    assert result.passed and result.cpu_limit_s == limited["HumanEval/0"].time_limit_s


def test_the_default_file_is_per_machine_under_the_cache_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path))
    path = default_cache_path()
    assert path.parent == tmp_path / "reference-costs" and path.name == f"{machine_tag()}.json"
    assert os.sep not in machine_tag() and machine_tag()


@pytest.mark.parametrize("content", ["not json", '{"format": "other", "costs": {}}', '{"format": "x"}'])
def test_a_broken_costs_file_is_an_error_naming_it(
    problems, sandbox: Sandbox, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "costs.json"
    path.write_text(content)
    with pytest.raises(BenchmarkDataError, match="delete it to measure again") as info:
        ReferenceCosts(path).costs(problems, sandbox)
    assert str(path) in str(info.value)
