"""Plain-text (aligned columns) and Markdown renderings of every analysis table.

Each table becomes a :class:`Grid` (title, headers, rows of strings, notes); :func:`render` turns
any table object into text or Markdown::

    print(render(early_stopping_table(ts.trajectories), "text", title=ts.name))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from neatpipe.analysis.cross import ConsistencyTable, CrossTables, SoloRegressionTable, UnfixableTable
from neatpipe.analysis.iterations import (
    EarlyStoppingTable,
    ErrorFixTable,
    RegressionTable,
    TransitionTable,
)
from neatpipe.analysis.paper import ConfigRuns, SeparationRow

__all__ = ["Grid", "format_grid", "render", "render_cross", "to_grid"]


@dataclass
class Grid:
    """A table as strings: first column left-aligned, the others right-aligned."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _fmt_md_cell(s: str) -> str:
    return s.replace("|", "\\|")


def format_grid(grid: Grid, style: str = "text") -> str:
    """Render a grid as ``"text"`` (aligned columns) or ``"markdown"`` (a pipe table)."""
    if style == "markdown":
        out = [f"**{grid.title}**", ""] if grid.title else []
        out.append("| " + " | ".join(_fmt_md_cell(h) for h in grid.headers) + " |")
        out.append("|" + "|".join([":---"] + ["---:"] * (len(grid.headers) - 1)) + "|")
        for r in grid.rows:
            out.append("| " + " | ".join(_fmt_md_cell(c) for c in r) + " |")
        if grid.notes:
            out.append("")
            out.extend(grid.notes)
        return "\n".join(out)
    if style != "text":
        raise ValueError(f"style must be 'text' or 'markdown', not {style!r}")
    widths = [len(h) for h in grid.headers]
    for r in grid.rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    out = [grid.title] if grid.title else []
    out.append(line(grid.headers))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in grid.rows)
    out.extend(grid.notes)
    return "\n".join(out)


def _signed(n: float) -> str:
    return f"{n:+d}" if isinstance(n, int) else f"{n:+.1f}"


def _runs_note(n_trajectories: int, n_runs: int) -> list[str]:
    if n_runs > 1:
        return [f"counts over {n_trajectories} problem-runs ({n_runs} runs), not per run"]
    return []


def _early_stopping_grid(t: EarlyStoppingTable, title: str) -> Grid:
    rows = [
        [
            str(r.iteration),
            str(r.solved),
            str(r.first_fixes),
            str(r.passing),
            "" if r.iteration == 0 else str(r.fixes),
            "" if r.iteration == 0 else str(r.regressions),
            "" if r.iteration == 0 else _signed(r.net),
            "" if r.iteration == 0 else _signed(r.net_first),
        ]
        for r in t.rows
    ]
    notes = [
        "solved: passed at any iteration <= i (with early stopping); passing: candidate at i passes",
        "(without early stopping); fixes fail->pass, regressions pass->fail, net = fixes - regressions;",
        "net (study) = first-time fixes - regressions.",
        f"{t.n_trajectories} trajectories ({t.stopping}); a loop that stopped early holds its last candidate.",
        *_runs_note(t.n_trajectories, t.n_runs),
    ]
    return Grid(
        title=f"Early stopping{title}",
        headers=["iter", "solved", "first fixes", "passing", "fixes", "regressions", "net", "net (study)"],
        rows=rows,
        notes=notes,
    )


def _error_fix_grid(t: ErrorFixTable, title: str) -> Grid:
    headers = [
        "initial error",
        "total",
        *[f"fixed @{i}" for i in range(1, t.horizon + 1)],
        "never",
        "fix rate",
    ]
    rows = [
        [r.category, str(r.total), *map(str, r.fixed_at), str(r.never), f"{100 * r.fix_rate:.0f}%"]
        for r in t.rows
    ]
    if t.rows:
        tot = [sum(r.fixed_at[i] for r in t.rows) for i in range(t.horizon)]
        total = sum(r.total for r in t.rows)
        fixed = sum(tot)
        rows.append(
            [
                "all",
                str(total),
                *map(str, tot),
                str(total - fixed),
                f"{100 * fixed / total:.0f}%" if total else "-",
            ]
        )
    notes = [
        f"{t.n_initially_passed} of {t.n_trajectories} passed before refinement; "
        "'fixed @i': first passed the hidden tests at iteration i.",
        *_runs_note(t.n_trajectories, t.n_runs),
    ]
    return Grid(title=f"Error fixes by initial error{title}", headers=headers, rows=rows, notes=notes)


