"""``neatpipe analyze`` on both kinds of trajectories file, on main_results, and on bad input."""

from __future__ import annotations

import json

import pytest
from test_analysis_tables import RUN0, RUN1, write_jsonl

from neatpipe.cli import main


@pytest.fixture(scope="module")
def paper(shared_data):
    return shared_data / "paper"


def run(capsys, *argv):
    code = main(["analyze", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_study_file_all_pipelines(capsys, paper):
    code, out, err = run(capsys, paper / "iteration_analysis.json", "--bootstrap", "200")
    assert code == 0, err
    for name in ("qwen→exec→llama", "llama→exec→llama", "NEAT v3 champion", "qwen2.5-coder:3b self-refine"):
        assert f"Early stopping: {name}" in out
        assert f"Error fixes by initial error: {name}" in out
        assert f"Error transitions: {name}" in out
    es = out.split("Early stopping: NEAT v3 champion")[1].splitlines()
    assert [ln.split()[1] for ln in es[3:7]] == ["78", "96", "100", "102"]


def test_study_file_one_pipeline_json(capsys, paper):
    code, out, _ = run(
        capsys,
        paper / "iteration_analysis.json",
        "--pipeline",
        "qwen→exec→llama",
        "--json",
        "--bootstrap",
        "100",
    )
    assert code == 0
    data = json.loads(out)
    (p,) = data["pipelines"].values()
    assert [r["solved"] for r in p["early_stopping"]["rows"]] == [69, 91, 98, 99]
    assert p["error_fix"]["by_category"]["NameError"]["fixed_iter_1"] == 12
    assert p["transitions"]["transitions"]["passed"]["passed"] == 34
    assert p["regressions"]["broke"] == 43
    assert p["pass_at_1"]["pass_counts"] == [50]


def test_study_file_markdown(capsys, paper):
    code, out, _ = run(
        capsys,
        paper / "iteration_analysis.json",
        "--pipeline",
        "llama→exec→llama",
        "--markdown",
        "--bootstrap",
        "50",
    )
    assert code == 0
    assert "## llama→exec→llama" in out
    assert "| 3 | 93 |" in out


def test_neatpipe_jsonl(capsys, tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", RUN0 + RUN1)
    code, out, err = run(capsys, path, "--bootstrap", "100")
    assert code == 0, err
    assert "self-refine  (neatpipe:" in out
    assert "feedback: visible tests" in out and "synthetic model" in out
    assert "3.5 ± 0.7 of 6 over 2 run(s)" in out
    assert "counts over 12 problem-runs (2 runs)" in out
    code, out, _ = run(capsys, path, "--json", "--bootstrap", "100")
    p = json.loads(out)["pipelines"]["self-refine"]
    assert p["n_runs"] == 2 and p["pass_at_1"]["pass_counts"] == [3, 4]
    assert p["early_stopping"]["stopping"] == "early-stopped"


def test_compare(capsys, paper):
    code, out, _ = run(capsys, "--compare", paper / "main_results.json")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("Self-refine vs solo (llama)"))
    assert "3.82" in line and "4.77" in line and "+17.4 (4.7σ)" in line
    assert "llama3.2:3b solo" in out and "76.6" in out
    # The same file given as TRAJECTORIES is recognised by its content.
    code2, out2, _ = run(capsys, paper / "main_results.json")
    assert code2 == 0 and out2 == out
    code, out, _ = run(capsys, "--compare", paper / "main_results.json", "--json")
    seps = json.loads(out)["compare"]["separations"]
    assert seps[0]["sigma"] == pytest.approx(3.815, abs=1e-3)


def test_errors_name_the_file(capsys, tmp_path, paper):
    code, out, err = run(capsys, tmp_path / "missing.jsonl")
    assert code == 2 and "missing.jsonl: no such file" in err and out == ""
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    code, _, err = run(capsys, bad)
    assert code == 2 and "bad.json: expected neatpipe trajectory JSONL" in err
    code, _, err = run(capsys, paper / "iteration_analysis.json", "--pipeline", "nope")
    assert code == 2 and "no pipeline named 'nope'" in err and "NEAT v3 champion" in err
    code, _, err = run(capsys, "--compare", paper / "iteration_analysis.json")
    assert code == 2 and "iteration_analysis.json: expected an object with 'configs'" in err
    code, _, err = run(capsys)
    assert code == 2 and "give a TRAJECTORIES file" in err
