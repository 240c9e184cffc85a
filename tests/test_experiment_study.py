"""What a study needs from experiments: search subsets from a file of task ids (``subset.tasks``) and
one validation temperature (``validation.temperature``, ``neatpipe evaluate --temperature``)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from neatpipe.cli import main
from neatpipe.evolution import build
from neatpipe.evolution.designs import with_temperature
from neatpipe.evolution.run import evolve
from neatpipe.experiment import ExperimentError, load_experiment
from neatpipe.genome import load_genome

REPO = Path(__file__).resolve().parents[1]
HARD = [f"HumanEval/{i}" for i in (3, 10, 32, 38, 50, 83, 88, 91, 97, 129, 130, 132, 145, 163)]

EXPERIMENT = """\
format: neatpipe-experiment/1
name: study
seed: 1
benchmark: {{name: humaneval}}
subset: {{size: 4, policy: rotating{tasks}}}
validation: {{size: {held}, repeats: 2, champions: 2{temperature}}}
models:
  coder: synthetic:coder-1.5b
genome: {{initial: minimal, max_nodes: 6, max_stages: 2, add_stage_rate: 0.5}}
neat: {{population: 4, compatibility_threshold: 1.0}}
budget: {{generations: 1}}
backend: {{cache: off}}
evaluate:
  genomes:
    - {{path: {repo}/genomes/solo.yaml, label: coder solo, replace_models: {{qwen2.5-coder-1.5b: coder}}}}
