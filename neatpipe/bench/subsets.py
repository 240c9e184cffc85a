"""Deterministic subsets of problems: the same seed always picks the same problems."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from neatpipe.bench.problem import ProblemSet
from neatpipe.errors import NeatpipeError, bounded, shown
from neatpipe.io import read_text
from neatpipe.seeds import derive_seed


def subset(
    problems: ProblemSet,
    n: int,
    seed: int = 0,
    labels: Mapping[str, str] | None = None,
) -> ProblemSet:
    """``n`` problems chosen by ``seed``, in benchmark order.

    With ``labels`` (task id -> difficulty label; a problem's own ``difficulty`` is used when it has
    one and no mapping is given), the subset is stratified: every label gets its share of ``n`` by
    largest remainder, so a 25-problem subset keeps the hard/easy mix of the whole set.
    """
    ids = list(problems.task_ids)
    if not 0 < n <= len(ids):
        raise ValueError(f"subset size must be between 1 and {len(ids)}, got {n}")
    rng = random.Random(f"neatpipe-subset:{problems.benchmark}:{seed}")
    if labels is None and any(p.difficulty for p in problems):
        labels = {p.task_id: p.difficulty or "unlabelled" for p in problems}
    if not labels:
        chosen = set(rng.sample(ids, n))
    else:
        missing = [t for t in ids if t not in labels]
        if missing:
            raise ValueError(f"no difficulty label for {len(missing)} problem(s), e.g. {missing[0]!r}")
        strata: dict[str, list[str]] = defaultdict(list)
        for t in ids:
            strata[labels[t]].append(t)
        quotas = {k: n * len(v) / len(ids) for k, v in sorted(strata.items())}
        counts = {k: int(q) for k, q in quotas.items()}
        by_remainder = sorted(quotas, key=lambda k: (-(quotas[k] - counts[k]), k))
        for k in by_remainder[: n - sum(counts.values())]:
            counts[k] += 1
        chosen = set()
        for k in sorted(strata):
            chosen.update(rng.sample(strata[k], counts[k]))
    picked = [t for t in ids if t in chosen]
    out = problems.select(picked)
    out.options.update({"subset_size": n, "subset_seed": seed, "stratified": bool(labels)})
    return out


class SubsetSchedule:
    """Which problems generation g is scored on: all of them, a fixed subset, or a subset drawn
    again every generation (``rotate``).

    This is the one subset policy of neatpipe: an experiment's ``subset`` section, the evolution loop
    and ``neatpipe evaluate`` all draw through it. The draw of generation g is seeded by
    ``derive_seed("neatpipe-subset", seed, g)`` (g is 0 for a fixed subset), so it depends on nothing
    but the seed and the generation, and a resumed run draws what the uninterrupted run drew.
    With ``labels`` (task id -> difficulty label), or problems that carry their own label, the
    subset is stratified; ``stratified=False`` never stratifies.
    """

    def __init__(
        self,
        problems: ProblemSet,
        size: int | None = None,
        *,
        rotate: bool = False,
        seed: int = 0,
        labels: Mapping[str, str] | None = None,
        stratified: bool = True,
    ) -> None:
        if size is not None and not 0 < size:
            raise ValueError(f"subset size must be at least 1, got {size}")
        self.problems = problems
        self.size = None if size is None or size >= len(problems) else size
        self.rotate = rotate
        self.seed = seed
        self.labels = labels
        self.stratified = stratified

    def seed_for(self, generation: int) -> int:
        """The seed of generation ``generation``'s draw."""
        return derive_seed("neatpipe-subset", self.seed, generation if self.rotate else 0)

    def for_generation(self, generation: int) -> ProblemSet:
        """The problems of ``generation`` (all of them when no size is set)."""
        if self.size is None:
            return self.problems
        if self.stratified:
            out = subset(self.problems, self.size, self.seed_for(generation), self.labels)
        else:
            out = subset(self.problems, self.size, self.seed_for(generation), {})
        out.options.update(
            {"subset_policy": "rotating" if self.rotate else "fixed", "generation": generation}
        )
        return out


class SubsetFileError(NeatpipeError, ValueError):
    """A file of task ids that cannot be used: unreadable, empty, or naming problems the benchmark does not
    have. The message names the file."""


def read_task_ids(path: str | Path) -> list[str]:
    """Task ids from a file: a JSON list of strings, or one id per line (blank lines skipped).

    The one reader of subset files: ``neatpipe evaluate --subset`` and an experiment's ``subset.tasks``
    both read through it, so a file means the same problems everywhere."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            ids = json.loads(text)
        except ValueError as exc:
            raise SubsetFileError(f"{path}: not a valid JSON list of task ids: {exc}") from None
        if not isinstance(ids, list):
            raise SubsetFileError(f"{path}: expected a JSON list of task ids")
        bad = next((i for i, t in enumerate(ids) if not isinstance(t, str)), None)
        if bad is not None:
            raise SubsetFileError(
                f'{path}: item {bad} is {shown(ids[bad])}, not a task id string (e.g. "HumanEval/0")'
            )
    else:
        ids = [t.strip() for t in text.splitlines() if t.strip()]
    if not ids:
        raise SubsetFileError(f"{path}: no task ids (give a JSON list or one id per line)")
    return list(dict.fromkeys(ids))  # a repeated id is one problem


def select_tasks(problems: ProblemSet, ids: Sequence[str], source: str | Path) -> ProblemSet:
    """The problems of ``ids`` in benchmark order; ids the benchmark does not have are an error naming
    ``source`` and the first few of them (a subset file written for another benchmark or split)."""
    known = set(problems.task_ids)
    unknown = [t for t in ids if t not in known]
    if unknown:
        listed = ", ".join(bounded(t, 80) for t in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        example = problems.task_ids[0] if len(problems) else "?"
        raise SubsetFileError(
            f"{source}: unknown task ids for {problems.benchmark}: {listed}{more} (ids look like {example})"
        )
    wanted = set(ids)
    out = problems.select([t for t in problems.task_ids if t in wanted])
    out.options.update({"subset_file": str(source)})
    return out
