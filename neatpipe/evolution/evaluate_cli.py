"""``neatpipe evaluate``: run pipeline genomes on a benchmark with repeats, print pass@1 with its spread,
the cost, and the refinement tables; write trajectories and the evaluation to a directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from neatpipe.vocab import BENCHMARKS


def _run_options(p: argparse.ArgumentParser) -> None:
    """The options ``evaluate`` and ``harvest`` share: the model pool, the cache, feedback and the seed."""
    p.add_argument("--feedback", choices=("visible", "hidden", "genome"), default="visible",
                   help="which tests executors report: visible (default), hidden (oracle), or each genome's own")  # fmt: skip
    p.add_argument(
        "--models", type=Path, metavar="POOL.yaml", help="model names -> backend specs (YAML mapping)"
    )
    p.add_argument("--model", action="append", default=[], metavar="NAME=SPEC", help="one more pool entry")
    p.add_argument(
        "--cache",
        default="off",
        metavar="PATH|default|off",
        help="completion cache: a file, default, or off/none (default off)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mbpp", type=Path, metavar="PATH", help="sanitized-mbpp.json (default: data dir or cache)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score pipeline genomes on a benchmark (pass@1 with spread, tables, cost)",
        description=(
            "Run each GENOME on the benchmark's problems REPEATS times (different sampling seeds), score the "
            "final candidates on the hidden tests, and print pass@1 (mean ± SD over repeats, bootstrap CI), "
            "the cost, and the early-stopping, error-fix and transition tables. Models: the genome's model "
            "names map to backend specs through --models FILE.yaml and/or --model NAME=SPEC."
        ),
    )
    p.add_argument(
        "genomes", nargs="+", type=Path, metavar="GENOME", help="genome files (YAML, JSON, GraphML)"
    )
    p.add_argument("--benchmark", choices=BENCHMARKS, default="humaneval")
    p.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="humaneval+ / mbpp+: the EvalPlus release file (default: data dir or cache)",
    )
    p.add_argument(
        "--split", default="test", help="MBPP split: test (default), validation, train, prompt, all"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--limit", type=int, metavar="N", help="N problems drawn by --seed (default: all)")
    which.add_argument("--subset", type=Path, metavar="FILE", help="task ids, one per line or a JSON list")
    p.add_argument("--repeats", type=int, default=1, metavar="K", help="evaluations with different seeds")
    p.add_argument("--temperature", type=float, metavar="T",
                   help="sample every model node at T (0: greedy) instead of each genome's own temperatures")  # fmt: skip
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="write trajectories.jsonl and evaluation.json here"
    )
    _run_options(p)
    p.set_defaults(func=_evaluate)

    h = sub.add_parser(
        "harvest",
        help="sample pipeline genomes on training problems and keep the trajectories (for neatpipe dataset)",
        description=(
            "Run each GENOME over a training split SAMPLES times with different seeds, every model node "
            "sampling at TEMPERATURE (rejection sampling: the sandbox keeps what passed and what failed), and "
            "write the trajectories with every request and answer to --out for `neatpipe dataset`. The "
            "default split, MBPP's train and prompt splits (task ids 601-974 and 1-10), is one no evaluation "
            "uses; HumanEval and MBPP's test split are refused."
        ),
    )
    h.add_argument(
        "genomes", nargs="+", type=Path, metavar="GENOME", help="genome files (YAML, JSON, GraphML)"
    )
    h.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the trajectories go")
    h.add_argument("--samples", type=int, default=4, metavar="N", help="samples per problem (default 4)")
    h.add_argument("--temperature", type=float, default=0.8, metavar="T",
                   help="sampling temperature of every model node, above 0 (default 0.8)")  # fmt: skip
    h.add_argument(
        "--split", default="train,prompt", help="MBPP splits, comma-separated (default train,prompt)"
    )
    h.add_argument("--limit", type=int, metavar="N", help="N problems drawn by --seed (default: all)")
    _run_options(h)
    h.set_defaults(func=_harvest, benchmark="mbpp", subset=None, data=None)


def read_model_pool(path: Path | None, pairs: list[str]) -> dict[str, Any]:
    """Model names -> spec strings or mappings, from a YAML file and NAME=SPEC pairs (pairs win)."""
    from neatpipe.cli import CLIError
    from neatpipe.io import load_yaml, read_text

    pool: dict[str, Any] = {}
    if path is not None:
        text = read_text(path)
        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            raise CLIError(f"{path}: not valid YAML: {exc}") from None
        if isinstance(data, dict) and "models" in data and isinstance(data["models"], dict):
            data = data["models"]  # an experiment file's models section works too
        if not isinstance(data, dict):
            raise CLIError(f"{path}: expected a mapping of model names to specs")
        pool.update({str(k): v for k, v in data.items()})
    for pair in pairs:
        name, sep, spec = pair.partition("=")
        if not sep or not name or not spec:
            raise CLIError(f"--model {pair!r}: expected NAME=SPEC, e.g. coder=synthetic:coder-1.5b")
        pool[name] = spec
    return pool


#: The MBPP splits a harvest may sample: those no evaluation scores on.
HARVEST_SPLITS = ("train", "prompt", "validation")


def _mbpp_splits(mbpp: Path | None, splits: str) -> Any:
    """Sanitized MBPP problems of one split or several (``train,prompt``), in task-id order."""
    from neatpipe.bench import ProblemSet, load_mbpp
    from neatpipe.bench.mbpp import SPLITS

    names = [s.strip() for s in splits.split(",") if s.strip()]
    if len(names) == 1:
        return load_mbpp(mbpp, split=names[0])
    unknown = [n for n in names if n not in SPLITS]
    if unknown:
        raise ValueError(f"unknown MBPP split {unknown[0]!r}; choose among {', '.join(SPLITS)}")
    every = load_mbpp(mbpp, split="all")
    chosen = tuple(p for p in every if p.meta["split"] in names)
    return ProblemSet("mbpp", chosen, {**every.options, "split": ",".join(names)})


def _problems(args: argparse.Namespace) -> Any:
    from neatpipe.bench import BenchmarkDataError, SubsetSchedule, load_benchmark, load_humaneval
    from neatpipe.cli import CLIError

    try:
        if args.benchmark in ("humaneval+", "mbpp+"):
            problems = load_benchmark(args.benchmark, getattr(args, "data", None))
        else:
            problems = (
                load_humaneval() if args.benchmark == "humaneval" else _mbpp_splits(args.mbpp, args.split)
            )
    except (BenchmarkDataError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if args.limit is not None:
        if not 0 < args.limit <= len(problems):
            raise CLIError(f"--limit must be between 1 and {len(problems)}, got {args.limit}")
        return SubsetSchedule(problems, args.limit, seed=args.seed).for_generation(0)  # as experiments draw
    if args.subset is not None:
        from neatpipe.bench.subsets import read_task_ids, select_tasks

        return select_tasks(problems, read_task_ids(args.subset), args.subset)
    return problems


def _harvest(args: argparse.Namespace) -> int:
    import math

    from neatpipe.cli import CLIError

    if not math.isfinite(args.temperature) or not 0 < args.temperature <= 2:
        raise CLIError(
            f"--temperature must be above 0 and at most 2 (samples must differ), got {args.temperature}"
        )
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    leaking = [s for s in splits if s not in HARVEST_SPLITS]
    if not splits or leaking:
        raise CLIError(
            f"--split {args.split!r}: harvest samples {', '.join(HARVEST_SPLITS)} only; "
            f"{', '.join(leaking) or 'nothing'} would put evaluation problems into training data"
        )
    if args.samples < 1:
        raise CLIError(f"--samples must be at least 1, got {args.samples}")
    args.repeats = args.samples
    return _evaluate(args, temperature=args.temperature)


def _evaluate(args: argparse.Namespace, temperature: float | None = None) -> int:
    import math

    from neatpipe.bench.limits import with_time_limits
    from neatpipe.cli import CLIError
    from neatpipe.evolution.build import close_all
    from neatpipe.evolution.designs import (
        Design,
        designs_report,
        evaluate_designs,
        render_designs,
        with_temperature,
        write_design_files,
    )
    from neatpipe.evolution.evaluator import Evaluator
    from neatpipe.genome import load_genome
    from neatpipe.io import check_output_dir
    from neatpipe.models import CompletionCache, load_backend
    from neatpipe.models.cache import cache_choice
    from neatpipe.sandbox import Sandbox

    if args.repeats < 1:
        raise CLIError(f"--repeats must be at least 1, got {args.repeats}")
    if temperature is None and args.temperature is not None:
        if not math.isfinite(args.temperature) or not 0 <= args.temperature <= 2:
            raise CLIError(f"--temperature must lie between 0 and 2, got {args.temperature}")
        temperature = args.temperature
    designs = []
    if args.out is not None:
        check_output_dir(args.out)  # before the work, not after it
    for path in args.genomes:
        genome = load_genome(path)
        if temperature is not None:
            genome = with_temperature(genome, temperature)
        designs.append(Design(path.stem, genome, str(path)))
    if len({d.label for d in designs}) != len(designs):
        raise CLIError("give each genome file once (results are labelled by file name)")
    needed = sorted({g.model for d in designs for g in d.genome.nodes.values() if g.model})
    pool = read_model_pool(args.models, args.model)
    missing = [m for m in needed if m not in pool]
    if missing:
        raise CLIError(
            f"the genomes use model(s) {', '.join(missing)} that the pool does not map; give them with "
            f"--model NAME=SPEC or --models POOL.yaml (e.g. --model {missing[0]}=synthetic:coder-1.5b)"
        )
    problems = _problems(args)
    choice = cache_choice(args.cache)
    cache = CompletionCache(None if choice == "default" else choice) if choice else None
    models: dict[str, Any] = {}
    with Sandbox() as sandbox:  # one sandbox: the evaluation's programs and the synthetic coder's checks
        problems = with_time_limits(problems, sandbox)  # CPU-time limits from the references' cost
        try:
            for name in needed:
                models[name] = load_backend(pool[name], cache, runner=sandbox.run_many)
            evaluator = Evaluator(
                models,
                sandbox,
                feedback=None if args.feedback == "genome" else args.feedback,
                repeats=args.repeats,
                seed=args.seed,
                result_cache=False,
            )
            results = evaluate_designs(evaluator, designs, list(problems), seed=args.seed)
        finally:
            close_all(models)
    report = designs_report(results, args.benchmark, len(problems), temperature=temperature)
    if args.out is not None:
        write_design_files(args.out, results, report)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_designs(results, args.benchmark, len(problems), temperature=temperature))
        if args.out is not None:
            print(
                f"\nwrote {args.out / 'trajectories.jsonl'} and {args.out / 'evaluation.json'}",
                file=sys.stderr,
            )
    return 0
