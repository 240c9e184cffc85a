"""``neatpipe validate | show | export | import-paper``: work with genome graph files."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a genome file (YAML, JSON or GraphML)",
        description="Check a genome file; the error names the node, edge or field that is wrong.",
    )
    p.add_argument("file", help="genome file (.yaml, .yml, .json, .graphml)")
    p.add_argument("--models", help="comma-separated model pool: any other model name is an error")
    p.set_defaults(func=_validate)

    p = sub.add_parser(
        "show",
        help="print a readable summary of a genome file",
        description="Print roles, models, wiring, iterations and complexity of a genome.",
    )
    p.add_argument("file")
    p.add_argument("--models", help="comma-separated model pool to check against")
    p.set_defaults(func=_show)

    p = sub.add_parser(
        "export",
        help="convert a genome file to another format or draw it",
        description="Write a genome as yaml, json, graphml, dot, svg or png "
        "(pictures are drawn with matplotlib; Graphviz is not needed).",
    )
    p.add_argument("file")
    p.add_argument(
        "--format",
        "-f",
        choices=("yaml", "json", "graphml", "dot", "svg", "png"),
        help="output format (default: from the extension of OUT)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "import-paper",
        help="convert a reference-study champion JSON to a genome file",
        description="Convert a champion written by the 'Feedback Over Form' tool: prompts map "
        "to the closest prompt variant, Ollama tags to pool names.",
    )
    p.add_argument("file", help="the champion JSON (e.g. v2_champion.json)")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="genome file to write (.yaml, .json, ...)"
    )
    p.add_argument("--models", help="comma-separated model pool the mapped names must belong to")
    p.add_argument(
        "--feedback",
        choices=("hidden", "visible"),
        default="hidden",
        help="tests the imported executors feed back (default: hidden, as the study's tool did)",
    )
    p.set_defaults(func=_import_paper)


def _pool(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        from neatpipe.cli import CLIError

        raise CLIError("--models needs at least one model name")
    return names


def _read(path: str, models: list[str] | None):
    from neatpipe.genome.fileio import read_genome

    return read_genome(path, models)


def _validate(args: argparse.Namespace) -> int:
    loaded = _read(args.file, _pool(args.models))
    n, e = loaded.genome.size()
    print(f"{args.file}: valid pipeline ({n} node{'s' if n != 1 else ''}, {e} edges)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from neatpipe.genome.summary import summary

    loaded = _read(args.file, _pool(args.models))
    print(summary(loaded.genome, loaded.names))
    return 0


def _export(args: argparse.Namespace) -> int:
    from neatpipe.cli import CLIError
    from neatpipe.genome.fileio import format_for, save_genome

    try:
        fmt = args.format or format_for(args.output)
    except ValueError as exc:
        raise CLIError(f"{args.output}: {exc}") from None
    loaded = _read(args.file, None)
    path = save_genome(loaded.genome, args.output, fmt, loaded.names)
    print(f"wrote {path} ({fmt})")
    return 0


def _import_paper(args: argparse.Namespace) -> int:
    from neatpipe.cli import CLIError
    from neatpipe.genome.errors import GenomeError
    from neatpipe.genome.fileio import format_for, save_genome
    from neatpipe.genome.paper import import_paper

    try:
        fmt = format_for(args.output)  # a wrong extension fails before the import
        result = import_paper(args.file, _pool(args.models), feedback=args.feedback)
    except GenomeError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"{args.output}: {exc}") from None
    path = save_genome(result.loaded.genome, args.output, fmt, result.loaded.names)
    for tag, name in result.models.items():
        print(f"model {tag} -> {name}", file=sys.stderr)
    for m in result.prompts:
        print(f"{m.role} prompt -> {m.variant} (similarity {m.similarity:.2f})", file=sys.stderr)
    print(f"wrote {path}")
    return 0
