"""``neatpipe analyze``: refinement tables from trajectories, separations from 5-run results."""

from __future__ import annotations

import argparse
import json
from typing import Any

_DESCRIPTION = """\
Print the early-stopping, error-fix, error-transition and regression tables of a trajectories
file: neatpipe's own JSONL (one line per problem per repeat) or the reference study's
iteration_analysis.json (one set of tables per pipeline; --pipeline picks one). The kind of file
is recognised by its content. With --compare MAIN_RESULTS (the study's main_results.json, or a
file of the same shape) print mean ± SD per configuration and the separation table
(Table 2 of the study); a main_results file given as TRAJECTORIES is treated the same way.

A file with several configurations also gets the cross-configuration tables: problems no
configuration solves (with their dominant error), problems a solo configuration solves and a
pipeline does not (--solo LABEL picks the reference; default: every configuration made of one
generator call), and how many of each configuration's runs pass each problem."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="refinement tables of a trajectories file; separations of repeated runs",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "trajectories",
        nargs="?",
        metavar="TRAJECTORIES",
        help="trajectories JSONL or iteration_analysis.json",
    )
    p.add_argument(
        "--pipeline", metavar="NAME", help="only this pipeline (a study pipeline name or a neatpipe label)"
    )
    p.add_argument(
        "--compare", metavar="MAIN_RESULTS", help="per-config pass counts: print mean ± SD and separations"
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    fmt.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        metavar="N",
        help="bootstrap replicates for the pass@1 CI (default 2000)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--solo", action="append", default=[], metavar="LABEL",
                   help="reference configuration of the regressions table (repeatable; default: the solo ones)")  # fmt: skip
    p.set_defaults(func=_analyze)


def _pipeline_report(ts: Any, n_boot: int, seed: int) -> dict[str, Any]:
    from neatpipe.analysis.iterations import (
        early_stopping_table,
        error_fix_table,
        final_outcomes,
        regression_table,
        transition_table,
    )
    from neatpipe.analysis.stats import bootstrap_pass_at_1, summarize

    trajs = ts.trajectories
    report: dict[str, Any] = {
        "name": ts.name,
        "source": ts.source,
        "kind": ts.kind,
        "meta": ts.meta,
        "n_runs": ts.n_runs,
        "early_stopping": early_stopping_table(trajs),
        "error_fix": error_fix_table(trajs),
        "transitions": transition_table(trajs),
        "regressions": regression_table(trajs),
    }
    try:
        outcomes = final_outcomes(ts)
    except ValueError:
        outcomes = None
    if outcomes:
        counts = [sum(run) for run in outcomes]
        s = summarize(counts)
        ci = bootstrap_pass_at_1(outcomes, n_boot=max(1, n_boot), seed=seed)
        report["pass_at_1"] = {
            "n_problems": len(outcomes[0]),
            "pass_counts": counts,
            "mean": s.mean,
            "sd": s.sd,
            "estimate": ci.estimate,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "confidence": ci.confidence,
            "n_boot": ci.n_boot,
            "seed": ci.seed,
        }
    return report


def _compare_report(path: str) -> dict[str, Any]:
    from neatpipe.analysis.paper import TABLE2_COMPARISONS, read_main_results, separation_table

    configs = read_main_results(path)
    names = {c.name for c in configs}
    comps = [c for c in TABLE2_COMPARISONS if c.a in names and c.b in names]
    return {"source": path, "configs": configs, "separations": separation_table(configs, comps)}


def _to_json(obj: Any) -> Any:
    from neatpipe.analysis.paper import ConfigRuns, SeparationRow

    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, ConfigRuns):
        s = obj.summary
        return {
            "name": obj.name,
            "pass_counts": list(obj.pass_counts),
            "total": obj.total,
            "mean": s.mean,
            "sd": s.sd,
        }
    if isinstance(obj, SeparationRow):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    return obj


def _print_tables(
    pipelines: list[dict[str, Any]], compare: dict[str, Any] | None, style: str, cross: Any = None
) -> None:
    from neatpipe.analysis.render import render, render_cross

    blocks: list[str] = []
    for rep in pipelines:
        head = f"{rep['name']}  ({rep['kind']}: {rep['source']})"
        extra = []
        meta = rep["meta"]
        if meta.get("feedback"):
            extra.append(f"feedback: {meta['feedback']} tests")
        if meta.get("synthetic"):
            extra.append("synthetic model")
        pa = rep.get("pass_at_1")
        if pa:
            pct = round(100 * pa["confidence"])
            runs = f"{pa['mean']:.1f} ± {pa['sd']:.1f} of {pa['n_problems']} over {len(pa['pass_counts'])} run(s)"
            extra.append(
                f"output passes: {runs}; pass@1 {100 * pa['estimate']:.1f}% "
                f"[{pct}% bootstrap CI {100 * pa['ci_low']:.1f}-{100 * pa['ci_high']:.1f}]"
            )
        lines = [f"## {head}" if style == "markdown" else head]
        lines += [("- " if style == "markdown" else "  ") + e for e in extra]
        blocks.append("\n".join(lines))
        for key in ("early_stopping", "error_fix", "transitions", "regressions"):
            blocks.append(render(rep[key], style, title=rep["name"]))
    if cross is not None:
        head = f"Across the {len(pipelines)} configurations"
        blocks.append(f"## {head}" if style == "markdown" else head)
        blocks.append(render_cross(cross, style))
    if compare is not None:
        head = f"Results: {compare['source']}"
        blocks.append(f"## {head}" if style == "markdown" else head)
        blocks.append(render(compare["configs"], style))
        if compare["separations"]:
            blocks.append(render(compare["separations"], style))
    print("\n\n".join(blocks))


def _cross(sets: dict[str, Any], solo: list[str], source: str) -> Any:
    """The cross-configuration tables of a file with several configurations (None for one)."""
    from neatpipe.analysis.cross import cross_tables
    from neatpipe.cli import CLIError

    if len(sets) < 2:
        if solo:
            raise CLIError(f"--solo: {source} holds one configuration; nothing to set against it")
        return None
    try:
        return cross_tables(sets, solo)
    except KeyError as exc:
        raise CLIError(f"--solo: {source}: {exc.args[0]}") from None


def _analyze(args: argparse.Namespace) -> int:
    from neatpipe.analysis.iterations import TrajectoryFormatError, detect_kind, load_trajectories
    from neatpipe.cli import CLIError

    if not args.trajectories and not args.compare:
        raise CLIError("analyze: give a TRAJECTORIES file, --compare MAIN_RESULTS, or both")
    pipelines: list[dict[str, Any]] = []
    cross = None
    compare_path = args.compare
    try:
        if args.trajectories:
            kind = detect_kind(args.trajectories)
            if kind == "main_results":
                if compare_path:
                    raise CLIError(
                        f"{args.trajectories}: is a main_results file, expected trajectories "
                        "(neatpipe JSONL or the study's iteration_analysis.json)"
                    )
                compare_path = args.trajectories
            else:
                sets = load_trajectories(args.trajectories)
                if args.pipeline:
                    if args.pipeline not in sets:
                        raise CLIError(
                            f"{args.trajectories}: no pipeline named {args.pipeline!r}; "
                            f"it holds: {', '.join(sets)}"
                        )
                    sets = {args.pipeline: sets[args.pipeline]}
                pipelines = [_pipeline_report(ts, args.bootstrap, args.seed) for ts in sets.values()]
                cross = _cross(sets, args.solo, args.trajectories)
        compare = _compare_report(compare_path) if compare_path else None
    except TrajectoryFormatError as exc:
        raise CLIError(str(exc)) from exc
    except KeyError as exc:
        raise CLIError(f"{compare_path}: {exc.args[0]}") from exc

    if args.json:
        out: dict[str, Any] = {"pipelines": {p["name"]: _to_json(p) for p in pipelines}}
        if cross is not None:
            out["cross_configuration"] = cross.to_dict()
        if compare is not None:
            out["compare"] = _to_json(compare)
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        _print_tables(pipelines, compare, "markdown" if args.markdown else "text", cross)
    return 0
