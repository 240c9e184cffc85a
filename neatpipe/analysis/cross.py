"""Tables across configurations: what no configuration solves, what a pipeline breaks that the solo
model solved, and how consistently each configuration solves each problem over its repeats.

Each table reads the *final* outcome of every (configuration, problem, run): passed, or the error
category (see :func:`neatpipe.analysis.iterations.error_category`) of the output that failed. They
answer the reference study's cross-configuration questions:

* **unfixable**: problems no run of any configuration passes, each with its *dominant error* (the
  category most of its failed outputs share; a tie goes to the category listed first in
  :data:`~neatpipe.analysis.iterations.ERROR_CATEGORIES`);
* **regressions vs solo**: problems a reference configuration (a solo generator, by default every
  configuration whose outputs come from one generator call) solves and a pipeline does not, and the
  reverse (gains). With repeats a configuration *solves* a problem when it passes in more than half of
  its runs, so one lucky or unlucky sample does not make a regression;
* **consistency**: for each configuration, how many problems pass in 0, 1, ..., k of its k runs (the
  reference study's ``consistency`` field), and each problem's count.

Only problems every configuration attempted are compared; the tables say how many that is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from neatpipe.analysis.iterations import (
    ERROR_CATEGORIES,
    PASSED,
    IterationTrajectory,
    TrajectorySet,
    error_category,
)

__all__ = [
    "ConsistencyRow",
    "ConsistencyTable",
    "CrossTables",
    "RegressionVsSolo",
    "SoloRegressionTable",
    "UnfixableProblem",
    "UnfixableTable",
    "consistency_table",
    "cross_tables",
    "final_state",
    "solo_names",
    "solo_regression_table",
    "unfixable_table",
]


def final_state(t: IterationTrajectory) -> str:
    """``"passed"`` or the error category of the output of one problem in one run (the line's own
    result when it records one; an output recorded as failed whose last step passed counts as Other)."""
    passed = t.steps[-1].passed if t.final_passed is None else t.final_passed
    if passed:
        return PASSED
    category = error_category(t.steps[-1].error_type) if not t.steps[-1].passed else "Other"
    return category if category != PASSED else "Other"


def _states(ts: TrajectorySet) -> dict[str, list[str]]:
    """Task id -> final state of each run, in run order."""
    out: dict[str, list[str]] = {}
    for t in ts.trajectories:
        out.setdefault(t.task_id, []).append(final_state(t))
    return out


def _common_tasks(sets: Sequence[TrajectorySet]) -> list[str]:
    """Task ids every set attempted, in the first set's order."""
    if not sets:
        return []
    shared = set.intersection(*({t.task_id for t in ts.trajectories} for ts in sets))
    seen: dict[str, None] = {}
    for t in sets[0].trajectories:
        if t.task_id in shared:
            seen.setdefault(t.task_id)
    return list(seen)


def _dominant(errors: Counter[str]) -> str:
    order = {c: i for i, c in enumerate(ERROR_CATEGORIES)}
    return min(errors, key=lambda c: (-errors[c], order.get(c, len(order)), c))


def _solves(states: Sequence[str]) -> bool:
    """Passes in more than half of its runs (with one run: passed)."""
    return 2 * sum(s == PASSED for s in states) > len(states)


# ------------------------------------------------------------------------------------------- unfixable


@dataclass(frozen=True)
class UnfixableProblem:
    task_id: str
    dominant_error: str
    errors: tuple[tuple[str, int], ...]  # category -> failed outputs, most common first


@dataclass(frozen=True)
class UnfixableTable:
    """Problems that no run of any of ``configurations`` passes, among ``n_problems`` they all attempted."""

    configurations: tuple[str, ...]
    n_problems: int
    problems: tuple[UnfixableProblem, ...]

    @property
    def by_dominant_error(self) -> dict[str, int]:
        """How many unfixable problems each error category dominates, most first."""
        counts = Counter(p.dominant_error for p in self.problems)
        order = {c: i for i, c in enumerate(ERROR_CATEGORIES)}
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order)))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "configurations": list(self.configurations),
            "n_problems": self.n_problems,
            "unfixable": len(self.problems),
            "by_dominant_error": self.by_dominant_error,
            "problems": [
                {"task_id": p.task_id, "dominant_error": p.dominant_error, "errors": dict(p.errors)}
                for p in self.problems
            ],
        }


def unfixable_table(sets: Sequence[TrajectorySet]) -> UnfixableTable:
    """The problems no configuration solves in any run, with their dominant error."""
    tasks = _common_tasks(sets)
    states = [_states(ts) for ts in sets]
    out = []
    for task in tasks:
        outcomes = [s for per in states for s in per[task]]
        if PASSED in outcomes:
            continue
        errors = Counter(outcomes)
        ranked = sorted(errors.items(), key=lambda kv: (kv[0] != _dominant(errors), -kv[1], kv[0]))
        out.append(UnfixableProblem(task, _dominant(errors), tuple(ranked)))
    return UnfixableTable(tuple(ts.name for ts in sets), len(tasks), tuple(out))


# ------------------------------------------------------------------------------- regressions vs solo


@dataclass(frozen=True)
class RegressionVsSolo:
    """One problem the reference solves and the pipeline does not (or the reverse, for a gain)."""

    task_id: str
    solo_passes: int
    solo_runs: int
    pipeline_passes: int
    pipeline_runs: int
    pipeline_error: str  # the pipeline's dominant final error on it ("passed" for a gain)


