"""``neatpipe bench evaluation``: one generation scored genome by genome against the same generation scored
as one stream of batches (:func:`neatpipe.runtime.run_pipelines`), in one process, same models.

The population is what a generation looks like: a few parents of mixed shapes (one generator; best-of-n with
a selector; refine stages with and without analyzers) and their mutants, which share the genes they did not
mutate with their parent. Each way gets fresh backends and a fresh evaluator without a result store, so both
do the same work; only the grouping differs. Two models are measured:

* ``tiny``: a random-weight transformers model built on the spot (real architecture and decoding path) with a
  fixed token budget per call: the model side, where batching pays on a GPU and already on a CPU;
* ``synthetic``: the calibrated synthetic coder, whose answers cost nothing to make: the program side
  (sandbox batches).

The table gives backend calls, the mean and largest batch sent, tokens per second, sandbox batches, wall
time and the ratio. With ``--ray`` the generation is also scored as one stream on a local Ray instance
(model and sandbox as actors). A genome's fitness must be the same every way; the benchmark checks it and
says so (exit status 1 when it is not).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--genomes", type=int, default=16, metavar="N", help="population size (default 16)")
    parser.add_argument(
        "--problems", type=int, default=16, metavar="N", help="HumanEval problems (default 16)"
    )
    parser.add_argument("--tokens", type=int, default=32, metavar="T", help="token budget per model call")
    parser.add_argument("--repeats", type=int, default=1, metavar="R", help="repeats per genome (default 1)")
    parser.add_argument(
        "--models", default="tiny,synthetic", metavar="LIST", help="tiny and/or synthetic (default both)"
    )
    parser.add_argument("--device", default="cpu", help="for the tiny model: cpu, cuda, mps or auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the population and the runs")
    parser.add_argument(
        "--ray",
        action="store_true",
        help="also score the generation as one stream on a local Ray instance (pip install 'neatpipe[ray]')",
    )


def mixed_population(
    size: int, *, seed: int = 0, models: Sequence[str] = ("m",), tokens: int = 32, parents: int = 4
) -> list[tuple[int, Any]]:
    """``size`` ``(key, genome)`` pairs: ``parents`` new genomes mutated into mixed shapes, then mutants of
    them in turn (copies mutated once or twice). Drawn from a private random stream seeded by ``seed``."""
    from neatpipe.genome.genome import PipelineGenome, make_neat_config
    from neatpipe.genome.settings import GenomeSettings

    settings = GenomeSettings(
        models=tuple(models),
        generator_max_tokens=tokens,
        analyzer_max_tokens=tokens,
        refiner_max_tokens=tokens,
        add_stage_rate=0.5,
        add_analyzer_rate=0.3,
        add_generator_rate=0.3,
        remove_rate=0.05,
        iterations_max=2,
    )
    config = make_neat_config(settings).genome_config
    state = random.getstate()  # neat-python draws from the global stream
    random.seed(seed)
    try:
        out: list[tuple[int, Any]] = []
        for key in range(1, min(parents, size) + 1):
            genome = PipelineGenome(key)
            genome.configure_new(config)
            for _ in range(key - 1):
                genome.mutate(config)
            out.append((key, genome))
        for key in range(len(out) + 1, size + 1):
            child = out[(key - 1) % parents][1].copy(key)
            for _ in range(1 + key % 2):
                child.mutate(config)
            out.append((key, child))
        return out
    finally:
        random.setstate(state)


@dataclass
class Way:
    """One way of scoring the generation, as measured."""

    name: str
    wall_s: float
    backend_calls: int
    requests: int
    requests_sent: int
    largest_batch: int
    completion_tokens: int
    sandbox_batches: int
    programs_sent: int
    fitness: dict[Any, float]
    longest_pipeline: int  # model steps of the longest single pipeline run

    @property
    def mean_batch(self) -> float:
        return self.requests_sent / self.backend_calls if self.backend_calls else 0.0


def score_generation(
    population: Sequence[tuple[int, Any]],
    problems: Sequence[Any],
    make_models: Callable[[], dict[str, Any]],
    sandbox: Any,
    batching: str,
    *,
    repeats: int = 1,
    seed: int = 0,
) -> Way:
    """Score ``population`` once with fresh backends from ``make_models`` and ``batching``."""
    from neatpipe.evolution.evaluator import Evaluator

    models = make_models()
    try:
        runs: list[Any] = []
        evaluator = Evaluator(
            models,
            sandbox,
            repeats=repeats,
            seed=seed,
            result_cache=False,
            batching=batching,
            on_run=runs.append,
        )
        before = {name: len(b.calls) for name, b in models.items()}  # a warmed backend has a call already
        started = time.perf_counter()
        evaluations = evaluator.evaluate_population(population, problems)
        wall = time.perf_counter() - started
        records = [c for name, b in models.items() for c in b.calls[before[name] :]]
        stream = evaluator.stream
        return Way(
            name=batching,
            wall_s=wall,
            backend_calls=len(records),
            requests=stream.requests,
            requests_sent=sum(c.requests for c in records),
            largest_batch=max((c.requests for c in records), default=0),
            completion_tokens=sum(c.completion_tokens for c in records),
            sandbox_batches=stream.sandbox_batches,
            programs_sent=stream.programs_sent,
            fitness={k: e.fitness for k, e in evaluations.items()},
            longest_pipeline=max((r.backend_calls for r in runs), default=0),
        )
    finally:
        for backend in models.values():
            backend.close()


def _model_spec(name: str, args: argparse.Namespace, workdir: Path) -> Any:
    if name == "tiny":
        from neatpipe.models.tiny import make_tiny_model

        path = make_tiny_model(workdir / "tiny", arch="qwen2", seed=0).path
        return {"spec": f"hf:{path}", "device": args.device, "dtype": "float32"}
    if name == "synthetic":
        return "synthetic:small-1.5b"
    from neatpipe.cli import CLIError

    raise CLIError(f"--models: expected tiny or synthetic, got {name!r}")


def table(model: str, ways: Sequence[Way]) -> list[str]:
    """The Markdown rows of one model's comparison (genome by genome first, its ratio 1.0x)."""
    base = ways[0].wall_s
    lines = [
        f"| {model} | {w.name} | {w.backend_calls} | {w.mean_batch:.1f} | {w.largest_batch} "
        f"| {w.requests}/{w.requests_sent} | {w.completion_tokens / w.wall_s:,.0f} | {w.sandbox_batches} "
        f"| {w.programs_sent} | {w.wall_s:.2f} | {base / w.wall_s:.2f}x |"
        for w in ways
    ]
    return lines


