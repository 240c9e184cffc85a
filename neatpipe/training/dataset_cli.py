"""``neatpipe dataset``: training sets (SFT, repair, preference) from run directories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from neatpipe.training.dataset import BENCHMARKS, DEFAULT_EXCLUDE, DEFAULT_PER_PROBLEM, KINDS

    p = sub.add_parser(
        "dataset",
        help="training sets (sft, repair, preference) from the verified trajectories of runs",
        description=(
            "Write OUT/<kind>.jsonl (chat messages that datasets and TRL read as they are) and a dataset card "
            "OUT/README.md from the trajectories of RUN_DIRs (evolution runs or `neatpipe evaluate --out` "
            "directories). Only answers the hidden tests passed are used; the runs' held-out validation "
            "problems and the --exclude benchmarks are never exported. See docs/training.md."
        ),
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--kind", action="append", choices=KINDS, metavar="KIND",
                   help=f"{', '.join(KINDS)}; repeat for several (default: all)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--per-problem", type=int, default=DEFAULT_PER_PROBLEM, metavar="N",
                   help=f"at most N examples per problem and kind (default {DEFAULT_PER_PROBLEM})")  # fmt: skip
    p.add_argument("--exclude", action="append", metavar="BENCHMARK",
                   help=f"a benchmark never to export ({', '.join(BENCHMARKS)}, or none); repeat for several "
                        f"(default: {', '.join(DEFAULT_EXCLUDE)})")  # fmt: skip
    p.add_argument("--mbpp", type=Path, metavar="PATH", help="sanitized-mbpp.json, for --exclude mbpp")
    p.set_defaults(func=_dataset)


def _dataset(args: argparse.Namespace) -> int:
    from neatpipe.training.dataset import DEFAULT_EXCLUDE, KINDS, export_dataset

    exclude = args.exclude if args.exclude is not None else list(DEFAULT_EXCLUDE)
    exclude = [] if exclude == ["none"] else exclude
    report = export_dataset(
        args.runs,
        args.out,
        kinds=tuple(dict.fromkeys(args.kind)) if args.kind else KINDS,
        per_problem=args.per_problem,
        exclude=exclude,
        mbpp=args.mbpp,
    )
    counts = ", ".join(f"{n} {kind}" for kind, n in report.counts.items())
    near = f"; {len(report.duplicates)} near-duplicate problem(s) left out" if report.duplicates else ""
    print(f"wrote {counts} example(s) and README.md to {args.out}{near}", file=sys.stderr)
    return 0
