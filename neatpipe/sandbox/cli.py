"""``neatpipe sandbox ...``: run code in the sandbox from the command line.

:func:`register` creates the ``sandbox`` command and one sub-parser per subcommand, each added by a
small ``_add_<name>`` function, so that another subcommand (``sandbox check``, say) is one more
function and one more line in :data:`_SUBCOMMANDS`. Handlers import the sandbox lazily, keeping
``neatpipe --help`` fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _add_run(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run one Python file in the sandbox and print the result",
        description=(
            "Run FILE as candidate code (module __candidate__, so an `if __name__ == '__main__'` block "
            "does not run) with no tests, and print how it ended. Exit status 0 when it passed."
        ),
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the Python file to run")
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="CPU-time limit in seconds (default 10)"
    )
    parser.add_argument("--wall-timeout", type=float, default=None, metavar="S",
                        help="wall-clock backstop (default: 4 x the CPU-time limit + 5 s)")  # fmt: skip
    parser.add_argument("--memory-mb", type=float, default=None, metavar="M",
                        help="address space the program may add (default: Limits().memory_mb)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.set_defaults(func=_run)


def _add_check(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check",
        help="run a benchmark's reference solutions (or model samples) through assembly and the sandbox",
        description=(
            "Assemble every reference solution of the benchmark, written as a model would answer in the "
            "given style, run it against the hidden tests and print passed/total and each failure. With "
            '--samples, check model answers from a JSONL file instead (one {"task_id": ..., '
            '"completion": ...} object per line, each completion in either style). Each problem\'s '
            "CPU-time limit is derived from its reference's measured CPU time (measured once per "
            "machine and cached), unless --time-limit fixes one. Exit status 0 when everything passed."
        ),
    )
    from neatpipe.vocab import BENCHMARKS

    parser.add_argument("--benchmark", choices=BENCHMARKS, required=True,
                        help="humaneval+ and mbpp+ report base and plus pass counts side by side")  # fmt: skip
    parser.add_argument("--style", choices=("completion", "chat"), default=None,
                        help="answer style of the references (default: both, one after the other); "
                        "with --samples it fixes the style instead of detecting it per answer")  # fmt: skip
    parser.add_argument("--samples", type=Path, default=None, metavar="FILE.jsonl",
                        help="model answers to check instead of the references")  # fmt: skip
    parser.add_argument("--mbpp", type=Path, default=None, metavar="PATH",
                        help="sanitized-mbpp.json (default: $NEATPIPE_DATA_DIR or the user cache)")  # fmt: skip
    parser.add_argument("--data", type=Path, default=None, metavar="PATH",
                        help="humaneval+ / mbpp+: the EvalPlus release file, e.g. MbppPlus-v0.2.0.jsonl.gz "
                        "(default: $NEATPIPE_DATA_DIR or the user cache)")  # fmt: skip
    parser.add_argument("--time-limit", type=float, default=None, metavar="S",
                        help="one CPU-time limit for every problem instead of the derived ones")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_check)


# name -> function adding that subcommand's parser
_SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {"run": _add_run, "check": _add_check}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``neatpipe sandbox`` and its subcommands to the top-level parser."""
    parser = subparsers.add_parser("sandbox", help="run programs in the isolated sandbox")
    sub = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", required=True)
    for add in _SUBCOMMANDS.values():
        add(sub)


def _run(args: argparse.Namespace) -> int:
    from neatpipe.cli import CLIError, positive_number
    from neatpipe.io import read_text
    from neatpipe.sandbox import Limits, Program, run_program

    timeout = positive_number("--timeout", args.timeout)
    memory_mb = None if args.memory_mb is None else positive_number("--memory-mb", args.memory_mb)
    code = read_text(args.file)
    try:
        limits = Limits() if memory_mb is None else Limits(memory_mb=memory_mb)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    wall = None if args.wall_timeout is None else positive_number("--wall-timeout", args.wall_timeout)
    program = Program(code=code, timeout_s=timeout, wall_timeout_s=wall, label=str(args.file))
    result = run_program(program, limits=limits)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result.to_dict()))
    return 0 if result.passed else 1


