"""``neatpipe report RUN_DIR``: a Markdown and an HTML report of an evolution run, with plots.

The report reads only the run directory (see :mod:`neatpipe.evolution.runlog`): the generation log, the
champion's graph file, its validation and its trajectories. It can be written again at any time,
also for a run that is still going or was interrupted (it then says so).
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neatpipe.analysis.stats import DifferenceCI, bootstrap_paired_difference
from neatpipe.errors import shown
from neatpipe.evolution.runlog import (
    EXPERIMENT_FILE,
    SUMMARY_FILE,
    TRAJECTORIES_DIR,
    VALIDATION_FILE,
    GenerationLog,
    RunDirError,
    read_history,
    read_json,
)
from neatpipe.io import atomic_write_text, atomic_write_with

PLOTS_DIR = "plots"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    plots: tuple[Path, ...]


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _plots(run_dir: Path, history: list[GenerationLog], validation: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = run_dir / PLOTS_DIR
    out_dir.mkdir(exist_ok=True)
    gens = [r.generation for r in history]
    written: list[Path] = []

    def save(fig, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    best = [r.best_fitness for r in history]
    mean = [r.mean_fitness for r in history]
    sd = [r.sd_fitness for r in history]
    ax.plot(gens, best, marker="o", label="best (on that generation's subset)")
    ax.plot(gens, mean, label="population mean")
    ax.fill_between(gens, [m - s for m, s in zip(mean, sd, strict=True)],
                    [m + s for m, s in zip(mean, sd, strict=True)], alpha=0.2, label="mean ± SD")  # fmt: skip
    ax.set_xlabel("generation")
    ax.set_ylabel("search fitness")
    ax.set_title("Fitness over generations\n(each generation is scored on a different problem subset)")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    save(fig, "fitness.png")

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.plot(gens, [r.species for r in history], marker="o")
    ax.set_xlabel("generation")
    ax.set_ylabel("species")
    ax.set_title("Species over time")
    save(fig, "species.png")

    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(gens, [r.mean_nodes for r in history], label="population mean: nodes")
    ax.plot(gens, [r.best_nodes for r in history], marker="o", label="best genome: nodes")
    ax.plot(
        gens,
        [r.best_model_calls for r in history],
        linestyle="--",
        label="best genome: model calls / problem",
    )
    ax.set_xlabel("generation")
    ax.set_ylabel("nodes, or model calls per problem")
    ax.set_title("Complexity over time")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    save(fig, "complexity.png")

    if validation:
        save(_validation_figure(plt, validation), "validation.png")
    return written


def _validation_figure(plt: Any, validation: list[dict[str, Any]]) -> Any:
    """Every validated genome and baseline on its own labelled row: the held-out pass@1 (mean ± SD over
    the repeats) and, for the search's genomes, the search pass rate it was chosen with, joined by an
    arrow whose length is the inflation."""
    labels = [str(v.get("label", v.get("hash", ""))) for v in validation]
    fig, ax = plt.subplots(figsize=(7.2, 1.2 + 0.45 * len(validation)))
    ys = list(range(len(validation)))
    seen: set[str] = set()

    def once(name: str) -> str:
        shown_before = name in seen
        seen.add(name)
        return "_" + name if shown_before else name

    for y, v in zip(ys, validation, strict=True):
        spread = v.get("sd") if (v.get("repeats") or 0) > 1 else None
        colour = "C2" if v.get("baseline") else "C0"
        name = "baseline, held-out" if v.get("baseline") else "evolved, held-out"
        ax.errorbar([v["mean"]], [y], xerr=None if spread is None else [spread], fmt="o", color=colour,
                    capsize=3, label=once(name + " (mean ± SD over repeats)"))  # fmt: skip
        ax.annotate(f"{v['mean']:.3f}", (v["mean"], y), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize="x-small")  # fmt: skip
        search = v.get("search_pass_rate")
        if search is not None:
            ax.plot([search], [y], marker="s", markerfacecolor="none", color="C1", linestyle="none",
                    label=once("search pass rate (one evaluation, one subset)"))  # fmt: skip
            ax.annotate("", xy=(v["mean"], y), xytext=(search, y),
                        arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8})  # fmt: skip
    ax.set_yticks(ys, labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_ylim(len(validation) - 0.4, -1.0)
    ax.set_xlabel("pass@1")
    ax.set_title("Search score vs held-out score (arrow: inflation)")
    ax.legend(
        fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(validation)), ncol=2
    )
    return fig


def _champion_graph(run_dir: Path) -> Path | None:
    svg = run_dir / "champion.svg"
    if svg.exists():
        return svg
    yaml_path = run_dir / "champion.yaml"
    if not yaml_path.exists():
        return None
    from neatpipe.genome import load_genome, save_genome

    try:
        save_genome(load_genome(yaml_path), svg)
    except Exception:  # a picture is optional; the report says it is missing
        return None
    return svg


def trajectory_tables_markdown(path: Path) -> str:
    """Early-stopping, error-fix and transition tables (Markdown) of every pipeline in a trajectories file."""
    from neatpipe.analysis import early_stopping_table, error_fix_table, load_trajectories, transition_table
    from neatpipe.analysis.render import render

    parts = []
    for name, ts in load_trajectories(path).items():
        trajs = ts.trajectories
        parts.append(f"### {name} ({len(trajs)} problem runs, {_repeats(ts.n_runs)})\n")
        parts.append(render(early_stopping_table(trajs), "markdown"))
        parts.append(render(error_fix_table(trajs), "markdown"))
        parts.append(render(transition_table(trajs), "markdown"))
    return "\n\n".join(parts) + "\n"


def _trajectory_tables(run_dir: Path) -> str:
    path = run_dir / TRAJECTORIES_DIR / "validation.jsonl.gz"
    if not path.exists():
        return "_No validation trajectories in this run directory._\n"
    return trajectory_tables_markdown(path)


def _read_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` (empty while a run is going), checked to be an object with an object ``champion``."""
    path = run_dir / SUMMARY_FILE
    if not path.exists():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if data.get("champion") is not None and not isinstance(data["champion"], dict):
        raise RunDirError(f"{path}: field 'champion' must be an object")
    return data