@dataclass(frozen=True)
class SoloRegressionTable:
    """``pipeline`` against ``solo`` on the ``n_problems`` both attempted."""

    pipeline: str
    solo: str
    n_problems: int
    regressions: tuple[RegressionVsSolo, ...]
    gains: tuple[RegressionVsSolo, ...]

    @property
    def errors(self) -> dict[str, int]:
        """The pipeline's dominant final error over the regressed problems, most first."""
        return dict(Counter(r.pipeline_error for r in self.regressions).most_common())

    def to_dict(self) -> dict[str, Any]:
        def rows(items: Sequence[RegressionVsSolo]) -> list[dict[str, Any]]:
            return [
                {
                    "task_id": r.task_id,
                    "solo_passes": r.solo_passes,
                    "solo_runs": r.solo_runs,
                    "pipeline_passes": r.pipeline_passes,
                    "pipeline_runs": r.pipeline_runs,
                    "pipeline_error": r.pipeline_error,
                }
                for r in items
            ]

        return {
            "pipeline": self.pipeline,
            "solo": self.solo,
            "n_problems": self.n_problems,
            "regressed": len(self.regressions),
            "gained": len(self.gains),
            "errors": self.errors,
            "regressions": rows(self.regressions),
            "gains": rows(self.gains),
        }


def solo_regression_table(solo: TrajectorySet, pipeline: TrajectorySet) -> SoloRegressionTable:
    """Problems ``solo`` solves and ``pipeline`` does not (regressions), and the reverse (gains); a
    configuration solves a problem when it passes in more than half of its runs."""
    tasks = _common_tasks([solo, pipeline])
    s_states, p_states = _states(solo), _states(pipeline)
    regressions, gains = [], []
    for task in tasks:
        s, p = s_states[task], p_states[task]
        failed = Counter(x for x in p if x != PASSED)
        row = RegressionVsSolo(
            task,
            sum(x == PASSED for x in s),
            len(s),
            sum(x == PASSED for x in p),
            len(p),
            _dominant(failed) if failed else PASSED,
        )
        if _solves(s) and not _solves(p):
            regressions.append(row)
        elif _solves(p) and not _solves(s):
            gains.append(row)
    return SoloRegressionTable(pipeline.name, solo.name, len(tasks), tuple(regressions), tuple(gains))


def solo_names(sets: Sequence[TrajectorySet]) -> list[str]:
    """The configurations whose outputs each come from one generator call and nothing else (a solo
    model), as their trajectory files record it."""
    return [ts.name for ts in sets if ts.meta.get("solo")]


# ------------------------------------------------------------------------------------------ consistency


@dataclass(frozen=True)
class ConsistencyRow:
    """One configuration: ``histogram[j]`` problems passed in exactly j of its ``runs`` runs."""

    configuration: str
    runs: int
    histogram: tuple[int, ...]
    passes: tuple[tuple[str, int], ...]  # task id -> runs that passed

    @property
    def always(self) -> int:
        return self.histogram[-1]

    @property
    def never(self) -> int:
        return self.histogram[0]

    @property
    def sometimes(self) -> int:
        return sum(self.histogram[1:-1]) if self.runs > 1 else 0


@dataclass(frozen=True)
class ConsistencyTable:
    rows: tuple[ConsistencyRow, ...]
    n_problems: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_problems": self.n_problems,
            "configurations": {
                r.configuration: {
                    "runs": r.runs,
                    "consistency": {str(j): n for j, n in enumerate(r.histogram)},
                    "passes": dict(r.passes),
                }
                for r in self.rows
            },
        }


def consistency_table(sets: Sequence[TrajectorySet]) -> ConsistencyTable:
    """Per configuration, how many of the shared problems pass in 0, 1, ..., k of its k runs."""
    tasks = _common_tasks(sets)
    rows = []
    for ts in sets:
        states = _states(ts)
        runs = ts.n_runs
        histogram = [0] * (runs + 1)
        passes = []
        for task in tasks:
            n = min(sum(s == PASSED for s in states[task]), runs)
            histogram[n] += 1
            passes.append((task, n))
        rows.append(ConsistencyRow(ts.name, runs, tuple(histogram), tuple(passes)))
    return ConsistencyTable(tuple(rows), len(tasks))


# ------------------------------------------------------------------------------------------------- all


@dataclass(frozen=True)
class CrossTables:
    """The three tables over several configurations (``regressions``: one per pipeline and reference)."""

    unfixable: UnfixableTable
    regressions: tuple[SoloRegressionTable, ...]
    consistency: ConsistencyTable
    solo: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "unfixable": self.unfixable.to_dict(),
            "solo": list(self.solo),
            "regressions_vs_solo": [r.to_dict() for r in self.regressions],
            "consistency": self.consistency.to_dict(),
        }


def cross_tables(
    sets: Mapping[str, TrajectorySet] | Sequence[TrajectorySet], solo: Sequence[str] = ()
) -> CrossTables:
    """The cross-configuration tables of ``sets``. ``solo`` names the reference configurations of the
    regression table (default: the solo ones, :func:`solo_names`); each other configuration is set
    against each of them. Raises ``KeyError`` naming a ``solo`` that is not among ``sets``."""
    items = list(sets.values()) if isinstance(sets, Mapping) else list(sets)
    by_name = {ts.name: ts for ts in items}
    unknown = [s for s in solo if s not in by_name]
    if unknown:
        raise KeyError(f"no configuration named {unknown[0]!r}; there are: {', '.join(by_name)}")
    references = list(solo) or solo_names(items)
    regressions = tuple(
        solo_regression_table(by_name[ref], ts) for ref in references for ts in items if ts.name != ref
    )
    return CrossTables(unfixable_table(items), regressions, consistency_table(items), tuple(references))
