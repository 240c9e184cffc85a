"""``neatpipe sandbox ...``: run code in the sandbox from the command line.

:func:`register` creates the ``sandbox`` command and one sub-parser per subcommand, each added by a
small ``_add_<name>`` function, so that another subcommand (``sandbox check``, say) is one more
function and one more line in :data:`_SUBCOMMANDS`. Handlers import the sandbox lazily, keeping
``neatpipe --help`` fast.
"""

from __future__ import annotations

import argparse
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
        "--timeout", type=float, default=10.0, metavar="S", help="wall-clock limit (default 10)"
    )
    parser.add_argument("--memory-mb", type=float, default=None, metavar="M",
                        help="address space the program may add (default: Limits().memory_mb)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.set_defaults(func=_run)


# name -> function adding that subcommand's parser
_SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {"run": _add_run}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``neatpipe sandbox`` and its subcommands to the top-level parser."""
    parser = subparsers.add_parser("sandbox", help="run programs in the isolated sandbox")
    sub = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", required=True)
    for add in _SUBCOMMANDS.values():
        add(sub)


def _run(args: argparse.Namespace) -> int:
    from neatpipe.cli import CLIError
    from neatpipe.sandbox import Limits, Program, run_program

    try:
        code = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {args.file}: {exc}") from None
    if args.timeout <= 0:
        raise CLIError(f"--timeout must be positive, got {args.timeout}")
    try:
        limits = Limits() if args.memory_mb is None else Limits(memory_mb=args.memory_mb)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    result = run_program(Program(code=code, timeout_s=args.timeout, label=str(args.file)), limits=limits)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result.to_dict()))
    return 0 if result.passed else 1


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