def _transition_grid(t: TransitionTable, title: str) -> Grid:
    states = t.states
    headers = ["before \\ after", *states, "total"]
    rows = []
    for a in states:
        if t.before(a) == 0:
            continue
        rows.append([a, *[str(t.counts.get((a, b), 0)) for b in states], str(t.before(a))])
    rows.append(["total", *[str(t.after(b)) for b in states], str(t.n_trajectories)])
    notes = [
        "before: the candidate entering refinement; after: the loop's output.",
        *_runs_note(t.n_trajectories, t.n_runs),
    ]
    return Grid(title=f"Error transitions{title}", headers=headers, rows=rows, notes=notes)


def _regression_grid(t: RegressionTable, title: str) -> Grid:
    headers = [
        "initial passes",
        "broke",
        *[f"first broke @{i}" for i in range(1, len(t.first_break_at) + 1)],
        "break rate",
    ]
    rows = [[str(t.initial_passes), str(t.broke), *map(str, t.first_break_at), f"{100 * t.break_rate:.0f}%"]]
    return Grid(title=f"Regressions of initially-correct code{title}", headers=headers, rows=rows)


def _fmt_sigma(x: float) -> str:
    return "inf" if math.isinf(x) else ("-" if math.isnan(x) else f"{x:.2f}")


def _separation_grid(rows: Sequence[SeparationRow], title: str) -> Grid:
    out = []
    for r in rows:
        c = r.comparison
        out.append(
            [
                c.label,
                f"{r.a.mean:.1f} ± {r.a.sd:.1f}",
                f"{r.b.mean:.1f} ± {r.b.sd:.1f}",
                f"{r.diff:+.1f}",
                _fmt_sigma(r.sigma),
                _fmt_sigma(r.sigma_b),
                f"{r.welch.t:.2f}",
                f"{r.welch.df:.1f}",
                f"{r.welch.p:.2g}",
                "" if c.paper_sigma is None else f"{c.paper_diff:+.1f} ({c.paper_sigma}σ)",
            ]
        )
    return Grid(
        title=f"Separations{title}",
        headers=["comparison (a - b)", "a", "b", "diff", "σ", "σ (b's SD)", "Welch t", "df", "p", "paper"],
        rows=out,
        notes=[
            "σ = diff / sqrt(sd_a² + sd_b²); σ (b's SD) = diff / sd_b; Welch's t-test two-sided.",
        ],
    )


def _configs_grid(configs: Sequence[ConfigRuns], title: str) -> Grid:
    rows = []
    for c in configs:
        s = c.summary
        pct = f"{100 * s.mean / c.total:.1f}%" if c.total else ""
        rows.append(
            [c.name, str(s.n), f"{s.mean:.1f}", f"{s.sd:.2f}", pct, " ".join(map(str, c.pass_counts))]
        )
    return Grid(
        title=f"Pass counts{title}",
        headers=["configuration", "runs", "mean", "SD", "pass@1", "pass counts"],
        rows=rows,
    )


