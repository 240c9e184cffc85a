"""``neatpipe compare``: runs and evaluations side by side, with the statistics of the analyses.

Each path is an evolution run directory (its champions' validation: pass rate per repeat on held-out
problems) or an evaluation directory written by ``neatpipe evaluate --out`` (``evaluation.json``: pass
rate per repeat of each genome). Every entry is one sample of pass rates over repeats; each pair gets
the difference of means, the separation in SD (difference / sqrt(sd1^2 + sd2^2)) and Welch's t-test.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from neatpipe.evolution.runlog import SUMMARY_FILE, VALIDATION_FILE, RunDirError, read_json

EVALUATION_FILE = "evaluation.json"


def _entries(path: Path) -> list[dict[str, Any]]:
    if (path / VALIDATION_FILE).exists():
        rows = read_json(path / VALIDATION_FILE)
        summary = read_json(path / SUMMARY_FILE) if (path / SUMMARY_FILE).exists() else {}
        name = summary.get("experiment", path.name)
        return [
            {
                "name": f"{name}: {r.get('label', r.get('hash', '?'))}",
                "source": str(path),
                "pass_rates": list(r["pass_rates"]),
                "problems": r.get("problems"),
                "feedback": r.get("feedback"),
                "synthetic": bool(r.get("synthetic")),
                "search_fitness": r.get("search_fitness"),
            }
            for r in rows
        ]
    if (path / EVALUATION_FILE).exists():
        data = read_json(path / EVALUATION_FILE)
        return [
            {
                "name": e.get("label", e.get("genome", "?")),
                "source": str(path),
                "pass_rates": list(e["pass_rates"]),
                "problems": len(e.get("problems", ())),
                "feedback": e.get("feedback"),
                "synthetic": bool(e.get("synthetic")),
                "search_fitness": None,
            }
            for e in data.get("evaluations", [])
        ]
    if not path.exists():
        raise RunDirError(f"{path}: no such directory")
    raise RunDirError(
        f"{path}: neither a finished run ({VALIDATION_FILE}) nor an evaluation ({EVALUATION_FILE})"
    )


def compare_runs(paths: list[Path]) -> dict[str, Any]:
    """Every entry of every path with mean ± SD, and every pair's separation and Welch's test."""
    from neatpipe.analysis.stats import separation, summarize, welch_t_test

    entries = [e for p in paths for e in _entries(Path(p))]
    if not entries:
        raise RunDirError("nothing to compare: the paths hold no validated genomes or evaluations")
    for e in entries:
        s = summarize(e["pass_rates"])
        e["mean"], e["sd"], e["repeats"] = s.mean, s.sd, s.n
    pairs = []
    for a, b in itertools.combinations(entries, 2):
        row: dict[str, Any] = {"a": a["name"], "b": b["name"], "diff": a["mean"] - b["mean"]}
        if a["repeats"] >= 2 and b["repeats"] >= 2:
            row["separation_sd"] = separation(a["pass_rates"], b["pass_rates"])
            w = welch_t_test(a["pass_rates"], b["pass_rates"])
            row.update({"welch_t": w.t, "welch_df": w.df, "welch_p": w.p})
        else:
            row["note"] = "fewer than 2 repeats on a side: no SD-based statistics"
        if a["feedback"] != b["feedback"]:
            row["warning"] = f"different feedback sources ({a['feedback']} vs {b['feedback']})"
        pairs.append(row)
    return {"entries": entries, "pairs": pairs}


def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_comparison(comparison: dict[str, Any], style: str = "text") -> str:
    from neatpipe.analysis.render import Grid, format_grid

    entries = Grid(
        "Pass@1 over repeats",
        ["entry", "mean ± SD", "repeats", "problems", "feedback", "synthetic", "search fitness"],
        [
            [
                e["name"],
                f"{e['mean']:.3f} ± {e['sd']:.3f}",
                str(e["repeats"]),
                str(e["problems"]),
                str(e["feedback"]),
                "yes" if e["synthetic"] else "no",
                _num(e["search_fitness"]),
            ]
            for e in comparison["entries"]
        ],
    )
    pairs = Grid(
        "Pairs (a - b)",
        ["a", "b", "diff", "separation (SD)", "Welch t", "df", "p"],
        [
            [
                p["a"],
                p["b"],
                f"{p['diff']:+.3f}",
                _num(p.get("separation_sd"), 2),
                _num(p.get("welch_t"), 2),
                _num(p.get("welch_df"), 1),
                _num(p.get("welch_p"), 4),
            ]  # fmt: skip
            for p in comparison["pairs"]
        ],
        notes=[
            f"{p['a']} vs {p['b']}: {p.get('warning') or p.get('note')}"
            for p in comparison["pairs"]
            if p.get("warning") or p.get("note")
        ],  # fmt: skip
    )
    return format_grid(entries, style) + "\n\n" + format_grid(pairs, style)