#: Fields of a ``validation.json`` entry that hold numbers (``mean`` always, the others when present).
_VALIDATION_NUMBERS = ("mean", "sd", "search_fitness", "search_pass_rate", "inflation")


def _read_validation(run_dir: Path) -> list[dict[str, Any]]:
    """``validation.json`` (empty when absent), checked to be a list of objects whose numbers are
    numbers, so that a damaged file is a one-line error naming the entry and field."""
    path = run_dir / VALIDATION_FILE
    if not path.exists():
        return []
    data = read_json(path)
    if not isinstance(data, list):
        raise RunDirError(f"{path}: expected a JSON list (one object per validated genome)")
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise RunDirError(f"{path}: entry {i} must be an object, got {type(entry).__name__}")
        for name in _VALIDATION_NUMBERS:
            value = entry.get(name)
            if (value is not None or name == "mean") and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise RunDirError(f"{path}: entry {i} field '{name}' must be a number, got {shown(value)}")
    return data


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _points(x: float) -> str:
    return f"{100 * x:+.1f} points"


def _mean_spread(mean: float, sd: float | None, repeats: int | None) -> str:
    """``0.860 ± 0.021``; with one run there is no spread, and the text says so instead of ``± 0.000``."""
    if not repeats or repeats < 2 or sd is None:
        return f"{mean:.3f} (one run: no spread)"
    return f"{mean:.3f} ± {sd:.3f}"


def _repeats(n: Any) -> str:
    return "1 repeat" if n == 1 else f"{n} repeats"


def _cell(value: Any) -> str:
    """A Markdown table cell: a ``|`` in a label would split the row."""
    return str(value).replace("|", "\\|")


def _name(row: Mapping[str, Any]) -> str:
    label = str(row.get("label", row.get("hash", "?")))
    return label.removeprefix("baseline: ")


@dataclass(frozen=True)
class Versus:
    """``a`` against ``b`` on the same problems: the difference of their pass@1 and, when both rows carry
    per-problem counts over the same problems, its paired bootstrap interval (``ci``)."""

    difference: float
    ci: DifferenceCI | None
    why_no_ci: str = ""


