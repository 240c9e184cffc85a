"""``neatpipe loop``: the execution-feedback loop of ``experiments/feedback-training.yaml``, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neatpipe.cli import main
from neatpipe.runtime import read_trajectories

LOOP = Path(__file__).resolve().parents[1] / "experiments" / "feedback-training.yaml"


@pytest.fixture(scope="module")
def loop(tmp_path_factory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("loop") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEATPIPE_DATA_DIR", str(shared_data))
        assert main(["loop", str(LOOP), "--model-set", "offline", "--out", str(out)]) == 0
    return out


def test_the_offline_loop_harvests_exports_finetunes_and_evaluates(loop: Path) -> None:
    harvested = read_trajectories(loop / "harvest" / "trajectories.jsonl")
    assert len(harvested) == 40 * 2 and all(t.benchmark == "mbpp" for t in harvested)
    repair = (loop / "data" / "repair.jsonl").read_text().splitlines()
    assert repair and (loop / "data" / "preference.jsonl").exists()
    assert (loop / "tuned" / "finetune.json").exists() and (loop / "tuned" / "training_log.jsonl").exists()
    report = json.loads((loop / "evaluation" / "evaluation.json").read_text())
    by_label = {e["label"]: e for e in report["evaluations"]}
    assert set(by_label) == {"self-refine-base", "self-refine-tuned"}
    assert all(e["benchmark"] == "humaneval" and len(e["problems"]) == 4 for e in by_label.values())
    tuned = read_trajectories(loop / "evaluation" / "trajectories.jsonl")
    refiners = {s.model for t in tuned for s in t.steps if s.role == "refiner"}
    assert refiners == {"qwen2.5-coder-1.5b-base", "qwen2.5-coder-1.5b-tuned"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("format: neatpipe-loop/9\n", "format: expected neatpipe-loop/1"),
        (
            "format: neatpipe-loop/1\ngenome: g.yaml\nmodels: {a: x}\ntuned_model: b\nbase: tiny\n",
            "tuned_model",
        ),
        (
            "format: neatpipe-loop/1\ngenome: g.yaml\nmodels: {a: x}\ntuned_model: a\nbase: tiny\nharvest: {n: 1}\n",
            "harvest.n: unknown",
        ),  # fmt: skip
        ("format: neatpipe-loop/1\nepochs: 3\n", "unknown field 'epochs'"),
    ],
)
def test_a_wrong_loop_file_is_one_line_naming_the_field(text, message, tmp_path, capsys) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(text)
    assert main(["loop", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and err.count("\n") == 1