"""


def experiment(tmp_path: Path, tasks: str | None = None, held: int = 6, temperature: str = "") -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        EXPERIMENT.format(
            tasks="" if tasks is None else f", tasks: {tasks}",
            held=held,
            temperature=f", temperature: {temperature}" if temperature else "",
            repo=REPO,
        )
    )
    return path


def fails(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neatpipe: error: ") and "Traceback" not in err, err
    return lines[0]


# -- subset.tasks ------------------------------------------------------------------------------------


def test_a_task_file_limits_the_search_and_leaves_the_held_out_set_alone(tmp_path: Path) -> None:
    (tmp_path / "hard.txt").write_text("\n".join(HARD) + "\n\n")
    with_file = load_experiment(experiment(tmp_path, tasks=str(tmp_path / "hard.txt")))
    without = load_experiment(experiment(tmp_path))
    problems = build.load_problems(with_file)
    pool, held = build.split_problems(with_file, problems)
    _, held_without = build.split_problems(without, problems)
    assert held.task_ids == held_without.task_ids  # the same validation problems with or without the file
    assert set(pool.task_ids) == set(HARD) - set(held.task_ids) and len(pool) > 0
    for generation in range(3):  # every generation's subset comes from the file
        drawn = build.search_subset(with_file, pool, generation).task_ids
        assert len(drawn) == 4 and set(drawn) <= set(HARD)


def test_a_json_task_file_with_validation_on_every_problem_searches_exactly_the_file(tmp_path: Path) -> None:
    (tmp_path / "hard.json").write_text(json.dumps(HARD[:5] + HARD[:1]))  # a repeated id is one problem
    exp = load_experiment(experiment(tmp_path, tasks="hard.json", held="null"), base_dir=tmp_path)
    pool, held = build.split_problems(exp, build.load_problems(exp))
    assert list(pool.task_ids) == HARD[:5] and len(held) == 164


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("HumanEval/3\nMbpp/2\nHumanEval/99999\n", "unknown task ids for humaneval: Mbpp/2, HumanEval/99999"),
        ("\n", "no task ids"),
        ("[3, 10]", "item 0 is 3, not a task id string"),
    ],
)
def test_task_file_faults_are_one_line_naming_experiment_field_and_file(
    tmp_path: Path, capsys, content: str, words: str
) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text(content)
    exp = experiment(tmp_path, tasks=str(tasks))
    message = fails(capsys, "evolve", exp, "--out", tmp_path / "run")
    assert f"{exp}: subset.tasks: {tasks}: " in message and words in message
    assert not (tmp_path / "run").exists()  # stopped before the run directory was made


def test_a_task_file_that_is_all_held_out_is_refused(tmp_path: Path, capsys) -> None:
    exp = load_experiment(experiment(tmp_path, held=6))
    problems = build.load_problems(exp)
    _, held = build.split_problems(exp, problems)
    (tmp_path / "held.txt").write_text("\n".join(held.task_ids))
    path = experiment(tmp_path, tasks=str(tmp_path / "held.txt"))
    message = fails(capsys, "evolve", path, "--out", tmp_path / "run")
    assert "subset.tasks: every problem of" in message and "held out for validation" in message


def test_a_missing_task_file_is_named_when_the_experiment_loads(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"subset\.tasks: file not found: nowhere\.txt"):
        load_experiment(experiment(tmp_path, tasks="nowhere.txt"))


# -- validation.temperature ------------------------------------------------------------------------


def test_champions_and_baselines_are_validated_at_the_given_temperature(tmp_path: Path) -> None:
    run = evolve(experiment(tmp_path, temperature="0"), out=tmp_path / "r", progress=False)
    rows = {v["label"]: v for v in run.validation}
    assert "baseline: coder solo at T=0" in rows
    assert all(v["temperature"] == 0 and v["label"].endswith(" at T=0") for v in run.validation)
    champion_row = run.champion_validation
    # the champion file keeps its evolved temperatures; the row names both genomes
    assert champion_row["hash"] == run.champion.behaviour_hash()
    assert champion_row["validated_hash"] == with_temperature(run.champion, 0.0).behaviour_hash()
    assert champion_row["validated_hash"] != champion_row["hash"]
    solo = load_genome(REPO / "genomes" / "solo.yaml")
    baseline = rows["baseline: coder solo at T=0"]
    assert baseline["validated_hash"] != baseline["hash"]
    with gzip.open(tmp_path / "r" / "trajectories" / "validation.jsonl.gz", "rt") as fh:
        kept = [json.loads(line) for line in fh]
    assert kept and {t["genome"] for t in kept} == {champion_row["validated_hash"]}
    assert "at temperature 0" in (tmp_path / "r" / "champion.yaml").read_text()
    assert solo.nodes  # the shipped file itself is untouched


def test_without_a_temperature_each_genome_keeps_its_own(tmp_path: Path) -> None:
    run = evolve(experiment(tmp_path), out=tmp_path / "r", progress=False)
    assert all(v["temperature"] is None and "validated_hash" not in v for v in run.validation)
    assert not any("at T=" in v["label"] for v in run.validation)


def test_a_temperature_out_of_range_is_an_experiment_error(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"validation\.temperature: must lie between 0 and 2, got 2\.5"):
        load_experiment(experiment(tmp_path, temperature="2.5"))


def test_evaluate_samples_every_node_at_the_given_temperature(tmp_path: Path, capsys) -> None:
    args = ["evaluate", str(REPO / "genomes" / "self-refine.yaml"), "--model",
            "qwen2.5-coder-1.5b=synthetic:coder-1.5b", "--limit", "8", "--repeats", "2"]  # fmt: skip
    assert main([*args, "--temperature", "0", "--out", str(tmp_path / "t0")]) == 0
    assert "every model node sampled at temperature 0" in capsys.readouterr().out
    report = json.loads((tmp_path / "t0" / "evaluation.json").read_text())
    assert report["temperature"] == 0
    lines = [json.loads(x) for x in (tmp_path / "t0" / "trajectories.jsonl").read_text().splitlines()]
    genome = with_temperature(load_genome(REPO / "genomes" / "self-refine.yaml"), 0.0)
    assert {t["genome"] for t in lines} == {genome.behaviour_hash()}
    assert main([*args, "--out", str(tmp_path / "own")]) == 0
    own = json.loads((tmp_path / "own" / "evaluation.json").read_text())
    assert own["temperature"] is None
    capsys.readouterr()
    message = fails(capsys, *args, "--temperature", "3")
    assert "--temperature must lie between 0 and 2, got 3.0" in message
