"""``neatpipe report RUN_DIR``: a Markdown and an HTML report of an evolution run, with plots.

The report reads only the run directory (see :mod:`neatpipe.evolution.runlog`): the generation log, the
champion's graph file, its validation and its trajectories. It can be written again at any time,
also for a run that is still going or was interrupted (it then says so).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    best = [r.best_fitness for r in history]
    mean = [r.mean_fitness for r in history]
    sd = [r.sd_fitness for r in history]
    ax.plot(gens, best, marker="o", label="best")
    ax.plot(gens, mean, label="mean")
    ax.fill_between(gens, [m - s for m, s in zip(mean, sd, strict=True)],
                    [m + s for m, s in zip(mean, sd, strict=True)], alpha=0.2, label="mean ± SD")  # fmt: skip
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
    ax.set_title("Fitness over generations")
    ax.legend()
    save(fig, "fitness.png")

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.plot(gens, [r.species for r in history], marker="o")
    ax.set_xlabel("generation")
    ax.set_ylabel("species")
    ax.set_title("Species over time")
    save(fig, "species.png")

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.plot(gens, [r.mean_nodes for r in history], label="mean nodes")
    ax.plot(gens, [r.best_nodes for r in history], marker="o", label="best genome's nodes")
    ax.plot(gens, [r.best_model_calls for r in history], linestyle="--", label="best: model calls / problem")
    ax.set_xlabel("generation")
    ax.set_title("Complexity over time")
    ax.legend()
    save(fig, "complexity.png")

    searched = [v for v in validation if v.get("search_fitness") is not None]
    if searched:
        fig, ax = plt.subplots(figsize=(4.8, 4.0))
        xs = [v["search_fitness"] for v in searched]
        ys = [v["mean"] for v in searched]
        es = [v.get("sd", 0.0) for v in searched]
        ax.errorbar(xs, ys, yerr=es, fmt="o")
        lo, hi = min(xs + ys) - 0.05, max(xs + ys) + 0.05
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, label="no inflation")
        ax.set_xlabel("search fitness (one evaluation, subset)")
        ax.set_ylabel("validated pass@1 (held-out, mean ± SD)")
        ax.set_title("Search fitness vs validated score")
        ax.legend()
        save(fig, "validation.png")
    return written


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
        parts.append(f"### {name} ({len(trajs)} problem runs, {ts.n_runs} repeat(s))\n")
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
    status = summary.get("status", "running or interrupted (no summary.json yet)")
    lines += [
        f"- run directory: `{run_dir}`",
        f"- status: {status}",
        f"- generations evaluated: {len(history)}",
        f"- feedback source: {summary.get('feedback', 'n/a')}",
        f"- elapsed: {history[-1].elapsed_s:.0f} s; tokens: {sum(r.tokens for r in history):,};"
        f" model calls: {sum(r.model_calls for r in history):,}",
        "",
        "## Fitness over generations",
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
        lines += [f"- {ch.get('summary', '')}", f"- behaviour hash `{ch.get('hash', '')}`, search fitness"
                  f" {_fmt(ch.get('fitness'))}"]  # fmt: skip
        if ch.get("mean") is not None:
            lines.append(
                f"- validated pass@1 {ch['mean']:.3f} ± {ch.get('sd', 0.0):.3f} on {ch.get('problems')} held-out "
                f"problems x {ch.get('repeats')} repeats (inflation of its search pass rate "
                f"{_fmt(ch.get('inflation'))}); chosen as the best validated of the search's best genomes"
            )
            better = [
                v
                for v in validation
                if v.get("baseline") and v["validated_fitness"] > ch["validated_fitness"]
            ]
            if better:
                lines.append(f"- a baseline validated higher than the champion: {better[0]['label']}")
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
                f"| {v.get('label', v.get('hash', ''))} | {_fmt(v.get('search_fitness'))} | "
                f"{_fmt(v.get('search_pass_rate'))} | {v['mean']:.3f} ± {v.get('sd', 0.0):.3f} | "
                f"{v.get('repeats', '')} | {v.get('problems', '')} | {_fmt(v.get('inflation'))} |"
            )
        if any(v.get("search_fitness") is not None for v in validation):
            lines += ["", "![validation](plots/validation.png)", ""]
    lines += ["## The champion's refinement, problem by problem", "", _trajectory_tables(run_dir)]
    return "\n".join(lines) + "\n", plots


def _markdown_to_html(text: str, title: str) -> str:
    """A small renderer for the Markdown this module writes (headings, lists, tables, images, bold)."""
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        return re.sub(r"(?<!\w)_([^_]+)_(?!\w)", r"<em>\1</em>", s)

    out: list[str] = []
    rows: list[list[str]] = []
    in_list = False

    def flush_table() -> None:
        if rows:
            head, body = rows[0], rows[2:] if len(rows) > 1 else []
            out.append(
                "<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr></thead>"
            )
            out.append("<tbody>" + "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body) + "</tbody></table>")  # fmt: skip
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush_table()
        if line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{inline(line[2:])}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("```"):
            continue
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush_table()
    if in_list:
        out.append("</ul>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
        "img{max-width:100%}"
    )
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


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
    lines += [
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
    atomic_write_text(html_path, _markdown_to_html(markdown, f"neatpipe report: {root.name}"))
    return ReportFiles(md_path, html_path, tuple(plots))