def versus(a: Mapping[str, Any], b: Mapping[str, Any], seed: int = 0) -> Versus:
    """Pairs ``a`` and ``b`` problem by problem (each problem's pass rate over the repeats) and bootstraps
    the mean difference over the problems."""
    diff = float(a["mean"]) - float(b["mean"])
    pa, pb = a.get("per_problem"), b.get("per_problem")
    if not isinstance(pa, dict) or not isinstance(pb, dict) or not pa:
        return Versus(diff, None, "the rows hold no per-problem results")
    if set(pa) != set(pb):
        return Versus(diff, None, "they were scored on different problems")
    ra, rb = int(a.get("repeats") or 1), int(b.get("repeats") or 1)
    tasks = sorted(pa)
    ci = bootstrap_paired_difference([pa[t] / ra for t in tasks], [pb[t] / rb for t in tasks], seed=seed)
    return Versus(diff, ci)


def _verdict(first: str, second: str, vs: Versus) -> str:
    """The difference with its interval, and in plain words whether it stands out of the noise."""
    if vs.ci is None:
        return (
            f"The difference is {_points(vs.difference)}; there is no confidence interval because "
            f"{vs.why_no_ci}, so this report cannot say whether it is more than noise."
        )
    ci = vs.ci
    interval = (
        f"{_points(ci.estimate)} (95% CI {100 * ci.low:+.1f} to {100 * ci.high:+.1f}; paired bootstrap over "
        f"the {ci.n_pairs} problems)"
    )
    if not ci.excludes_zero:
        return (
            f"The difference is {interval}: the interval includes 0, so {first} equals {second} within noise."
        )
    direction = "better" if ci.estimate > 0 else "worse"
    return (
        f"The difference is {interval}: the interval excludes 0, so {first} is {direction} than {second} "
        "beyond noise."
    )


def conclusion_lines(
    summary: Mapping[str, Any], validation: list[dict[str, Any]], history: list[GenerationLog]
) -> list[str]:
    """The report's opening paragraph: the champion against the best baseline on held-out problems, the
    difference with its interval and whether it is distinguishable from noise, and how much the search
    scores overstated the held-out ones."""
    lines = ["## Conclusion", ""]
    synthetic = " with synthetic models" if any(r.synthetic for r in history) else ""
    champion = next((v for v in validation if v.get("champion")), None)
    if champion is None:
        best = max(history, key=lambda r: r.best_fitness)
        lines.append(
            f"No conclusion yet: this run{synthetic} ({summary.get('status', 'running or interrupted')}) has "
            f"no held-out validation. Its best search fitness, {best.best_fitness:.3f} (generation {best.generation}), "
            "rests on one evaluation of one problem subset and tends to overstate what the genome does on "
            "problems it was not chosen on."
        )
        return lines + [""]
    ch = summary.get("champion") or {}
    benchmark = f" {summary['benchmark']}" if summary.get("benchmark") else ""
    text = [
        f"On {champion.get('problems')} held-out{benchmark} problems x {_repeats(champion.get('repeats'))}"
        f"{synthetic}, the champion (`{ch.get('summary', champion.get('label', ''))}`) passes {_pct(champion['mean'])}."
    ]
    baselines = [v for v in validation if v.get("baseline")]
    if baselines:
        best = max(baselines, key=lambda v: v["mean"])
        text.append(f"The best baseline, {_name(best)}, passes {_pct(best['mean'])}.")
        text.append(_verdict("the champion", _name(best), versus(champion, best)))
    else:
        text.append(
            "No baseline was validated next to it, so this run cannot say whether it beats a simpler pipeline."
        )
    searched = [v for v in validation if v.get("inflation") is not None]
    if champion.get("inflation") is not None and champion.get("search_pass_rate") is not None:
        word = "overstated" if champion["inflation"] >= 0 else "understated"
        average = ""
        if len(searched) > 1:
            mean_inflation = sum(v["inflation"] for v in searched) / len(searched)
            average = f"; over the {len(searched)} validated genomes it averages {_points(mean_inflation)}"
        text.append(
            f"The search {word} the champion: its search pass rate was {_pct(champion['search_pass_rate'])} "
            f"on one generation's subset, an inflation of {_points(champion['inflation'])}{average}."
        )
    if len(searched) > 1:
        text.append(
            f"The champion was chosen as the best of those {len(searched)} genomes on these same problems, "
            "which favours it slightly."
        )
    lines.append(" ".join(text))
    return lines + [""]


