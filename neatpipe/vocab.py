"""The words that experiment files, genome files, command-line options and run records share.

A benchmark name, a feedback policy or a visible-test policy is written by a user in one place (an
experiment, a genome, an option) and read in several others (the loaders, the runner, the records
next to every score). Each set of words is defined here once, so that every layer checks a value
against the same list and a new word is added in one place.

This module is a leaf: it imports nothing of neatpipe.
"""

from __future__ import annotations

#: The benchmarks neatpipe loads: HumanEval (bundled), sanitized MBPP, and their EvalPlus versions
#: HumanEval+ and MBPP+ (more test inputs; base and plus pass rates reported side by side).
BENCHMARKS: tuple[str, ...] = ("humaneval", "mbpp", "humaneval+", "mbpp+")

#: Which tests feed an executor's feedback to the refiner: ``visible``, the example tests a model may
#: see (from the prompt's docstring or MBPP's shown asserts), or ``hidden``, the benchmark's own
#: scoring tests (oracle feedback, which inflates scores; kept to reproduce studies that used it). An
#: executor gene holds one of these.
FEEDBACK_CHOICES: tuple[str, ...] = ("visible", "hidden")

#: The feedback source that leaves the choice to each executor gene of the genome.
GENOME_FEEDBACK = "genome"

#: What an experiment (or a run) may name as its feedback source: force one of
#: :data:`FEEDBACK_CHOICES` for every executor, or :data:`GENOME_FEEDBACK`. Records name the source so
#: that a score always says which tests fed it.
FEEDBACK_SOURCES: tuple[str, ...] = (*FEEDBACK_CHOICES, GENOME_FEEDBACK)

#: Which of an MBPP problem's asserts a model may see: ``first`` (the default: the other asserts stay
#: hidden) or ``all`` (the common prompt convention, where visible and hidden tests coincide).
#: HumanEval's visible tests are the examples of its docstrings, with no policy to choose.
VISIBLE_POLICIES: tuple[str, ...] = ("first", "all")

#: What a genome's fitness may be charged for, as experiment files write it: ``per-node`` (every node),
#: ``per-model-node`` (generators, analyzers, refiners), ``per-call`` (worst-case model calls per
#: problem), ``per-token`` (per 1000 tokens spent per problem); ``none`` charges nothing. The compact
#: texts of ``Penalty.parse`` (``node:0.02+token:0.001``) drop the ``per-`` prefix.
PENALTY_KINDS: tuple[str, ...] = ("none", "per-node", "per-model-node", "per-call", "per-token")

#: Where a run's evaluation runs: ``local`` (this process: its sandbox pool, its models) or ``ray`` (model
#: backends and sandbox pools as Ray actors, on one machine or a cluster). Results are the same.
ENGINES: tuple[str, ...] = ("local", "ray")