def _check(args: argparse.Namespace) -> int:
    from neatpipe.bench import BenchmarkDataError, load_benchmark
    from neatpipe.bench.check import check_references, check_samples
    from neatpipe.bench.limits import with_time_limits
    from neatpipe.bench.problem import ProblemSet
    from neatpipe.cli import CLIError
    from neatpipe.sandbox import Sandbox

    if args.mbpp is not None and args.benchmark != "mbpp":
        raise CLIError("--mbpp is only used with --benchmark mbpp")
    if args.data is not None and not args.benchmark.endswith("+"):
        raise CLIError("--data is only used with --benchmark humaneval+ or mbpp+")
    if args.time_limit is not None and not args.time_limit > 0:
        raise CLIError(f"--time-limit must be positive, got {args.time_limit}")
    try:
        path = {"mbpp": args.mbpp, "humaneval": None}.get(args.benchmark, args.data)
        problems = load_benchmark(args.benchmark, path)
    except (BenchmarkDataError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    reports = []
    with Sandbox() as sandbox:
        if args.time_limit is None:
            problems = with_time_limits(problems, sandbox)
        else:
            problems = ProblemSet(
                problems.benchmark,
                tuple(dataclasses.replace(p, time_limit_s=args.time_limit) for p in problems),
                {**problems.options, "time_limits": f"{args.time_limit:g} s for every problem"},
            )
        if args.samples is not None:
            reports.append(check_samples(problems, args.samples, sandbox, style=args.style or "auto"))
        else:
            for style in (args.style,) if args.style else ("completion", "chat"):
                reports.append(check_references(problems, style, sandbox))
    if args.json:
        data = [r.to_dict() for r in reports]
        print(json.dumps(data[0] if len(data) == 1 else {"reports": data}, indent=2))
    else:
        for report in reports:
            print(format_report(report.to_dict()))
    return 0 if all(r.all_passed for r in reports) else 1


def format_report(report: dict[str, Any]) -> str:
    """passed/total of a check (base and plus side by side for HumanEval+ / MBPP+) and one line per
    failure (the ``CheckReport.to_dict()`` form)."""
    n = report["total"]
    if "plus_passed" in report:
        counts = f"base {report['passed']}/{n} passed, plus {report['plus_passed']}/{n} passed"
    else:
        counts = f"{report['passed']}/{n} passed"
    lines = [f"{report['benchmark']}, {report['checked']}: {counts}"]
    failed = [("FAIL", f, "") for f in report["failures"]]
    failed += [("FAIL plus", f, "plus_") for f in report.get("plus_failures", ())]
    for tag, f, key in failed:
        what = f[f"{key}status"] + (f" ({f['error_type']})" if not key and f.get("error_type") else "")
        message = f.get(f"{key}message")
        lines.append(f"  {tag} {f['task_id']}: {what}" + (f": {message}" if message else ""))
        if f.get(f"{key}failing_test"):
            lines.append(f"       failing test: {f[f'{key}failing_test']}")
    return "\n".join(lines)


def format_result(result: dict[str, Any]) -> str:
    """A short human-readable account of a result (the ``ExecResult.to_dict()`` form)."""
    lines = [f"status: {result['status']}"]
    if result.get("error_type"):
        where = f" during {result['phase']}" if result.get("phase") else ""
        lines[0] += f" ({result['error_type']}{where})"
    lines[0] += f" in {result['duration_s']:.3f} s"
    if result.get("message"):
        lines.append(f"message: {result['message']}")
    if result.get("failing_test"):
        lines.append(f"failing test: {result['failing_test']}")
    if result.get("traceback"):
        lines.append(result["traceback"].rstrip())
    for stream in ("stdout", "stderr"):
        if result.get(stream):
            lines.append(f"--- {stream} ---\n{result[stream].rstrip()}")
    return "\n".join(lines)
