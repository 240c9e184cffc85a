"""``neatpipe compare``: runs and evaluations side by side, compared only where the comparison means something.

Each path is an evolution run directory (its champions' and baselines' validation on held-out problems,
``validation.json``) or an evaluation directory (``evaluation.json``, written by ``neatpipe evaluate
--out`` and by ``mode: evaluate`` experiments). Every genome there is one *entry*: its pass rate per repeat
and, per problem, how many repeats passed.

Two entries are comparable when they were scored on the same benchmark, the same problems and the same
feedback source, and both with real models or both with synthetic ones: a difference between a 25-problem
MBPP subset and all of HumanEval, or between hidden-test and oracle feedback, measures the setting, not the
pipelines. Entries are grouped by those four; several groups are an error that names the first difference
(:class:`ComparisonError`), unless ``split`` asks for each group to be compared on its own.

Within a group every pair is compared problem by problem: the difference of the pass rates, a bootstrap
confidence interval of it that resamples problems, and the paired t-test over problems (the problems'
difficulty is shared by both sides, so it does not count as noise the way it does when whole-run pass rates
are set against each other). The p-values of all the tests are corrected for their number with Holm's
method, and the table says so. The study's separation in SD (difference / sqrt(sd_a^2 + sd_b^2) over
repeats) stays beside them as a description, not a test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError, shown
from neatpipe.evolution.runlog import SUMMARY_FILE, VALIDATION_FILE, RunDirError, read_json

EVALUATION_FILE = "evaluation.json"
#: Confidence of the bootstrap intervals of the differences, and the family-wise error rate of the tests.
CONFIDENCE = 0.95
ALPHA = 0.05
#: Bootstrap resamples of the problems (shared by every pair of a group; deterministic seed).
N_BOOT = 2000
BOOT_SEED = 0
_MAX_LABEL = 80


class ComparisonError(NeatpipeError):
    """Entries that cannot be compared with each other (different benchmark, problems, feedback or model kind)."""


def _label(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 3] + "..."


def _pass_rates(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or not value:
        raise RunDirError(f"{where}: field 'pass_rates' must be a non-empty list, got {shown(value)}")
    for x in value:
        if isinstance(x, bool) or not isinstance(x, int | float) or not 0.0 <= x <= 1.0:
            raise RunDirError(f"{where}: field 'pass_rates' holds {shown(x)}, not a pass rate in [0, 1]")
    return [float(x) for x in value]


def _outcomes(
    task_ids: Any, per_problem: Any, repeats: int, where: str
) -> tuple[list[str] | None, dict[str, int] | None]:
    """Task ids and passes per problem, checked; ``None`` where the file does not record them."""
    if task_ids is None:
        return None, None
    if not isinstance(task_ids, list) or not all(isinstance(t, str) for t in task_ids):
        raise RunDirError(f"{where}: the problems must be a list of task ids, got {shown(task_ids)}")
    if per_problem is None:
        return list(task_ids), None
    if not isinstance(per_problem, dict) or set(per_problem) != set(task_ids):
        raise RunDirError(f"{where}: field 'per_problem' must count passes for exactly its problems")
    for tid, count in per_problem.items():
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= repeats:
            raise RunDirError(
                f"{where}: per_problem[{shown(tid)}] must be a count of passing repeats (0-{repeats}), "
                f"got {shown(count)}"
            )
    return list(task_ids), dict(per_problem)


def _entry(row: Any, where: str, source: Path, kind: str, benchmark: Any, ids_field: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise RunDirError(f"{where}: expected an object, got {type(row).__name__}")
    pass_rates = _pass_rates(row.get("pass_rates"), where)
    repeats = row.get("repeats", len(pass_rates))
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise RunDirError(
            f"{where}: field 'repeats' must be a whole number of at least 1, got {shown(repeats)}"
        )
    task_ids, per_problem = _outcomes(row.get(ids_field), row.get("per_problem"), repeats, where)
    count = row.get("problems") if kind == "validation" else None
    return {
        "label": _label(row.get("label", row.get("hash", row.get("genome", "?")))),
        "source": str(source),
        "kind": kind,
        "benchmark": str(row.get("benchmark") or benchmark or "unknown"),
        "task_ids": task_ids,
        "per_problem": per_problem,
        "problems": len(task_ids) if task_ids is not None else count,
        "repeats": repeats,
        "pass_rates": pass_rates,
        "feedback": str(row.get("feedback")),
        "synthetic": bool(row.get("synthetic")),
        "search_fitness": row.get("search_fitness"),
    }


def _entries(path: Path) -> list[dict[str, Any]]:
    """The entries of one run or evaluation directory, each labelled with where it came from."""
    if (path / VALIDATION_FILE).exists():
        rows = read_json(path / VALIDATION_FILE)
        if not isinstance(rows, list):
            raise RunDirError(
                f"{path / VALIDATION_FILE}: expected a JSON list (one object per validated genome)"
            )
        summary = read_json(path / SUMMARY_FILE) if (path / SUMMARY_FILE).exists() else {}
        benchmark = summary.get("benchmark") if isinstance(summary, dict) else None
        return [
            _entry(r, f"{path / VALIDATION_FILE}: entry {i}", path, "validation", benchmark, "task_ids")
            for i, r in enumerate(rows)
        ]
    if (path / EVALUATION_FILE).exists():
        data = read_json(path / EVALUATION_FILE)
        if not isinstance(data, dict) or not isinstance(data.get("evaluations", []), list):
            raise RunDirError(f"{path / EVALUATION_FILE}: expected an object with a list 'evaluations'")
        return [
            _entry(e, f"{path / EVALUATION_FILE}: evaluation {i}", path, "evaluation", data.get("benchmark"), "problems")
            for i, e in enumerate(data.get("evaluations", []))
        ]  # fmt: skip
    if not path.exists():
        raise RunDirError(f"{path}: no such directory")
    raise RunDirError(
        f"{path}: neither a finished run ({VALIDATION_FILE}) nor an evaluation ({EVALUATION_FILE})"
    )


def _name(entries: list[dict[str, Any]], many_sources: bool) -> None:
    """A name per entry that tells where it came from when several directories are compared."""
    for e in entries:
        e["name"] = f"{e['label']} @ {Path(e['source']).name}" if many_sources else e["label"]
    seen: dict[str, int] = {}
    for e in entries:
        seen[e["name"]] = seen.get(e["name"], 0) + 1
    if any(n > 1 for n in seen.values()):
        for i, e in enumerate(entries, 1):
            e["name"] = f"#{i} {e['name']}"


# ---------------------------------------------------------------------------------------------- groups


def _key(e: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must be equal for two entries to be compared. Entries whose file does not record their
    problems (validation written by an older neatpipe) share a problem set only with their own file's
    rows: one run validates every genome on the same held-out problems."""
    problems = (
        frozenset(e["task_ids"]) if e["task_ids"] is not None else ("unrecorded", e["source"], e["problems"])
    )
    return (e["benchmark"], problems, e["feedback"], e["synthetic"])


