"""Benchmarks: problems, their visible and hidden tests, code extraction and program assembly.

>>> from neatpipe.bench import load_benchmark, assemble
>>> problems = load_benchmark("humaneval")
>>> program = assemble(problems.problems[0], model_answer)        # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports
from neatpipe.vocab import BENCHMARKS

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.bench.assemble import assemble, candidate_code, detect_style, harness_for, reference_answer
    from neatpipe.bench.extract import extract_code, strip_reasoning, trim_completion
    from neatpipe.bench.humaneval import BenchmarkDataError, load_humaneval
    from neatpipe.bench.mbpp import SPLITS as MBPP_SPLITS
    from neatpipe.bench.mbpp import load_mbpp, resolve_mbpp_path
    from neatpipe.bench.plus import load_plus
    from neatpipe.bench.problem import Problem, ProblemSet
    from neatpipe.bench.subsets import SubsetSchedule, subset

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "assemble": ("neatpipe.bench.assemble", "assemble"),
        "candidate_code": ("neatpipe.bench.assemble", "candidate_code"),
        "detect_style": ("neatpipe.bench.assemble", "detect_style"),
        "harness_for": ("neatpipe.bench.assemble", "harness_for"),
        "reference_answer": ("neatpipe.bench.assemble", "reference_answer"),
        "extract_code": ("neatpipe.bench.extract", "extract_code"),
        "strip_reasoning": ("neatpipe.bench.extract", "strip_reasoning"),
        "trim_completion": ("neatpipe.bench.extract", "trim_completion"),
        "BenchmarkDataError": ("neatpipe.bench.humaneval", "BenchmarkDataError"),
        "load_humaneval": ("neatpipe.bench.humaneval", "load_humaneval"),
        "MBPP_SPLITS": ("neatpipe.bench.mbpp", "SPLITS"),
        "load_mbpp": ("neatpipe.bench.mbpp", "load_mbpp"),
        "load_plus": ("neatpipe.bench.plus", "load_plus"),
        "resolve_mbpp_path": ("neatpipe.bench.mbpp", "resolve_mbpp_path"),
        "Problem": ("neatpipe.bench.problem", "Problem"),
        "ProblemSet": ("neatpipe.bench.problem", "ProblemSet"),
        "SubsetSchedule": ("neatpipe.bench.subsets", "SubsetSchedule"),
        "subset": ("neatpipe.bench.subsets", "subset"),
    },
    globals(),
)


def load_benchmark(name: str, path: str | Path | None = None, **options) -> ProblemSet:
    """``humaneval``, ``mbpp`` (options: ``split``, ``visible``, ``download``), ``humaneval+`` or
    ``mbpp+`` (options: ``download``; the EvalPlus release files)."""
    from neatpipe.bench.humaneval import load_humaneval
    from neatpipe.bench.mbpp import load_mbpp
    from neatpipe.bench.plus import RELEASES, load_plus

    if name == "humaneval":
        if options:
            raise ValueError(f"humaneval takes no options, got {', '.join(options)}")
        return load_humaneval(path)
    if name == "mbpp":
        return load_mbpp(path, **options)
    if name in RELEASES:
        split = options.pop("split", "all")
        if split != "all":
            raise ValueError(f"{name} has one split, all; got {split!r}")
        return load_plus(name, path, **options)
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
    "load_plus",
    "reference_answer",
    "resolve_mbpp_path",
    "strip_reasoning",
    "subset",
    "trim_completion",
]
