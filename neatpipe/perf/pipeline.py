"""``neatpipe bench pipeline``: a whole pipeline run batched across problems against the same pipeline
run one problem at a time (what a tool that loops over problems does), in one process, same model.

The model is a tiny random-weight transformers model built on the spot (real architecture, real
decoding path, CPU or GPU) or any ``hf:`` model. Both runs use the same seeds and the same fixed token
budget, so they do the same work; only the batching differs. (The synthetic coder is left out: it
memoises its own sandbox checks, so whichever run came second would be cheaper for that reason alone.) The table gives problems per second, backend calls and sandbox batches, and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

GENOME = """\
format: neatpipe-genome/1
description: "Self-refine x{iterations} with early stopping (benchmark)"
nodes:
  gen: {{role: generator, model: m, prompt: plain-expert, temperature: 0.7, max_tokens: {tokens}}}
  exec: {{role: executor, feedback: visible, time_limit: 5.0}}
  refine: {{role: refiner, model: m, prompt: keep-signature, temperature: 0.7, max_tokens: {tokens},
           iterations: {iterations}, early_stop: true}}
edges: [[problem, gen], [gen, exec], [exec, refine], [refine, output]]
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--problems", type=int, default=32, metavar="N", help="HumanEval problems (default 32)"
    )
    parser.add_argument("--tokens", type=int, default=32, metavar="T", help="token budget per model call")
    parser.add_argument(
        "--iterations", type=int, default=2, metavar="K", help="refine iterations (default 2)"
    )
    parser.add_argument("--model", default="tiny", metavar="SPEC",
                        help="tiny (a random-weight model built here; default) or hf:<hub id or folder>")  # fmt: skip
    parser.add_argument("--device", default="auto", help="for tiny/hf models: auto, cpu, cuda, mps")


def _backend(args: argparse.Namespace, workdir: Path) -> Any:
    from neatpipe.models import load_backend

    if args.model == "tiny":
        from neatpipe.models.tiny import make_tiny_model

        path = make_tiny_model(workdir / "tiny", arch="qwen2", seed=0).path
        return load_backend({"spec": f"hf:{path}", "device": args.device, "dtype": "float32"})
    if args.model.startswith("hf:"):
        return load_backend({"spec": args.model, "device": args.device})
    from neatpipe.cli import CLIError

    raise CLIError(f"--model must be tiny or an hf: spec, got {args.model!r}")


def _timed(function: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = function()
    return out, time.perf_counter() - start


def main(args: argparse.Namespace) -> int:
    from neatpipe.bench import load_humaneval
    from neatpipe.genome.fileio import genome_from_yaml
    from neatpipe.runtime import run_pipeline
    from neatpipe.sandbox import Sandbox

    problems = list(load_humaneval())[: args.problems]
    genome = genome_from_yaml(GENOME.format(tokens=args.tokens, iterations=args.iterations))
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox:
        backend = _backend(args, Path(tmp))
        models = {"m": backend}
        print(f"neatpipe bench pipeline: {len(problems)} HumanEval problems, self-refine x{args.iterations}, "
              f"{args.tokens} tokens per call, model {backend.identity()}")  # fmt: skip
        run_pipeline(genome, problems[:2], models, sandbox, seed=99)  # warm-up: load the model, start workers
        calls_before = len(backend.calls)
        batched, t_batched = _timed(lambda: run_pipeline(genome, problems, models, sandbox, seed=0))
        calls_batched = len(backend.calls) - calls_before
        calls_before = len(backend.calls)
        singles, t_single = _timed(
            lambda: [run_pipeline(genome, [p], models, sandbox, seed=0) for p in problems]
        )
        calls_single = len(backend.calls) - calls_before
        backend.close()
    rows = [
        ("batched across problems", t_batched, calls_batched, batched.sandbox_batches, batched.passed),
        (
            "one problem at a time",
            t_single,
            calls_single,
            sum(r.sandbox_batches for r in singles),
            sum(r.passed for r in singles),
        ),  # fmt: skip
    ]
    print("| run | seconds | problems/s | backend calls | sandbox batches | passed | batched is |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, seconds, calls, batches, passed in rows:
        ratio = "-" if name.startswith("batched") else f"{seconds / t_batched:.1f}x"
        print(
            f"| {name} | {seconds:.2f} | {len(problems) / seconds:.1f} | {calls} | {batches} | {passed} | {ratio} |"
        )
    return 0
