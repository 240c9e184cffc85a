"""Evolution runs end to end with the synthetic coder: run directory, resume, determinism, report, compare,
and the clear stop of an experiment whose models are not on the machine."""

from __future__ import annotations

import gzip
import json
import textwrap
from pathlib import Path

import pytest

from neatpipe.cli import main
from neatpipe.evolution import reporters as run_module
from neatpipe.evolution.checkpoint import CheckpointError, load_checkpoint
from neatpipe.evolution.run import EvolutionRun, evolve
from neatpipe.evolution.runlog import read_history

EXPERIMENT = """\
format: neatpipe-experiment/1
name: tiny-synthetic
seed: {seed}
benchmark: {{name: humaneval}}
subset: {{size: 6, policy: rotating}}
validation: {{size: 6, repeats: 2, champions: 2}}
models:
  coder: synthetic:coder-1.5b
  small: synthetic:small-1.5b
genome:
  initial: minimal
  max_nodes: 6
  max_stages: 2
  add_stage_rate: 0.5
neat:
  population: 6
  compatibility_threshold: 1.0
  target_species: 2
fitness:
  penalty: {{kind: per-node, weight: 0.02}}
budget: {{generations: {generations}}}
backend: {{cache: off}}
"""


def write_experiment(tmp_path: Path, seed: int = 0, generations: int = 3) -> Path:
    path = tmp_path / f"exp-{seed}-{generations}.yaml"
    path.write_text(EXPERIMENT.format(seed=seed, generations=generations))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> EvolutionRun:
    tmp = tmp_path_factory.mktemp("evolve")
    return evolve(write_experiment(tmp), out=tmp / "run", progress=False)


def test_a_run_directory_holds_everything_the_run_produced(finished: EvolutionRun) -> None:
    d = finished.run_dir
    for name in ("experiment.yaml", "neat-config.ini", "generations.jsonl", "run.json", "summary.json",
                 "validation.json", "champion.yaml", "champion.graphml", "champion.svg", "evaluations.sqlite"):  # fmt: skip
        assert (d / name).is_file(), name
    history = read_history(d)
    assert [r.generation for r in history] == [0, 1, 2]
    for r in history:
        assert (d / "genomes" / f"gen-{r.generation:04d}.yaml").is_file()
        assert len(r.problems) == 6 and r.synthetic
        with gzip.open(d / "trajectories" / f"gen-{r.generation:04d}.jsonl.gz", "rt") as f:
            assert all(json.loads(line)["format"] == "neatpipe-trajectory/1" for line in f)
    assert len({tuple(r.problems) for r in history}) > 1  # rotating subsets
    assert history[0].evaluations_paid > 0
    assert finished.status == "finished" and finished.synthetic
    summary = json.loads((d / "summary.json").read_text())
    assert summary["synthetic"] is True and summary["champion"]["hash"] == finished.champion.behaviour_hash()
    assert finished.validation and all(v["repeats"] == 2 and v["problems"] == 6 for v in finished.validation)
    state = json.loads((d / "run.json").read_text())
    assert state["checkpoint"]["file"] == "checkpoints/gen-0003.pkl.gz" and state["status"] == "finished"
    assert load_checkpoint(d / state["checkpoint"]["file"], state["checkpoint"]["sha256"]).generation == 3
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["gen-0002.pkl.gz", "gen-0003.pkl.gz"]


def test_the_run_reads_back_from_its_directory(finished: EvolutionRun) -> None:
    again = EvolutionRun.load(finished.run_dir)
    assert again.champion.behaviour_hash() == finished.champion.behaviour_hash()
    assert [r.best_fitness for r in again.history] == [r.best_fitness for r in finished.history]
    assert again.statistics["species"] == [r.species for r in finished.history]


def test_same_seed_same_run_and_resume_pays_nothing_twice(tmp_path: Path, finished: EvolutionRun) -> None:
    exp = write_experiment(tmp_path, generations=2)
    first = evolve(exp, out=tmp_path / "r", progress=False)
    reference = read_history(finished.run_dir)[:2]
    assert [r.best_genome for r in first.history] == [r.best_genome for r in reference]
    assert [r.best_fitness for r in first.history] == [r.best_fitness for r in reference]
    # continue the same run to 3 generations: only generation 2 is new
    resumed = evolve(resume=tmp_path / "r", generations=3, progress=False)
    assert [r.generation for r in resumed.history] == [0, 1, 2]
    assert [r.best_genome for r in resumed.history] == [r.best_genome for r in read_history(finished.run_dir)]