def build_markdown(run_dir: Path) -> tuple[str, list[Path]]:
    history = read_history(run_dir)
    summary = _read_summary(run_dir)
    validation = _read_validation(run_dir)
    if not history:
        raise RunDirError(f"{run_dir}: no evaluated generation yet (generations.jsonl is empty or missing)")
    plots = _plots(run_dir, history, validation)
    synthetic = any(r.synthetic for r in history)
    name = summary.get("experiment", run_dir.name)
    lines = [f"# Evolution run: {name}", ""]
    if synthetic:
        lines += ["**SYNTHETIC**: every model in this run was the synthetic coder; the numbers measure the", "search, not a language model.", ""]  # fmt: skip
    lines += conclusion_lines(summary, validation, history)
    status = summary.get("status", "running or interrupted (no summary.json yet)")
    lines += [
        "## The run",
        "",
        f"- run directory: `{run_dir}`",
        f"- status: {status}",
        f"- generations evaluated: {len(history)}",
        f"- feedback source: {summary.get('feedback', 'n/a')}",
        f"- elapsed: {history[-1].elapsed_s:.0f} s; tokens: {sum(r.tokens for r in history):,};"
        f" model calls: {sum(r.model_calls for r in history):,}",
        "",
        "## Fitness over generations",
        "",
        "Each generation is scored once, on its own subset of problems, so *best* rises and falls with",
        "how hard that generation's subset was; the held-out validation below is the comparable score.",
        "",
        "| gen | best | mean ± SD | best pass rate | species | best nodes | paid / reused | tokens | cache hits |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in history:
        lines.append(
            f"| {r.generation} | {r.best_fitness:.3f} | {r.mean_fitness:.3f} ± {r.sd_fitness:.3f} | "
            f"{r.best_pass_rate:.3f} | {r.species} | {r.best_nodes} | {r.evaluations_paid} / "
            f"{r.evaluations_reused} | {r.tokens:,} | {r.cache_hit_rate:.0%} |"
        )
    lines += ["", "![fitness](plots/fitness.png)", "", "![species](plots/species.png)", "",
              "![complexity](plots/complexity.png)", ""]  # fmt: skip
    lines += ["## Champion", ""]
    if summary.get("champion"):
        ch = summary["champion"]
        lines += [f"- `{ch.get('summary', '')}`", f"- behaviour hash `{ch.get('hash', '')}`, search fitness"
                  f" {_fmt(ch.get('fitness'))}"]  # fmt: skip
        if ch.get("mean") is not None:
            lines.append(
                f"- validated pass@1 {_mean_spread(ch['mean'], ch.get('sd'), ch.get('repeats'))} on "
                f"{ch.get('problems')} held-out problems x {_repeats(ch.get('repeats'))} (inflation of its "
                f"search pass rate {_fmt(ch.get('inflation'))}); chosen as the best validated of the search's "
                "best genomes"
            )
            better = [
                v
                for v in validation
                if v.get("baseline") and v["validated_fitness"] > ch["validated_fitness"]
            ]
            if better:
                lines.append(f"- a baseline validated higher than the champion: {_name(better[0])}")
        else:
            lines.append("- not validated: the best search fitness so far")
        lines.append("")
    graph = _champion_graph(run_dir)
    if graph is not None:
        lines += [f"![champion]({graph.name})", ""]
    if validation:
        lines += [
            "## Validation on held-out problems",
            "",
            "Search fitness rests on one evaluation of a subset; the validated score re-runs the genome on",
            "held-out problems with repeats. The difference is the inflation of the search score.",
            "",
            "| genome | search fitness | search pass rate | validated pass@1 (mean ± SD) | repeats | problems | inflation |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for v in validation:
            lines.append(
                f"| {_cell(v.get('label', v.get('hash', '')))} | {_fmt(v.get('search_fitness'))} | "
                f"{_fmt(v.get('search_pass_rate'))} | {_mean_spread(v['mean'], v.get('sd'), v.get('repeats'))} | "
                f"{v.get('repeats', '')} | {v.get('problems', '')} | {_fmt(v.get('inflation'))} |"
            )
        lines += ["", "![validation](plots/validation.png)", ""]
    lines += ["## The champion's refinement, problem by problem", "", _trajectory_tables(run_dir)]
    return "\n".join(lines) + "\n", plots


_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em}"
    "td{text-align:right}td:first-child{text-align:left}img{max-width:100%}"
    "pre{background:#f5f5f5;padding:.6em;overflow-x:auto}code{background:#f5f5f5}"
)


