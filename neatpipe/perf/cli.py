"""``neatpipe bench sandbox|generation|pipeline``: speed benchmarks that print tables."""

from __future__ import annotations

import argparse
import importlib

# subcommand -> module exposing add_arguments(parser) and main(args) -> int
_BENCHMARKS = {
    "sandbox": ("neatpipe.perf.sandbox", "programs per second: neatpipe's sandbox against the alternatives"),
    "generation": ("neatpipe.perf.generation", "tokens per second of batched generation (GPU)"),
    "pipeline": (
        "neatpipe.perf.pipeline",
        "a pipeline batched across problems against one problem at a time",
    ),
    "evaluation": (
        "neatpipe.perf.evaluation",
        "a generation scored as one stream of batches against genome by genome",
    ),
}


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="speed benchmarks (print a table)")
    bench_sub = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (module_name, help_text) in _BENCHMARKS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        parser = bench_sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(parser)
        parser.set_defaults(func=module.main)
