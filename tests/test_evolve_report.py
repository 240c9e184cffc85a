"""The report of an evolution run says what it found: a conclusion first (champion against the best
baseline, the difference with its paired bootstrap interval, noise or not, the inflation), honest
spreads, plots that label what they show, HTML from a real Markdown renderer, and a run that shows its
progress, also in ``progress.json``."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from neatpipe.analysis.stats import bootstrap_paired_difference
from neatpipe.cli import main
from neatpipe.evolution import report as report_module
from neatpipe.evolution import reporters
from neatpipe.evolution.report import conclusion_lines, markdown_to_html, versus
from neatpipe.evolution.run import EvolutionRun, Progress, evolve
from neatpipe.evolution.runlog import GenerationLog, read_history

EXPERIMENT = """\
format: neatpipe-experiment/1
name: report-synthetic
seed: 3
benchmark: {name: humaneval}
subset: {size: 6, policy: rotating}
validation: {size: 8, repeats: 2, champions: 2}
models:
  coder: synthetic:coder-1.5b
genome: {initial: minimal, max_nodes: 6, max_stages: 2}
neat: {population: 6, compatibility_threshold: 1.0}
fitness: {penalty: {kind: per-node, weight: 0.02}}
budget: {generations: 2}
backend: {cache: off}
evaluate:
  genomes:
    - path: genomes/solo.yaml
      label: coder solo
      replace_models: {qwen2.5-coder-1.5b: coder}