def markdown_to_html(text: str, title: str) -> str:
    """``text`` rendered by markdown-it-py (CommonMark with tables) in a page with a small style sheet:
    lines wrapped inside a paragraph stay one paragraph, code blocks and tables survive, and raw HTML
    in a label is shown as text, not run."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}</body></html>\n"
    )


def designs_conclusion_lines(data: Mapping[str, Any], synthetic: bool) -> list[str]:
    """The opening paragraph of a fixed-design report: the best design against the runner-up, with the
    difference's paired bootstrap interval and whether it is distinguishable from noise."""
    rows = [e for e in data.get("evaluations") or () if isinstance(e, dict) and e.get("mean") is not None]
    if not rows:
        return []
    ranked = sorted(rows, key=lambda e: -float(e["mean"]))
    best = ranked[0]
    with_models = " with synthetic models" if synthetic else ""
    text = [
        f"On {data.get('problems')} {data.get('benchmark', '')} problems x {_repeats(best.get('repeats'))}"
        f"{with_models}, the best design, {_name(best)}, passes {_pct(best['mean'])}."
    ]
    if len(ranked) > 1:
        second = ranked[1]
        text.append(f"The next, {_name(second)}, passes {_pct(second['mean'])}.")
        text.append(_verdict(_name(best), _name(second), versus(best, second)))
    return ["## Conclusion", "", " ".join(text), ""]


def build_designs_markdown(run_dir: Path) -> str:
    """The report of a fixed-design run (``mode: evaluate``): each design's pass@1, the pairs, the tables."""
    from neatpipe.evolution.compare import compare_runs, render_comparison
    from neatpipe.evolution.designs import EVALUATION_FILE, TRAJECTORIES_FILE

    summary = _read_summary(run_dir)
    data = read_json(run_dir / EVALUATION_FILE)
    if not isinstance(data, dict):
        raise RunDirError(f"{run_dir / EVALUATION_FILE}: expected a JSON object, got {type(data).__name__}")
    lines = [f"# Fixed designs: {summary.get('experiment', run_dir.name)}", ""]
    if summary.get("synthetic"):
        lines += ["**SYNTHETIC**: the models were the synthetic coder; the numbers measure the pipelines'", "machinery, not a language model.", ""]  # fmt: skip
    lines += designs_conclusion_lines(data, bool(summary.get("synthetic")))
    lines += [
        "## The designs",
        "",
        f"- run directory: `{run_dir}`",
        f"- benchmark: {data.get('benchmark')}, {data.get('problems')} problems; "
        f"feedback: {summary.get('feedback', 'n/a')}; repeats: {summary.get('repeats', 'n/a')}",
        "",
        render_comparison(compare_runs([run_dir], split=True), "markdown"),
        "",
        "## Refinement, problem by problem",
        "",
        trajectory_tables_markdown(run_dir / TRAJECTORIES_FILE),
    ]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | os.PathLike[str]) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` into ``run_dir``."""
    from neatpipe.evolution.designs import EVALUATION_FILE

    root = Path(run_dir)
    if not root.is_dir():
        raise RunDirError(f"{root}: not a directory")
    if not (root / EXPERIMENT_FILE).exists() and not (root / EVALUATION_FILE).exists():
        raise RunDirError(f"{root}: not a run directory (no {EXPERIMENT_FILE} or {EVALUATION_FILE})")
    if read_history(root) or not (root / EVALUATION_FILE).exists():
        markdown, plots = build_markdown(root)
    else:
        markdown, plots = build_designs_markdown(root), []
    md_path, html_path = root / "report.md", root / "report.html"
    atomic_write_text(md_path, markdown)
    atomic_write_text(html_path, markdown_to_html(markdown, f"neatpipe report: {root.name}"))
    return ReportFiles(md_path, html_path, tuple(plots))
