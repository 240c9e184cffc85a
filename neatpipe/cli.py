"""The ``neatpipe`` command: one entry point, one subcommand module per area.

Each area module exposes ``register(subparsers)``, which adds its subcommands and sets
``func`` on each parser. Heavy imports (torch, transformers) happen inside the handlers, so
``neatpipe --help`` stays fast.

:func:`main` turns what a user can fix into one line on stderr and exit status 2: any
:class:`~neatpipe.errors.NeatpipeError`, and an ``OSError`` that names a file (a folder where a file
should be, no permission, a full disk). ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys

from neatpipe.errors import NeatpipeError, bounded

# Modules that contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES = (
    "neatpipe.evolution.cli",
    "neatpipe.evolution.evaluate_cli",
    "neatpipe.analysis.cli",
    "neatpipe.sandbox.cli",
    "neatpipe.perf.cli",
    "neatpipe.genome.cli",
    "neatpipe.models.cli",
    "neatpipe.training.dataset_cli",
    "neatpipe.training.finetune_cli",
    "neatpipe.training.loop_cli",
)


class CLIError(NeatpipeError):
    """A user-facing error of the command line itself (a bad option or combination of options)."""


def positive_number(option: str, value: float) -> float:
    """``value`` of ``option`` if it is a finite number above zero (argparse's ``float`` takes ``nan``
    and ``inf``, which no limit or timeout means)."""
    if not math.isfinite(value) or value <= 0:
        raise CLIError(f"{option} must be a finite number above 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neatpipe",
        description="Evolve code-generation pipelines of small language models with NEAT.",
    )
    from neatpipe import __version__

    parser.add_argument("--version", action="version", version=f"neatpipe {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error instead of its one-line message"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # an area left out of this installation
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NeatpipeError as exc:
        if args.debug:
            raise
        print(f"neatpipe: error: {bounded(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 1
    except OSError as exc:
        # A file the system refused (a folder where a file should be, no permission, a full disk):
        # the user's to fix, and the file name says where.
        if args.debug or exc.filename is None:
            raise
        from neatpipe.io import os_reason

        print(f"neatpipe: error: {bounded(str(exc.filename))}: {os_reason(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neatpipe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