"""


class Recording(Progress):
    """A Progress that keeps every state it writes to progress.json."""

    def __init__(self) -> None:
        super().__init__(io.StringIO(), 2)
        self.states: list[dict[str, Any]] = []

    def _write(self, phase: str, fields: dict[str, Any]) -> None:
        super()._write(phase, fields)
        self.states.append({"phase": phase, **fields})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[EvolutionRun, Recording]:
    tmp = tmp_path_factory.mktemp("report")
    path = tmp / "exp.yaml"
    path.write_text(EXPERIMENT)
    progress = Recording()
    return evolve(path, out=tmp / "run", progress=progress), progress


def _history(synthetic: bool = True) -> list[GenerationLog]:
    return [
        GenerationLog(
            generation=0,
            best_fitness=0.5,
            mean_fitness=0.4,
            sd_fitness=0.1,
            best_pass_rate=0.5,
            best_genome="h",
            best_summary="generator(coder)",
            species=1,
            species_sizes=[6],
            mean_nodes=1.0,
            best_nodes=1,
            best_model_calls=1,
            problems=["t0"],
            evaluations_paid=6,
            evaluations_reused=0,
            prompt_tokens=1,
            completion_tokens=1,
            model_calls=6,
            cache_hits=0,
            elapsed_s=1.0,
            synthetic=synthetic,
        )  # fmt: skip
    ]


def _row(label: str, per_problem: dict[str, int], repeats: int, **extra: Any) -> dict[str, Any]:
    mean = sum(per_problem.values()) / (len(per_problem) * repeats)
    return {"label": label, "mean": mean, "sd": 0.01, "repeats": repeats, "problems": len(per_problem),
            "per_problem": per_problem, "validated_fitness": mean, **extra}  # fmt: skip


# -- the conclusion -------------------------------------------------------------------------------


def test_the_report_opens_with_the_conclusion_its_numbers_support(run) -> None:
    finished, _ = run
    assert main(["report", str(finished.run_dir)]) == 0
    md = (finished.run_dir / "report.md").read_text()
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings[0] == "Conclusion"
    paragraph = md.split("## Conclusion\n", 1)[1].split("\n## ", 1)[0]
    champion = next(v for v in finished.validation if v.get("champion"))
    baseline = next(v for v in finished.validation if v.get("baseline"))
    ci = bootstrap_paired_difference(
        [champion["per_problem"][t] / 2 for t in sorted(champion["per_problem"])],
        [baseline["per_problem"][t] / 2 for t in sorted(champion["per_problem"])],
    )
    assert f"passes {100 * champion['mean']:.1f}%" in paragraph
    assert f"The best baseline, coder solo, passes {100 * baseline['mean']:.1f}%" in paragraph
    assert f"95% CI {100 * ci.low:+.1f} to {100 * ci.high:+.1f}" in paragraph
    if ci.excludes_zero:
        assert "beyond noise" in paragraph and "within noise" not in paragraph
    else:
        assert "the champion equals coder solo within noise" in paragraph
    assert f"an inflation of {100 * champion['inflation']:+.1f} points" in paragraph
    assert "x 2 repeats with synthetic models, the champion" in paragraph


def test_equal_pipelines_are_called_equal_within_noise() -> None:
    tasks = {f"t{i}": i % 3 for i in range(30)}  # 0, 1 or 2 passes of 2 repeats
    champion = _row("champion (genome 7)", tasks, 2, champion=True, inflation=0.1, search_pass_rate=0.9)
    base = _row("baseline: coder-3b solo", dict(tasks), 2, baseline=True)
    text = "\n".join(conclusion_lines({"benchmark": "humaneval"}, [champion, base], _history()))
    assert "the champion equals coder-3b solo within noise" in text
    assert "+0.0 points (95% CI +0.0 to +0.0" in text


def test_a_clear_win_is_called_beyond_noise_and_a_loss_worse() -> None:
    good = {f"t{i}": 2 for i in range(40)}
    bad = {f"t{i}": 2 if i < 10 else 0 for i in range(40)}
    champion = _row("champion", good, 2, champion=True)
    text = "\n".join(
        conclusion_lines({}, [champion, _row("baseline: solo", bad, 2, baseline=True)], _history())
    )
    assert "the champion is better than solo beyond noise" in text
    champion = _row("champion", bad, 2, champion=True)
    text = "\n".join(
        conclusion_lines({}, [champion, _row("baseline: solo", good, 2, baseline=True)], _history())
    )
    assert "the champion is worse than solo beyond noise" in text


def test_the_best_baseline_is_the_one_compared() -> None:
    champion = _row("champion", {"a": 1, "b": 1}, 1, champion=True)
    weak, strong = (
        _row("baseline: weak", {"a": 0, "b": 0}, 1, baseline=True),
        _row("baseline: strong", {"a": 1, "b": 0}, 1, baseline=True),
    )
    text = "\n".join(conclusion_lines({}, [champion, weak, strong], _history()))
    assert "The best baseline, strong, passes 50.0%" in text


def test_without_per_problem_results_or_validation_the_report_says_what_it_cannot_tell() -> None:
    champion = {"label": "champion", "mean": 0.8, "repeats": 3, "problems": 10, "champion": True}
    base = {"label": "baseline: solo", "mean": 0.7, "repeats": 3, "problems": 10, "baseline": True}
    text = "\n".join(conclusion_lines({}, [champion, base], _history()))
    assert "The difference is +10.0 points; there is no confidence interval" in text
    assert "within noise" not in text and "beyond noise" not in text
    text = "\n".join(conclusion_lines({"status": "interrupted"}, [], _history(synthetic=False)))
    assert "No conclusion yet" in text and "(interrupted)" in text and "synthetic" not in text
    alone = "\n".join(conclusion_lines({}, [_row("champion", {"a": 1}, 1, champion=True)], _history()))
    assert "No baseline was validated" in alone


def test_a_fixed_design_report_opens_with_the_best_design_against_the_next() -> None:
    from neatpipe.evolution.report import designs_conclusion_lines

    strong = _row("self-refine", {f"t{i}": 3 for i in range(20)}, 3)
    weak = _row("solo", {f"t{i}": 3 if i < 5 else 0 for i in range(20)}, 3)
    lines = designs_conclusion_lines(
        {"benchmark": "mbpp", "problems": 20, "evaluations": [weak, strong]}, True
    )
    assert lines[0] == "## Conclusion"
    assert lines[2].startswith(
        "On 20 mbpp problems x 3 repeats with synthetic models, the best design, self-refine"
    )
    assert "so self-refine is better than solo beyond noise" in lines[2]


def test_rows_on_different_problems_get_no_interval() -> None:
    vs = versus(_row("a", {"x": 1, "y": 1}, 1), _row("b", {"x": 1, "z": 0}, 1))
    assert vs.ci is None and "different problems" in vs.why_no_ci


def test_paired_bootstrap_agrees_with_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    import random

    rng = random.Random(1)
    a = [rng.random() for _ in range(60)]
    b = [x - 0.1 + rng.gauss(0, 0.2) for x in a]
    ours = bootstrap_paired_difference(a, b, n_boot=4000, seed=2)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    ref = scipy_stats.bootstrap((diffs,), lambda d: sum(d) / len(d), vectorized=False, n_resamples=4000,
                                method="percentile", random_state=3).confidence_interval  # fmt: skip
    assert ours.estimate == pytest.approx(sum(diffs) / len(diffs))
    assert ours.low == pytest.approx(ref.low, abs=0.01) and ours.high == pytest.approx(ref.high, abs=0.01)
    assert ours.excludes_zero
    same = bootstrap_paired_difference(a, a)
    assert (same.low, same.high) == (0.0, 0.0) and not same.excludes_zero
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_paired_difference([1.0], [1.0, 0.0])


# -- numbers as they are written ------------------------------------------------------------------


def test_one_run_says_there_is_no_spread_and_no_float_noise_is_printed(tmp_path: Path, run) -> None:
    finished, _ = run
    run_dir = tmp_path / "copy"
    shutil.copytree(finished.run_dir, run_dir)
    validation = json.loads((run_dir / "validation.json").read_text())
    for v in validation:
        v["repeats"], v["sd"], v["mean"] = 1, 0.0, 0.8600000000000001
        v["per_problem"] = {t: min(c, 1) for t, c in v["per_problem"].items()}
    (run_dir / "validation.json").write_text(json.dumps(validation))
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["champion"].update(repeats=1, sd=0.0, mean=0.8600000000000001)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    md, _ = report_module.build_markdown(run_dir)
    assert "0.860 (one run: no spread)" in md
    champion_and_validation = md.split("## Champion")[1].split("## The champion's refinement")[0]
    assert "± 0.000" not in champion_and_validation and "one run: no spread" in champion_and_validation
    assert "0.8600000000000001" not in md


# -- HTML --------------------------------------------------------------------------------------------


def test_html_comes_from_a_markdown_renderer() -> None:
    text = (
        "# Title\n\nA paragraph wrapped\nover two lines.\n\n```\ndef f():\n    return 1 < 2\n```\n\n"
        "| genome | pass |\n|---|---:|\n| a \\| b <script>x</script> | 0.5 |\n\n- item `code`\n"
    )
    page = markdown_to_html(text, "t")
    assert "<p>A paragraph wrapped\nover two lines.</p>" in page
    assert "<pre><code>def f():\n    return 1 &lt; 2\n</code></pre>" in page
    assert "<td>a | b &lt;script&gt;x&lt;/script&gt;</td>" in page and "<script>" not in page
    assert "<li>item <code>code</code></li>" in page


def test_report_html_has_its_tables_images_and_conclusion(run) -> None:
    finished, _ = run
    main(["report", str(finished.run_dir)])
    page = (finished.run_dir / "report.html").read_text()
    assert "<h2>Conclusion</h2>" in page and page.index("<h2>Conclusion</h2>") < page.index("<table>")
    assert 'src="plots/validation.png"' in page and 'src="champion.svg"' in page
    assert page.count("<p>Search fitness rests on one evaluation") == 1  # a wrapped paragraph stays one


# -- plots -------------------------------------------------------------------------------------------


def test_plots_label_what_they_show(run, monkeypatch) -> None:
    import matplotlib.pyplot as plt

    finished, _ = run
    figures: list[Any] = []
    close = plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    report_module.build_markdown(finished.run_dir)
    monkeypatch.undo()
    for fig in figures:
        close(fig)
    by_title = {fig.axes[0].get_title(): fig.axes[0] for fig in figures}
    fitness = next(ax for title, ax in by_title.items() if title.startswith("Fitness"))
    assert "different problem subset" in fitness.get_title()
    assert any("subset" in t.get_text() for t in fitness.get_legend().get_texts())
    complexity = by_title["Complexity over time"]
    assert complexity.get_xlabel() and complexity.get_ylabel()
    validation = next(ax for title, ax in by_title.items() if title.startswith("Search score vs held-out"))
    labels = [t.get_text() for t in validation.get_yticklabels()]
    assert labels == [v["label"] for v in finished.validation]
    assert any(label.startswith("baseline:") for label in labels)
    values = {t.get_text() for t in validation.texts}
    assert {f"{v['mean']:.3f}" for v in finished.validation} <= values


# -- progress ----------------------------------------------------------------------------------------


def test_a_run_shows_its_validation_and_keeps_progress_json_current(run) -> None:
    finished, progress = run
    lines = progress.stream.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["gen   0", "gen   1", "validation"]
    assert "2 best genome(s) and 1 baseline(s) on 8 held-out problems x 2 repeat(s)" in lines[2]
    assert all(re.fullmatch(r"validation: [1-5]/6 pipeline runs", line) for line in lines[3:-1])
    assert lines[3:-1]  # a log file sees the phase advance, not only start and end
    ran, reused = map(
        int, re.fullmatch(r"validation: (\d+) pipeline run\(s\), (\d+) reused \(\d+ s\)", lines[-1]).groups()
    )
    assert ran + reused == (2 + 1) * 2  # two genomes and a baseline, two repeats each
    phases = [s["phase"] for s in progress.states]
    assert phases[0] == "search" and phases[-1] == "finished" and "validation" in phases
    assert phases.index("validation") > max(i for i, p in enumerate(phases) if p == "search")
    steps = [s["done"] for s in progress.states if s["phase"] == "validation"]
    assert steps == list(range(ran + 1))
    state = json.loads((finished.run_dir / "progress.json").read_text())
    assert state["phase"] == "finished" and state["status"] == finished.status
    assert state["format"] == "neatpipe-progress/1" and state["generations"] == 2
    assert len(read_history(finished.run_dir)) == 2


def test_progress_json_is_replaced_atomically(tmp_path: Path, monkeypatch) -> None:
    writes: list[Path] = []
    real = reporters.atomic_write_text
    monkeypatch.setattr(reporters, "atomic_write_text", lambda p, t: (writes.append(p), real(p, t)))
    progress = Progress(None, 3)
    progress.genome_done(0, 1, 4)  # nothing to write to before attach
    progress.attach(tmp_path)
    progress.genome_done(0, 2, 4)
    progress.begin("validation", 6, "pipeline runs", "x")
    progress.step(5)
    assert writes == [tmp_path / "progress.json"] * 3
    state = json.loads((tmp_path / "progress.json").read_text())
    assert (state["phase"], state["done"], state["total"], state["unit"]) == (
        "validation",
        5,
        6,
        "pipeline runs",
    )
