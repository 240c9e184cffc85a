"""Benchmarks: problems, their visible and hidden tests, code extraction and program assembly.

>>> from neatpipe.bench import load_benchmark, assemble
>>> problems = load_benchmark("humaneval")
>>> program = assemble(problems.problems[0], model_answer)        # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from neatpipe.bench.assemble import assemble, candidate_code, detect_style, harness_for, reference_answer
from neatpipe.bench.extract import extract_code, strip_reasoning, trim_completion
from neatpipe.bench.humaneval import BenchmarkDataError, load_humaneval
from neatpipe.bench.mbpp import SPLITS as MBPP_SPLITS
from neatpipe.bench.mbpp import load_mbpp, resolve_mbpp_path
from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.bench.subsets import SubsetSchedule, subset
from neatpipe.vocab import BENCHMARKS


def load_benchmark(name: str, path: str | Path | None = None, **options) -> ProblemSet:
    """``humaneval`` or ``mbpp`` (options: ``split``, ``visible``, ``download``)."""
    if name == "humaneval":
        if options:
            raise ValueError(f"humaneval takes no options, got {', '.join(options)}")
        return load_humaneval(path)
    if name == "mbpp":
        return load_mbpp(path, **options)
    raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")


__all__ = [
    "BENCHMARKS",
    "MBPP_SPLITS",
    "BenchmarkDataError",
    "Problem",
    "ProblemSet",
    "SubsetSchedule",
    "assemble",
    "candidate_code",
    "detect_style",
    "extract_code",
    "harness_for",
    "load_benchmark",
    "load_humaneval",
    "load_mbpp",
    "reference_answer",
    "resolve_mbpp_path",
    "strip_reasoning",
    "subset",
    "trim_completion",
]