HEADER = (
    "| model | scored | backend calls | mean batch | largest batch | requests made/sent | tokens/s "
    "| sandbox batches | programs run | wall s | speed-up |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def main(args: argparse.Namespace) -> int:
    from neatpipe.bench import load_humaneval
    from neatpipe.models import ChatRequest, load_backend
    from neatpipe.sandbox import Sandbox

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    problems = list(load_humaneval())[: args.problems]
    population = mixed_population(args.genomes, seed=args.seed, tokens=args.tokens)
    shapes = sorted({len(g.nodes) for _, g in population})
    print(
        f"neatpipe bench evaluation: {len(population)} genomes ({shapes[0]}-{shapes[-1]} nodes), "
        f"{len(problems)} HumanEval problems, {args.repeats} repeat(s), {args.tokens} tokens per call"
    )
    rows: list[str] = []
    notes: list[str] = []
    ways: dict[str, list[Way]] = {}

    def measure(
        name: str,
        make: Callable[[], dict[str, Any]],
        sandbox: Any,
        batchings: Sequence[str],
        keep: bool = False,
    ) -> None:
        """Score the generation each way of ``batchings``, each with fresh backends from ``make`` (the
        synthetic coder remembers its own checks, so a reused one would favour the second way); with
        ``keep``, one way only, on the backends just warmed (model actors load their model on first use)."""
        warm = make()  # load the model outside the timings
        warm["m"].generate([ChatRequest.user("def add(a, b):", max_tokens=args.tokens)])
        if keep:
            make = lambda: warm  # noqa: E731
        else:
            for backend in warm.values():
                backend.close()
        for batching in batchings:
            way = score_generation(
                population, problems, make, sandbox, batching, repeats=args.repeats, seed=args.seed
            )
            ways.setdefault(name, []).append(way)

    with tempfile.TemporaryDirectory() as tmp:
        specs = {name: _model_spec(name, args, Path(tmp)) for name in names}
        with Sandbox() as sandbox:
            for name, spec in specs.items():
                measure(name, lambda spec=spec: {"m": load_backend(spec)}, sandbox, ("genome", "generation"))
        if args.ray:
            from neatpipe.distributed import RayEngine, RayOptions
            from neatpipe.models.spec import parse_spec

            with RayEngine(RayOptions()) as engine:
                for name, spec in specs.items():
                    measure(name, lambda spec=spec: {"m": engine.backend(parse_spec(spec))}, engine.sandbox,
                            ("generation",), keep=True)  # fmt: skip
                    ways[name][-1].name = "generation, Ray"
    for name, measured in ways.items():
        rows += table(name, measured)
        same = all(w.fitness == measured[0].fitness for w in measured)
        notes.append(
            f"{name}: fitness {'identical' if same else 'DIFFERENT'} in every way; the longest pipeline "
            f"has {measured[-1].longest_pipeline} model steps"
        )
    print(HEADER)
    print("\n".join(rows))
    print()
    print("\n".join(notes))
    return 0 if all("DIFFERENT" not in n for n in notes) else 1
