"""``neatpipe harvest``: samples at a temperature above 0 on training problems only, ready for ``neatpipe dataset``."""

from __future__ import annotations

from pathlib import Path

import pytest

from neatpipe.cli import main
from neatpipe.runtime import read_trajectories
from neatpipe.runtime.texts import TextStore

GENOMES = Path(__file__).resolve().parents[1] / "genomes"
CODER = "qwen2.5-coder-1.5b=synthetic:coder-1.5b"


@pytest.fixture(scope="module")
def harvest(tmp_path_factory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("harvest") / "run"
    argv = ["harvest", str(GENOMES / "self-refine.yaml"), "--model", CODER]
    with pytest.MonkeyPatch.context() as patch:  # where the benchmark and the synthetic coder find MBPP
        patch.setenv("NEATPIPE_DATA_DIR", str(shared_data))
        assert (
            main([*argv, "--limit", "12", "--samples", "3", "--temperature", "0.7", "--out", str(out)]) == 0
        )
    return out


def test_samples_are_drawn_at_the_temperature_on_training_problems_only(harvest: Path) -> None:
    trajectories = read_trajectories(harvest / "trajectories.jsonl")
    assert len(trajectories) == 12 * 3 and {t.repeat for t in trajectories} == {0, 1, 2}
    numbers = {int(t.task_id.split("/")[-1]) for t in trajectories}
    assert all(601 <= n <= 974 or 1 <= n <= 10 for n in numbers)  # MBPP's train and prompt splits
    with TextStore(harvest / "texts.sqlite") as store:
        calls = [store.call(t, i) for t in trajectories for i, s in enumerate(t.steps) if s.model]
    assert calls and all(c.request.temperature == 0.7 for c in calls)
    first = {(t.task_id, t.repeat): t.steps[0].code for t in trajectories}
    by_problem: dict[str, set[str]] = {}
    for (task, _), code in first.items():
        by_problem.setdefault(task, set()).add(code)
    assert any(len(codes) > 1 for codes in by_problem.values())  # other seeds, other samples
    assert any(t.passed for t in trajectories) and not all(t.passed for t in trajectories)


def test_the_harvest_exports_as_training_data(harvest: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    argv = ["dataset", str(harvest), "--out", str(out), "--kind", "sft", "--kind", "repair"]
    assert main(argv) == 0
    lines = (out / "sft.jsonl").read_text().splitlines()
    assert lines and all('"task_id": "Mbpp/' in line or '"task_id": "mbpp/' in line.lower() for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "test"], "would put evaluation problems into training data"),
        (["--split", "train,test"], "test would put evaluation problems"),
        (["--temperature", "0"], "--temperature must be above 0"),
        (["--samples", "0"], "--samples must be at least 1"),
    ],
)
def test_a_harvest_that_would_leak_or_not_sample_is_refused(args, message, tmp_path, capsys) -> None:
    argv = ["harvest", str(GENOMES / "solo.yaml"), "--model", CODER, "--out", str(tmp_path / "x"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "x").exists()