def _some(task_ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(task_ids[:limit])
    return shown + (f" (+{len(task_ids) - limit})" if len(task_ids) > limit else "")


def _unfixable_grid(t: UnfixableTable, title: str) -> Grid:
    rows = []
    for error, n in t.by_dominant_error.items():
        tasks = [p.task_id for p in t.problems if p.dominant_error == error]
        rows.append([error, str(n), _some(tasks)])
    rows.append(["all", str(len(t.problems)), ""])
    return Grid(
        title=f"Unfixable problems: no run of any configuration passes{title}",
        headers=["dominant error", "problems", "task ids"],
        rows=rows,
        notes=[
            f"{len(t.problems)} of the {t.n_problems} problems all {len(t.configurations)} configurations "
            "attempted; dominant error: the category most of a problem's failed outputs share.",
        ],
    )


def _solo_regression_grid(tables: Sequence[SoloRegressionTable], title: str) -> Grid:
    rows = []
    for t in tables:
        errors = ", ".join(f"{e} {n}" for e, n in t.errors.items()) or "-"
        rows.append(
            [
                t.pipeline,
                t.solo,
                str(t.n_problems),
                str(len(t.regressions)),
                str(len(t.gains)),
                _signed(len(t.gains) - len(t.regressions)),
                errors,
                _some([r.task_id for r in t.regressions]),
            ]
        )
    return Grid(
        title=f"Regressions vs solo: problems solo solves and the pipeline does not{title}",
        headers=[
            "pipeline",
            "vs",
            "problems",
            "regressions",
            "gains",
            "net",
            "pipeline's errors",
            "regressed",
        ],
        rows=rows,
        notes=[
            "solves: passes in more than half of its runs; gains: the pipeline solves, solo does not;",
            "pipeline's errors: its dominant final error on each regressed problem.",
        ],
    )


def _consistency_grid(t: ConsistencyTable, title: str) -> Grid:
    rows = [
        [
            r.configuration,
            str(r.runs),
            str(r.never),
            str(r.sometimes),
            str(r.always),
            " ".join(map(str, r.histogram)),
        ]
        for r in t.rows
    ]
    return Grid(
        title=f"Consistency over repeats{title}",
        headers=["configuration", "runs", "never", "sometimes", "always", "problems passing in 0..k runs"],
        rows=rows,
        notes=[f"over the {t.n_problems} problems every configuration attempted."],
    )


def render_cross(tables: CrossTables, style: str = "text") -> str:
    """The three cross-configuration tables (see :mod:`neatpipe.analysis.cross`), one after another."""
    blocks = [render(tables.unfixable, style)]
    if tables.regressions:
        blocks.append(render(list(tables.regressions), style))
    else:
        blocks.append(
            "Regressions vs solo: none of these configurations is a solo model (one generator call); "
            "name a reference configuration to compare against one"
        )
    blocks.append(render(tables.consistency, style))
    return "\n\n".join(blocks)


def to_grid(table: object, title: str = "") -> Grid:
    """The :class:`Grid` of any analysis table (a list of :class:`SeparationRow` or of
    :class:`ConfigRuns` is accepted too). ``title`` is appended to the table's own title."""
    suffix = f": {title}" if title else ""
    if isinstance(table, EarlyStoppingTable):
        return _early_stopping_grid(table, suffix)
    if isinstance(table, ErrorFixTable):
        return _error_fix_grid(table, suffix)
    if isinstance(table, TransitionTable):
        return _transition_grid(table, suffix)
    if isinstance(table, RegressionTable):
        return _regression_grid(table, suffix)
    if isinstance(table, UnfixableTable):
        return _unfixable_grid(table, suffix)
    if isinstance(table, ConsistencyTable):
        return _consistency_grid(table, suffix)
    if isinstance(table, Sequence) and table and isinstance(table[0], SoloRegressionTable):
        return _solo_regression_grid(table, suffix)
    if isinstance(table, Sequence) and table and isinstance(table[0], SeparationRow):
        return _separation_grid(table, suffix)
    if isinstance(table, Sequence) and table and isinstance(table[0], ConfigRuns):
        return _configs_grid(table, suffix)
    raise TypeError(f"cannot render {type(table).__name__}")


def render(table: object, style: str = "text", title: str = "") -> str:
    """Render any analysis table as ``"text"`` or ``"markdown"``."""
    return format_grid(to_grid(table, title), style)