def test_an_interrupted_generation_resumes_from_its_paid_evaluations(
    tmp_path: Path, monkeypatch, finished: EvolutionRun
) -> None:
    exp = write_experiment(tmp_path, generations=2)
    calls = {"n": 0}
    real = run_module.append_line

    def crash_after_first_generation(path, record):  # the process dies after generation 1 was paid for
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(path, record)

    monkeypatch.setattr(run_module, "append_line", crash_after_first_generation)
    with pytest.raises(KeyboardInterrupt):
        evolve(exp, out=tmp_path / "r", progress=False)
    monkeypatch.setattr(run_module, "append_line", real)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "interrupted"
    resumed = evolve(resume=tmp_path / "r", progress=False)
    assert [r.generation for r in resumed.history] == [0, 1]
    assert resumed.history[1].evaluations_paid == 0  # everything came back from the store
    assert resumed.history[1].evaluations_reused > 0
    # the same result as the uninterrupted run with the same seed
    uninterrupted = read_history(finished.run_dir)[:2]
    assert [r.best_genome for r in resumed.history] == [r.best_genome for r in uninterrupted]
    assert [r.mean_fitness for r in resumed.history] == [r.mean_fitness for r in uninterrupted]


def test_starting_over_an_existing_run_is_refused(finished: EvolutionRun, tmp_path: Path, capsys) -> None:
    exp = write_experiment(tmp_path)
    code = main(["evolve", str(exp), "--out", str(finished.run_dir), "--quiet"])
    assert code == 2 and "--resume" in capsys.readouterr().err


def test_a_torn_checkpoint_is_an_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoint.pkl.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(CheckpointError, match=str(bad)):
        load_checkpoint(bad)