def _models(synthetic: bool) -> str:
    return "synthetic models" if synthetic else "real models"


def _problems_text(e: Mapping[str, Any]) -> str:
    return (
        f"{e['problems']} problems" if e["task_ids"] is not None else f"{e['problems']} unrecorded problems"
    )


def mismatch(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """Why ``a`` and ``b`` cannot be compared, in a few words (empty when they can)."""
    why = []
    if a["benchmark"] != b["benchmark"]:
        why.append(f"benchmark {a['benchmark']} vs {b['benchmark']}")
    if _key(a)[1] != _key(b)[1]:
        if a["task_ids"] is None or b["task_ids"] is None:
            old = a if a["task_ids"] is None else b
            why.append(
                f"{old['source']} does not record which problems {old['label']} was scored on "
                "(validated by an older neatpipe)"
            )
        else:
            common = len(set(a["task_ids"]) & set(b["task_ids"]))
            why.append(f"different problems ({a['problems']} vs {b['problems']}, {common} in common)")
    if a["feedback"] != b["feedback"]:
        why.append(f"feedback {a['feedback']} vs {b['feedback']}")
    if a["synthetic"] != b["synthetic"]:
        why.append(f"{_models(a['synthetic'])} vs {_models(b['synthetic'])}")
    return "; ".join(why)


def _describe(e: Mapping[str, Any]) -> str:
    return f"{e['benchmark']}, {_problems_text(e)}, {e['feedback']} feedback, {_models(e['synthetic'])}"


def _groups(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    by: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for e in entries:
        by.setdefault(_key(e), []).append(e)
    return list(by.values())


# ---------------------------------------------------------------------------------------------- pairs


def _per_problem_rates(e: Mapping[str, Any], task_ids: Sequence[str]) -> list[float]:
    return [e["per_problem"][t] / e["repeats"] for t in task_ids]


def _compare_group(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of a group of comparable entries: difference, bootstrap CI, paired test, separation."""
    from neatpipe.analysis.stats import PairedBootstrap, paired_t_test, separation, welch_t_test

    paired = all(e["per_problem"] is not None for e in group)
    task_ids = sorted(group[0]["task_ids"]) if paired else []
    rates = {id(e): _per_problem_rates(e, task_ids) for e in group} if paired else {}
    boot = (
        PairedBootstrap(len(task_ids), n_boot=N_BOOT, seed=BOOT_SEED) if paired and len(group) > 1 else None
    )
    replicates = {k: boot.replicate_means(v) for k, v in rates.items()} if boot else {}
    pairs = []
    for a, b in itertools.combinations(group, 2):
        row: dict[str, Any] = {"a": a["name"], "b": b["name"], "diff": a["mean"] - b["mean"]}
        if a["repeats"] >= 2 and b["repeats"] >= 2:
            row["separation_sd"] = separation(a["pass_rates"], b["pass_rates"])
        if paired and len(task_ids) >= 2:
            ra, rb = rates[id(a)], rates[id(b)]
            row["diff"] = math.fsum(ra) / len(ra) - math.fsum(rb) / len(rb)
            low, high = PairedBootstrap.interval(
                [x - y for x, y in zip(replicates[id(a)], replicates[id(b)], strict=True)], CONFIDENCE
            )
            t = paired_t_test(ra, rb)
            row.update({"test": "paired t over problems", "ci": [low, high], "t": t.t, "df": t.df, "p": t.p})
            row["problems"] = len(task_ids)
        elif a["repeats"] >= 2 and b["repeats"] >= 2:
            w = welch_t_test(a["pass_rates"], b["pass_rates"])
            row.update({"test": "Welch t over repeats", "t": w.t, "df": w.df, "p": w.p})
            row["note"] = "per-problem outcomes not recorded: Welch's test over the repeats' pass rates"
        else:
            row["note"] = "per-problem outcomes not recorded and fewer than 2 repeats on a side: no test"
        pairs.append(row)
    return pairs


def compare_runs(paths: Sequence[str | Path], *, split: bool = False) -> dict[str, Any]:
    """Every entry of every path with mean ± SD, and every comparable pair's difference, its bootstrap
    CI, its paired test and Holm-corrected p-value.

    Raises :class:`ComparisonError` when the entries are not all comparable, naming the first two that
    differ and how; with ``split=True`` each comparable group is compared on its own instead, and the
    result says why the groups were kept apart.
    """
    from neatpipe.analysis.stats import holm_adjust, summarize

    sources = [Path(p) for p in paths]
    entries = [e for p in sources for e in _entries(p)]
    if not entries:
        raise RunDirError("nothing to compare: the paths hold no validated genomes or evaluations")
    _name(entries, len(set(sources)) > 1)
    for e in entries:
        s = summarize(e["pass_rates"])
        e["mean"], e["sd"] = s.mean, (s.sd if s.n > 1 else None)
    groups = _groups(entries)
    if len(groups) > 1 and not split:
        a, b = groups[0][0], groups[1][0]
        raise ComparisonError(
            f"cannot compare {a['name']} ({a['source']}) with {b['name']} ({b['source']}): {mismatch(a, b)}; "
            "compare like with like, or give --split to compare each group on its own"
        )
    out_groups = []
    for i, group in enumerate(groups, 1):
        for e in group:
            e["group"] = i
        out_groups.append({"group": i, "setting": _describe(group[0]), "synthetic": group[0]["synthetic"],
                           "entries": [e["name"] for e in group], "pairs": _compare_group(group)})  # fmt: skip
    tested = [p for g in out_groups for p in g["pairs"] if "p" in p]
    for p, adjusted in zip(tested, holm_adjust([p["p"] for p in tested]), strict=True):
        p["p_holm"] = adjusted
        p["significant"] = adjusted < ALPHA
    apart = [
        f"group {j + 1} is kept apart from group 1: {mismatch(groups[0][0], g[0])}" for j, g in enumerate(groups[1:], 1)
    ]  # fmt: skip
    for e in entries:
        del e["per_problem"], e["task_ids"]  # what the pairs rest on; the files keep them
    return {
        "entries": entries,
        "groups": out_groups,
        "pairs": [p for g in out_groups for p in g["pairs"]],
        "tests": len(tested),
        "correction": "holm",
        "alpha": ALPHA,
        "confidence": CONFIDENCE,
        "bootstrap": {"resamples": N_BOOT, "seed": BOOT_SEED, "unit": "problem"},
        "kept_apart": apart,
    }


# ---------------------------------------------------------------------------------------------- rendering


def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{_unsigned_zero(x, digits):.{digits}f}" if isinstance(x, float) else str(x)


def _unsigned_zero(x: float, digits: int) -> float:
    """``x``, or 0.0 where it rounds to zero: no "-0.00" from float noise around an exact tie."""
    return 0.0 if abs(x) < 0.5 * 10.0**-digits else x


def _signed(x: float) -> str:
    return f"{_unsigned_zero(x, 3):+.3f}"


def _p(x: Any) -> str:
    if x is None:
        return ""
    return "<0.0001" if x < 0.0001 else f"{x:.4f}"


def _mean_sd(e: Mapping[str, Any]) -> str:
    return f"{e['mean']:.3f} ± {e['sd']:.3f}" if e["sd"] is not None else f"{e['mean']:.3f} (one repeat)"


def _entries_grid(comparison: dict[str, Any]) -> Any:
    from neatpipe.analysis.render import Grid

    entries = comparison["entries"]
    searched = any(e["search_fitness"] is not None for e in entries)
    headers = ["entry", "group", "mean ± SD", "repeats", "problems", "benchmark", "feedback", "models"]
    headers += ["search fitness"] * searched + ["source"]
    rows = []
    for e in entries:
        row = [e["name"], str(e["group"]), _mean_sd(e), str(e["repeats"]), str(e["problems"]), e["benchmark"]]
        row += [e["feedback"], "SYNTHETIC" if e["synthetic"] else "real"]
        row += [_num(e["search_fitness"])] * searched + [e["source"]]
        rows.append(row)
    return Grid("Pass@1 over repeats", headers, rows, notes=comparison["kept_apart"])


def _pairs_grid(group: dict[str, Any], confidence: float) -> Any:
    from neatpipe.analysis.render import Grid

    tag = "  [SYNTHETIC models: the numbers measure the machinery, not a language model]"
    rows = []
    for p in group["pairs"]:
        ci = f"{_signed(p['ci'][0])} to {_signed(p['ci'][1])}" if "ci" in p else ""
        holm = _p(p.get("p_holm")) + (" *" if p.get("significant") else "")
        rows.append([p["a"], p["b"], _signed(p["diff"]), ci, _num(p.get("t"), 2), _p(p.get("p")), holm])
        rows[-1].append(_num(p.get("separation_sd"), 2))
    return Grid(
        f"Group {group['group']} ({group['setting']}): pairs (a - b)" + (tag if group["synthetic"] else ""),
        ["a", "b", "diff", f"{round(100 * confidence)}% CI", "t", "p", "p (Holm)", "sep. (SD)"],
        rows,
        notes=[f"{p['a']} vs {p['b']}: {p['note']}" for p in group["pairs"] if p.get("note")],
    )


def render_comparison(comparison: dict[str, Any], style: str = "text") -> str:
    """The entries (each with its group and source), then each group's pairs, then how to read them."""
    from neatpipe.analysis.render import format_grid

    blocks = [format_grid(_entries_grid(comparison), style)]
    blocks += [
        format_grid(_pairs_grid(g, comparison["confidence"]), style)
        for g in comparison["groups"]
        if g["pairs"]
    ]
    m = comparison["tests"]
    if m:
        blocks.append(
            "Paired by problem: diff is the mean over the problems of a's pass rate minus b's, the CI a "
            f"bootstrap over problems ({comparison['bootstrap']['resamples']} resamples), t and p the paired "
            f"t-test over problems. p (Holm) is p corrected by Holm's method for the {m} test"
            f"{'s' if m != 1 else ''} made here; * marks a difference below {comparison['alpha']} after the "
            "correction. sep. (SD) is the study's separation over repeats: a description, not a test."
        )
    return "\n\n".join(blocks)
