"""``neatpipe evolve | report | compare``: thin layers over :func:`neatpipe.evolution.evolve`,
:func:`neatpipe.evolution.report.write_report` and :func:`neatpipe.evolution.compare.compare_runs`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from neatpipe.vocab import ENGINES

    p = sub.add_parser(
        "evolve",
        help="run an evolution experiment (or resume one)",
        description=(
            "Evolve pipelines as the experiment file says; progress goes to stderr, everything the run "
            "produces to its run directory. Stop it with Ctrl-C at any time and continue with --resume."
        ),
    )
    p.add_argument(
        "experiment", nargs="?", type=Path, metavar="EXPERIMENT", help="an experiments/*.yaml file"
    )
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument(
        "--generations",
        type=int,
        metavar="N",
        help="override budget.generations (with --resume: continue to N)",
    )
    p.add_argument("--tokens", type=int, metavar="N", help="override budget.tokens")
    p.add_argument("--wall-time", type=float, metavar="SECONDS", help="override budget.wall_time")
    p.add_argument(
        "--out", type=Path, metavar="RUN_DIR", help="write the run here (default: from the experiment)"
    )
    p.add_argument(
        "--model-set", metavar="NAME", help="use the experiment's model_alternatives.NAME (e.g. ollama)"
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help="where the evaluation runs: this process, or Ray actors (overrides the experiment's engine)",
    )
    p.add_argument("--no-report", action="store_true", help="do not write report.md/report.html at the end")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_evolve)

    p = sub.add_parser("report", help="write report.md and report.html (with plots) for a run directory")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.set_defaults(func=_report)

    p = sub.add_parser(
        "compare",
        help="runs or evaluations side by side: paired by problem, bootstrap CIs, Holm-corrected tests",
        description=(
            "Compare the validated genomes of runs and the genomes of evaluations. Only entries scored on "
            "the same benchmark, problems and feedback source, all with real or all with synthetic models, "
            "are compared; anything else is refused with the reason (or, with --split, compared group by "
            "group). Pairs are compared problem by problem: the difference, its bootstrap CI, the paired "
            "t-test, with p-values corrected by Holm's method for the number of tests."
        ),
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="RUN_DIR", help="run or evaluation directories")
    p.add_argument(
        "--split",
        action="store_true",
        help="compare each group of comparable entries on its own instead of refusing a mixed set",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--markdown", action="store_true")
    p.set_defaults(func=_compare)


def _evolve(args: argparse.Namespace) -> int:
    import signal

    from neatpipe.cli import CLIError
    from neatpipe.evolution.run import RunInterrupted, evolve

    if args.experiment is None and args.resume is None:
        raise CLIError("give an experiment file, or --resume RUN_DIR")

    def stop(signum: int, frame: object) -> None:  # SIGTERM stops a run the way Ctrl-C does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        run = evolve(
            args.experiment,
            resume=args.resume,
            out=args.out,
            generations=args.generations,
            tokens=args.tokens,
            wall_time=args.wall_time,
            progress=not args.quiet,
            model_set=args.model_set,
            engine=args.engine,
        )
    except RunInterrupted as exc:
        print(f"neatpipe: interrupted; continue the run with: {resume_command(exc.run_dir)}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"run directory: {run.run_dir}")
    print(f"status: {run.status}")
    if run.champion is not None:
        tag = " [synthetic]" if run.synthetic else ""
        print(f"champion: fitness {run.champion_fitness:.4f}{tag}  ->  {run.run_dir / 'champion.yaml'}")
    for v in run.validation:
        search = (
            f" (search fitness {v['search_fitness']:.3f}, inflation {v['inflation']:+.3f})"
            if v.get("search_fitness") is not None
            else ""
        )
        print(
            f"validated {v['label']}: pass@1 {v['mean']:.3f} ± {v['sd']:.3f} on {v['problems']} held-out "
            f"problems x {v['repeats']} repeats{search}"
        )
    for d in run.designs:
        sd = f" ± {d['sd']:.3f}" if d.get("sd") is not None else ""
        print(f"{d['label']}: pass@1 {d['mean']:.3f}{sd} over {d['repeats']} repeat(s)")
    if not args.no_report and (run.history or run.designs):
        from neatpipe.evolution.report import write_report

        files = write_report(run.run_dir)
        print(f"report: {files.markdown}  {files.html}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from neatpipe.evolution.report import write_report

    files = write_report(args.run_dir)
    print(f"wrote {files.markdown}, {files.html} and {len(files.plots)} plots")
    return 0


def _compare(args: argparse.Namespace) -> int:
    import json

    from neatpipe.evolution.compare import compare_runs, render_comparison

    comparison = compare_runs(args.paths, split=args.split)
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        print(render_comparison(comparison, "markdown" if args.markdown else "text"))
    return 0


def resume_command(run_dir: Path) -> str:
    """The command that continues ``run_dir``, as it runs from the working directory: the program that
    is running now (``.venv/bin/neatpipe`` in a project checkout; ``neatpipe`` when that is what PATH
    finds), and the run directory relative to here when it lies below."""
    import os
    import shlex
    import shutil

    program = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    on_path = shutil.which("neatpipe")
    if program is None or program.name != "neatpipe":
        command = f"{shlex.quote(sys.executable)} -m neatpipe"
    elif on_path and Path(on_path).resolve() == program:
        command = "neatpipe"
    else:
        relative = _relative(program, Path.cwd())
        command = shlex.quote(relative if "/" in relative else f"./{relative}")
    return f"{command} evolve --resume {shlex.quote(_relative(Path(os.path.abspath(run_dir)), Path.cwd()))}"


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base.resolve())) if path.is_relative_to(base.resolve()) else str(path)
    except ValueError:
        return str(path)