def test_report_and_compare(finished: EvolutionRun, capsys) -> None:
    assert main(["report", str(finished.run_dir)]) == 0
    md = (finished.run_dir / "report.md").read_text()
    assert "SYNTHETIC" in md and "## Validation on held-out problems" in md and "Error fixes" in md
    html = (finished.run_dir / "report.html").read_text()
    assert "<table>" in html and 'src="plots/fitness.png"' in html
    for plot in ("fitness", "species", "complexity", "validation"):
        assert (finished.run_dir / "plots" / f"{plot}.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["compare", str(finished.run_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["entries"]) == len(finished.validation)
    # validation records the held-out problems and per-problem passes, so its pairs are paired by problem
    rows = json.loads((finished.run_dir / "validation.json").read_text())
    assert all(len(r["task_ids"]) == r["problems"] == len(r["per_problem"]) for r in rows)
    assert all(sum(r["per_problem"].values()) == round(sum(r["pass_rates"]) * r["problems"]) for r in rows)
    if len(data["entries"]) > 1:
        assert "separation_sd" in data["pairs"][0] and data["pairs"][0]["test"] == "paired t over problems"
        assert data["tests"] == len(data["pairs"]) and all("p_holm" in p for p in data["pairs"])


def test_an_experiment_with_models_missing_offline_stops_at_once(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    out = tmp_path / "never"
    code = main(["evolve", "experiments/default.yaml", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "not on this machine" in err
        and "experiments/smoke.yaml" in err
        and "experiments/synthetic.yaml" in err
    )
    assert not out.exists()


def test_unknown_experiment_fields_are_errors_naming_file_and_field(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(EXPERIMENT.format(seed=0, generations=1) + "fitnes: {repeats: 2}\n")
    assert main(["evolve", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "fitnes" in err and "fitness" in err


def test_evaluate_command_prints_tables_and_writes_a_comparable_directory(tmp_path: Path, capsys) -> None:
    args = ["evaluate", "genomes/solo.yaml", "genomes/self-refine.yaml", "--model",
            "qwen2.5-coder-1.5b=synthetic:coder-1.5b", "--limit", "20", "--repeats", "2", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "Early stopping" in out and "initial error" in out
    data = json.loads((tmp_path / "evaluation.json").read_text())
    by = {e["label"]: e for e in data["evaluations"]}
    assert by["self-refine"]["mean"] > by["solo"]["mean"]
    assert by["solo"]["feedback"] == "visible" and len(by["solo"]["pass_rates"]) == 2
    assert main(["analyze", str(tmp_path / "trajectories.jsonl")]) == 0
    assert main(["compare", str(tmp_path)]) == 0
    assert "self-refine" in capsys.readouterr().out


def test_evaluate_names_unmapped_models(capsys) -> None:
    assert main(["evaluate", "genomes/cross-model.yaml", "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert "qwen2.5-coder-1.5b" in err and "--model" in err


def test_experiment_file_text_is_valid(tmp_path: Path) -> None:
    from neatpipe.experiment import load_experiment

    exp = load_experiment(write_experiment(tmp_path))
    assert exp.synthetic and exp.neat.population == 6
    assert textwrap.dedent(EXPERIMENT)  # the template itself stays plain YAML


DESIGNS = """\
format: neatpipe-experiment/1
name: designs
mode: evaluate
seed: 0
benchmark: {name: humaneval}
subset: {size: 12}
feedback: hidden
models:
  qwen2.5-coder-1.5b: synthetic:coder-1.5b
  llama3.2-3b: synthetic:general-3b
model_alternatives:
  weak:
    qwen2.5-coder-1.5b: synthetic:small-1.5b
    llama3.2-3b: synthetic:small-1.5b
backend: {cache: off}
evaluate:
  repeats: 2
  genomes:
    - {path: genomes/solo.yaml, label: solo}
    - {path: genomes/self-refine.yaml, label: self-refine}
    - path: genomes/self-refine.yaml
      label: general self-refine
      replace_models: {qwen2.5-coder-1.5b: llama3.2-3b}
"""


def test_a_fixed_design_experiment_scores_each_design_with_repeats(tmp_path: Path, capsys) -> None:
    exp = tmp_path / "designs.yaml"
    exp.write_text(DESIGNS)
    assert main(["evolve", str(exp), "--out", str(tmp_path / "d"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "self-refine: pass@1" in out and "report:" in out
    data = json.loads((tmp_path / "d" / "evaluation.json").read_text())
    by = {e["label"]: e for e in data["evaluations"]}
    assert set(by) == {"solo", "self-refine", "general self-refine"}
    assert all(
        len(e["pass_rates"]) == 2 and e["feedback"] == "hidden" and e["synthetic"] for e in by.values()
    )
    assert by["self-refine"]["mean"] >= by["solo"]["mean"]
    # the swapped design really ran the other model: its generator requests differ, so its trajectories do
    report = (tmp_path / "d" / "report.md").read_text()
    assert (
        "Fixed designs: designs" in report
        and "pairs (a - b)" in report
        and "p (Holm)" in report
        and "general self-refine" in report
    )
    # the same designs with the weaker alternative model set score lower on the solo design
    assert main(["evolve", str(exp), "--out", str(tmp_path / "w"), "--model-set", "weak", "--quiet"]) == 0
    weak = {
        e["label"]: e for e in json.loads((tmp_path / "w" / "evaluation.json").read_text())["evaluations"]
    }
    assert weak["solo"]["mean"] <= by["solo"]["mean"]
    assert main(["compare", str(tmp_path / "d"), str(tmp_path / "w")]) == 0


def test_evolution_validates_baselines_next_to_champions(tmp_path: Path) -> None:
    text = EXPERIMENT.format(seed=1, generations=1) + (
        "evaluate:\n  genomes:\n    - path: genomes/solo.yaml\n      label: coder solo\n"
        "      replace_models: {qwen2.5-coder-1.5b: coder}\n"
    )
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    run = evolve(path, out=tmp_path / "r", progress=False)
    rows = {v["label"]: v for v in run.validation}
    assert "baseline: coder solo" in rows
    baseline = rows["baseline: coder solo"]
    assert baseline["search_fitness"] is None and baseline["repeats"] == 2 and baseline["problems"] == 6
    assert any(label.startswith("champion") for label in rows)


def test_progress_reports_each_genome_and_each_generation(tmp_path: Path) -> None:
    import io

    from neatpipe.evolution.run import Progress

    class Recorder(Progress):
        def __init__(self) -> None:
            super().__init__(io.StringIO(), 2)
            self.genomes: list[tuple[int, int, int]] = []

        def genome_done(self, generation: int, done: int, total: int) -> None:
            self.genomes.append((generation, done, total))

    recorder = Recorder()
    evolve(write_experiment(tmp_path, generations=2), out=tmp_path / "r", progress=recorder)
    lines = recorder.stream.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["gen   0", "gen   1", "validation"]
    assert {line.split(":")[0] for line in lines[2:]} == {"validation"}
    assert all("[synthetic]" in line and "species" in line and "s left" in line for line in lines[:2])
    for gen in (0, 1):
        done = [d for g, d, _ in recorder.genomes if g == gen]
        assert done == list(range(1, len(done) + 1)) and done  # one call per distinct genome, in order


def test_the_smoke_experiment_runs_end_to_end_through_transformers(tmp_path: Path) -> None:
    from neatpipe.experiment import load_experiment

    exp = load_experiment(
        "experiments/smoke.yaml", base_dir=tmp_path
    )  # the tiny model is built under tmp_path
    run = evolve(exp, out=tmp_path / "run", progress=False)
    assert (tmp_path / "runs" / "tiny-model" / "config.json").is_file()
    assert run.status == "finished" and len(run.history) == 2 and not run.synthetic
    assert sum(r.model_calls for r in run.history) > 0  # real calls through the transformers backend
    assert (run.run_dir / "champion.yaml").is_file() and run.validation


def test_evaluate_runs_through_the_real_transformers_path_with_a_tiny_model(tmp_path: Path, capsys) -> None:
    from neatpipe.models.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny", arch="llama", seed=2).path
    pool = tmp_path / "pool.yaml"
    pool.write_text(f"qwen2.5-coder-1.5b: {{spec: 'hf:{model}', device: cpu, dtype: float32}}\n")
    genome = tmp_path / "self-refine.yaml"  # the shipped genome with token budgets a CPU answers quickly
    text = Path("genomes/self-refine.yaml").read_text()
    genome.write_text(
        text.replace("max_tokens: 512", "max_tokens: 16").replace("max_tokens: 768", "max_tokens: 16")
    )
    args = ["evaluate", str(genome), "--models", str(pool), "--limit", "2", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    (entry,) = report["evaluations"]
    assert entry["synthetic"] is False and entry["model_calls"] >= 2  # generator + at least one refine call
    assert entry["completion_tokens"] > 0 and len(entry["problems"]) == 2


def test_racing_in_a_run_scores_weak_genomes_on_fewer_problems(tmp_path: Path) -> None:
    base = (
        EXPERIMENT.format(seed=3, generations=1)
        .replace("subset: {size: 6, policy: rotating}", "subset: {size: 48}")
        .replace("coder: synthetic:coder-1.5b", "coder: synthetic:coder-3b")  # a strong and a weak model
    )
    plain, raced = tmp_path / "plain.yaml", tmp_path / "raced.yaml"
    plain.write_text(base)
    raced.write_text(
        base.replace("fitness:\n", "fitness:\n  racing: {enabled: true, size: 12, margin: 0.0}\n")
    )
    a = evolve(plain, out=tmp_path / "a", progress=False)
    b = evolve(raced, out=tmp_path / "b", progress=False)
    assert a.history[0].evaluations_paid % 48 == 0  # without racing every distinct genome sees all 48
    assert b.history[0].evaluations_paid < a.history[0].evaluations_paid  # dropped genomes stopped early
    with gzip.open(b.run_dir / "trajectories" / "gen-0000.jsonl.gz", "rt") as f:
        per_genome: dict[str, set[str]] = {}
        for line in f:
            data = json.loads(line)
            per_genome.setdefault(data["genome"], set()).add(data["task_id"])
    sizes = sorted(len(v) for v in per_genome.values())
    assert sizes[0] < 48 and sizes[-1] == 48  # someone was dropped early, the best went the whole way
    assert b.history[0].best_fitness == a.history[0].best_fitness  # the same best genome and score


def test_evaluate_reads_a_subset_file_and_mbpp(tmp_path: Path, capsys, mbpp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("Mbpp/11\nMbpp/12\nMbpp/14\n")  # the default split is test (11-510)
    args = ["evaluate", "genomes/solo.yaml", "--benchmark", "mbpp", "--mbpp", str(mbpp_path), "--subset", str(ids),
            "--model", "qwen2.5-coder-1.5b=synthetic:coder-1.5b", "--json"]  # fmt: skip
    assert main(args) == 0
    (entry,) = json.loads(capsys.readouterr().out)["evaluations"]
    assert entry["problems"] == ["Mbpp/11", "Mbpp/12", "Mbpp/14"] and entry["benchmark"] == "mbpp"
    ids.write_text("Mbpp/11\nHumanEval/0\n")
    assert main(args) == 2
    assert "unknown task ids for mbpp: HumanEval/0" in capsys.readouterr().err
