"""Per-problem refinement trajectories, their readers, and the refinement tables.

A trajectory is the sequence of candidates a refine loop produced for one problem: step 0 is the
candidate entering the loop, step ``i >= 1`` the candidate after refine iteration ``i``; each step
says whether that candidate passed the hidden tests and, if not, its error type. Two sources give
exactly that shape:

* the reference study's ``iteration_analysis.json`` (``raw_trajectories[name] -> [{task_id,
  trajectory: [{iter, passed, error_type}]}]``; all loops forced to 3 iterations), read by
  :func:`read_study_trajectories`;
* neatpipe's trajectory JSONL (format ``neatpipe-trajectory/1``; the last refine stage,
  ``stages[-1]["iterations"]``, of each line), read by :func:`read_neatpipe_trajectories`.

**Trajectories that end early.** With early stopping a loop ends at the iteration whose candidate
passed the feedback tests, so trajectories have different lengths. Every table pads a short
trajectory to the common horizon by *holding its last candidate*: the loop stopped, so the
pipeline's output no longer changes. Consequences: a problem solved at its last step stays solved,
a stopped trajectory contributes no fixes or regressions after it stopped, and its final state is
its last step. When the feedback tests are the hidden tests (the study's setting), holding the last
candidate and "passed at any iteration so far" agree; with visible-test feedback they can differ
(the visible tests passed, the hidden ones did not), which is why the early-stopping table reports
both.

Several repeats of the same pipeline (neatpipe's ``repeat`` field) are kept apart in
:attr:`TrajectorySet.runs`; the tables count over every (problem, run) pair they are given.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from neatpipe.errors import NeatpipeError

__all__ = [
    "ERROR_CATEGORIES",
    "NEATPIPE_FORMAT",
    "TrajectoryFormatError",
    "Attempt",
    "IterationTrajectory",
    "TrajectorySet",
    "error_category",
    "read_study_trajectories",
    "read_neatpipe_trajectories",
    "load_trajectories",
    "detect_kind",
    "IterationRow",
    "EarlyStoppingTable",
    "early_stopping_table",
    "ErrorFixRow",
    "ErrorFixTable",
    "error_fix_table",
    "TransitionTable",
    "transition_table",
    "RegressionTable",
    "regression_table",
    "first_break_iterations",
    "final_outcomes",
]

NEATPIPE_FORMAT = "neatpipe-trajectory/1"

#: The study's error categories, in the order tables list them.
ERROR_CATEGORIES = (
    "NameError",
    "AssertionError",
    "SyntaxError",
    "IndexError/KeyError",
    "TimeoutError",
    "TypeError",
    "Other",
)
PASSED = "passed"

_CATEGORY_OF = {
    "NameError": "NameError",
    "AssertionError": "AssertionError",
    "SyntaxError": "SyntaxError",
    "IndentationError": "SyntaxError",
    "TabError": "SyntaxError",
    "IndexError": "IndexError/KeyError",
    "KeyError": "IndexError/KeyError",
    "TimeoutError": "TimeoutError",
    "Timeout": "TimeoutError",
    "TypeError": "TypeError",
}


class TrajectoryFormatError(NeatpipeError, ValueError):
    """A trajectories file that cannot be read; the message names the file and what was expected."""


def error_category(error_type: str | None) -> str:
    """Map an error type to the study's categories; ``None`` (no error) maps to ``"passed"``.

    NameError, AssertionError, SyntaxError (with its subclasses IndentationError and TabError),
    IndexError and KeyError together, TimeoutError (neatpipe's ``"Timeout"`` status too) and
    TypeError keep a category of their own; everything else is ``"Other"``. UnboundLocalError is
    "Other", as in the study: its stored error-fix table for the NEAT v3 champion only comes out
    of its raw trajectories with that choice.
    """
    if error_type is None:
        return PASSED
    return _CATEGORY_OF.get(error_type, "Other")


class Attempt(NamedTuple):
    """One candidate of a refine loop: iteration, hidden-test result, error type, visible result."""

    iteration: int
    passed: bool
    error_type: str | None
    visible_passed: bool | None = None


@dataclass(frozen=True)
class IterationTrajectory:
    """The refine-loop trajectory of one problem in one run (steps 0..n-1, contiguous)."""

    task_id: str
    steps: tuple[Attempt, ...]
    repeat: int = 0
    early_stop: bool | None = None
    final_passed: bool | None = None  # the line's own pass@1 result, when the source records one

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"{self.task_id}: a trajectory needs at least one step")
        for i, s in enumerate(self.steps):
            if s.iteration != i:
                raise ValueError(f"{self.task_id}: step {i} has iteration {s.iteration}")

    @property
    def last(self) -> int:
        """Index of the last step."""
        return len(self.steps) - 1

    def passed_at(self, i: int) -> bool:
        """Hidden-test result of the candidate held at iteration ``i`` (last step held after the end)."""
        return self.steps[min(i, self.last)].passed

    def solved_by(self, i: int) -> bool:
        """Whether any candidate at iterations ``0..i`` passed (the oracle early-stopping outcome)."""
        return any(s.passed for s in self.steps[: i + 1])

    def first_pass(self) -> int | None:
        """Iteration of the first passing candidate, or ``None``."""
        return next((s.iteration for s in self.steps if s.passed), None)

    @property
    def initial_category(self) -> str:
        return error_category(self.steps[0].error_type) if not self.steps[0].passed else PASSED

    @property
    def final_category(self) -> str:
        s = self.steps[-1]
        return PASSED if s.passed else error_category(s.error_type)


@dataclass
class TrajectorySet:
    """The trajectories of one pipeline (possibly several runs), with where they came from."""

    name: str
    trajectories: list[IterationTrajectory]
    source: str = ""
    kind: str = ""  # "study" or "neatpipe"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def runs(self) -> dict[int, list[IterationTrajectory]]:
        """Trajectories grouped by repeat index, in first-seen order."""
        out: dict[int, list[IterationTrajectory]] = {}
        for t in self.trajectories:
            out.setdefault(t.repeat, []).append(t)
        return out

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    @property
    def early_stop(self) -> str:
        """``"forced"``, ``"early-stopped"``, ``"mixed"`` or ``"unknown"``."""
        flags = {t.early_stop for t in self.trajectories}
        if flags == {True}:
            return "early-stopped"
        if flags == {False}:
            return "forced"
        if None in flags and len(flags) == 1:
            return "unknown"
        return "mixed"


# --------------------------------------------------------------------------- readers


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _check_path(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise TrajectoryFormatError(f"{p}: no such file")
    if p.is_dir():
        raise TrajectoryFormatError(f"{p}: is a folder, expected a trajectories file")
    return p


def _steps_from(raw: Any, where: str) -> tuple[Attempt, ...]:
    if not isinstance(raw, list) or not raw:
        raise TrajectoryFormatError(f"{where}: expected a non-empty list of {{iter, passed, error_type}}")
    steps = []
    for i, s in enumerate(raw):
        if not isinstance(s, Mapping) or "passed" not in s:
            raise TrajectoryFormatError(f"{where}[{i}]: expected an object with 'iter' and 'passed'")
        it = s.get("iter", i)
        if it != i:
            raise TrajectoryFormatError(
                f"{where}[{i}]: iteration {it!r}, expected {i} (steps must be 0, 1, ...)"
            )
        steps.append(
            Attempt(
                iteration=i,
                passed=bool(s["passed"]),
                error_type=s.get("error_type"),
                visible_passed=s.get("visible_passed"),
            )
        )
    return tuple(steps)


def study_sets_from_data(data: Mapping[str, Any], source: str = "") -> dict[str, TrajectorySet]:
    """Trajectory sets from the already parsed ``iteration_analysis.json`` object."""
    raw = data.get("raw_trajectories") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping):
        raise TrajectoryFormatError(
            f"{source or 'data'}: expected the study's iteration analysis with a 'raw_trajectories' object"
        )
    forced = data.get("max_iters_forced")
    out: dict[str, TrajectorySet] = {}
    for name, problems in raw.items():
        trajs = []
        for k, p in enumerate(problems):
            where = f"{source}: raw_trajectories[{name!r}][{k}]"
            if not isinstance(p, Mapping) or "task_id" not in p:
                raise TrajectoryFormatError(f"{where}: expected {{task_id, trajectory}}")
            trajs.append(
                IterationTrajectory(
                    task_id=str(p["task_id"]),
                    steps=_steps_from(p.get("trajectory"), f"{where}.trajectory"),
                    early_stop=False if forced is not None else None,
                )
            )
        out[name] = TrajectorySet(
            name=name,
            trajectories=trajs,
            source=source,
            kind="study",
            meta={"max_iters_forced": forced, "feedback": "hidden"},
        )
    return out


def read_study_trajectories(path: str | Path) -> dict[str, TrajectorySet]:
    """Read the study's ``iteration_analysis.json``: one :class:`TrajectorySet` per pipeline name."""
    p = _check_path(path)
    try:
        with _open_text(p) as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrajectoryFormatError(
            f"{p}: not JSON ({exc}); expected the study's iteration_analysis.json"
        ) from exc
    return study_sets_from_data(data, str(p))


def _neatpipe_steps(rec: Mapping[str, Any], where: str) -> tuple[tuple[Attempt, ...], bool | None]:
    stages = rec.get("stages")
    if stages:
        stage = stages[-1]
        if not isinstance(stage, Mapping):
            raise TrajectoryFormatError(f"{where}: stages[-1] is not an object")
        return _steps_from(stage.get("iterations"), f"{where}: stages[-1].iterations"), stage.get(
            "early_stop"
        )
    # No refine stage (e.g. a solo generator): the final candidate is the only step.
    if "passed" not in rec:
        raise TrajectoryFormatError(f"{where}: no 'stages' and no 'passed'")
    final = rec.get("final") or {}
    error = None if rec["passed"] else (final.get("error_type") or final.get("status") or "Other")
    return (Attempt(0, bool(rec["passed"]), error),), None


def _one_generator_call(rec: Mapping[str, Any]) -> bool:
    """Whether a line's output came from one generator call and no other model call (a solo model)."""
    steps = rec.get("steps")
    if not isinstance(steps, list):
        return False
    roles = [s.get("role") for s in steps if isinstance(s, Mapping)]
    return [r for r in roles if r in ("generator", "analyzer", "refiner", "selector")] == ["generator"]


def read_neatpipe_trajectories(path: str | Path) -> dict[str, TrajectorySet]:
    """Read neatpipe trajectory JSONL: one :class:`TrajectorySet` per pipeline label.

    Each line holds one problem in one repeat; its trajectory is the last refine stage's
    ``iterations`` (``stages[-1]``). A line without refine stages becomes a one-step trajectory
    (its final candidate). Lines are grouped by ``label`` (else ``genome``), repeats kept apart by
    ``repeat``. Blank lines are skipped; any other unreadable line is an error naming file and line.
    """
    p = _check_path(path)

    def records() -> Iterator[tuple[str, Any]]:
        with _open_text(p) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{p}:{lineno}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrajectoryFormatError(
                        f"{where}: not JSON ({exc.msg}); expected one {NEATPIPE_FORMAT} object per line"
                    ) from exc

    out = neatpipe_sets_from_records(records(), str(p))
    if not out:
        raise TrajectoryFormatError(f"{p}: no trajectories; expected {NEATPIPE_FORMAT} JSON lines")
    return out


def neatpipe_sets_from_records(
    records: Iterable[tuple[str, Any]], source: str = ""
) -> dict[str, TrajectorySet]:
    """:func:`read_neatpipe_trajectories` for records already in memory: ``(where, record)`` pairs, where
    ``where`` names the record in errors and ``record`` is a trajectory's dictionary (``Trajectory.to_dict()``)."""
    out: dict[str, TrajectorySet] = {}
    seen: set[tuple[str, int, str]] = set()
    for where, rec in records:
        if not isinstance(rec, Mapping) or rec.get("format") != NEATPIPE_FORMAT:
            got = rec.get("format") if isinstance(rec, Mapping) else type(rec).__name__
            raise TrajectoryFormatError(f"{where}: expected a {NEATPIPE_FORMAT} object, got format {got!r}")
        if "task_id" not in rec:
            raise TrajectoryFormatError(f"{where}: missing 'task_id'")
        name = str(rec.get("label") or rec.get("genome") or "pipeline")
        repeat = int(rec.get("repeat", 0))
        key = (name, repeat, str(rec["task_id"]))
        if key in seen:
            raise TrajectoryFormatError(
                f"{where}: {rec['task_id']} appears twice for {name!r} repeat {repeat}"
            )
        seen.add(key)
        steps, early = _neatpipe_steps(rec, where)
        ts = out.get(name)
        if ts is None:
            ts = out[name] = TrajectorySet(
                name=name, trajectories=[], source=source, kind="neatpipe", meta={}
            )
            for k in ("benchmark", "feedback", "synthetic", "genome"):
                if k in rec:
                    ts.meta[k] = rec[k]
            ts.meta["solo"] = True
        ts.meta["solo"] = ts.meta["solo"] and _one_generator_call(rec)
        ts.trajectories.append(
            IterationTrajectory(
                task_id=str(rec["task_id"]),
                steps=steps,
                repeat=repeat,
                early_stop=early,
                final_passed=bool(rec["passed"]) if "passed" in rec else None,
            )
        )
    return out


def detect_kind(path: str | Path) -> str:
    """``"study"`` (iteration_analysis.json), ``"main_results"``, ``"neatpipe"`` (JSONL), by content."""
    p = _check_path(path)
    try:
        with _open_text(p) as fh:
            head = fh.read(4096)
    except UnicodeDecodeError as exc:
        raise TrajectoryFormatError(f"{p}: not a text file; expected JSON or JSON lines") from exc
    first = head.lstrip()[:1]
    first_line = head.lstrip().split("\n", 1)[0]
    if first == "{":
        try:
            rec = json.loads(first_line)
            if isinstance(rec, Mapping) and rec.get("format") == NEATPIPE_FORMAT:
                return "neatpipe"
        except json.JSONDecodeError:
            pass
        if '"format"' in first_line and NEATPIPE_FORMAT in first_line:
            return "neatpipe"
        try:
            with _open_text(p) as fh:
                data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise TrajectoryFormatError(
                f"{p}: not JSON ({exc.msg}); expected neatpipe trajectory JSONL or the study's iteration_analysis.json"
            ) from exc
        if isinstance(data, Mapping) and "raw_trajectories" in data:
            return "study"
        if isinstance(data, Mapping) and "configs" in data:
            return "main_results"
    raise TrajectoryFormatError(
        f"{p}: expected neatpipe trajectory JSONL (format {NEATPIPE_FORMAT}), the study's "
        "iteration_analysis.json (with 'raw_trajectories') or main_results.json (with 'configs')"
    )


def load_trajectories(path: str | Path) -> dict[str, TrajectorySet]:
    """Read either trajectories file, detected by content (see :func:`detect_kind`)."""
    kind = detect_kind(path)
    if kind == "study":
        return read_study_trajectories(path)
    if kind == "neatpipe":
        return read_neatpipe_trajectories(path)
    raise TrajectoryFormatError(
        f"{path}: this is a main_results file (per-config pass counts), not trajectories; "
        "use `neatpipe analyze --compare` for it"
    )


# --------------------------------------------------------------------------- tables


def _horizon(trajs: Sequence[IterationTrajectory], horizon: int | None) -> int:
    if not trajs:
        raise ValueError("no trajectories")
    longest = max(t.last for t in trajs)
    return longest if horizon is None else horizon


@dataclass(frozen=True)
class IterationRow:
    """One iteration of the early-stopping table (counts over every trajectory given).

    ``solved``: passed at any iteration <= i (early stopping with an oracle: the study's
    "effective pass"). ``first_fixes``: solved for the first time at i. ``passing``: the
    candidate held at i passes (without early stopping: the study's "raw pass"; for an
    early-stopped run, the pipeline's output had the loop been capped at i iterations).
    ``fixes``/``regressions``: fail->pass / pass->fail between i-1 and i. ``net`` =
    fixes - regressions = passing[i] - passing[i-1]. ``net_first`` = first_fixes - regressions,
    the study's "net value per iteration".
    """

    iteration: int
    solved: int
    first_fixes: int
    passing: int
    fixes: int
    regressions: int

    @property
    def net(self) -> int:
        return self.fixes - self.regressions

    @property
    def net_first(self) -> int:
        return self.first_fixes - self.regressions


@dataclass(frozen=True)
class EarlyStoppingTable:
    """Problems solved after 0..k iterations with early stopping, and per iteration without it."""

    rows: tuple[IterationRow, ...]
    n_trajectories: int
    n_runs: int
    stopping: str = "unknown"

    @property
    def solved(self) -> list[int]:
        return [r.solved for r in self.rows]

    @property
    def passing(self) -> list[int]:
        return [r.passing for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_trajectories": self.n_trajectories,
            "n_runs": self.n_runs,
            "stopping": self.stopping,
            "rows": [
                {
                    "iteration": r.iteration,
                    "solved": r.solved,
                    "first_fixes": r.first_fixes,
                    "passing": r.passing,
                    "fixes": r.fixes,
                    "regressions": r.regressions,
                    "net": r.net,
                    "net_first": r.net_first,
                }
                for r in self.rows
            ],
        }


def early_stopping_table(
    trajectories: Iterable[IterationTrajectory], *, horizon: int | None = None, stopping: str | None = None
) -> EarlyStoppingTable:
    """Build the early-stopping table over iterations 0..horizon (default: the longest trajectory).

    Short trajectories hold their last candidate (see the module docstring): a problem solved
    when its loop stopped stays solved and adds no fixes or regressions afterwards.
    """
    trajs = list(trajectories)
    k = _horizon(trajs, horizon)
    rows = []
    prev_solved = 0
    for i in range(k + 1):
        solved = sum(t.solved_by(i) for t in trajs)
        passing = sum(t.passed_at(i) for t in trajs)
        if i == 0:
            fixes = regressions = 0
        else:
            fixes = sum((not t.passed_at(i - 1)) and t.passed_at(i) for t in trajs)
            regressions = sum(t.passed_at(i - 1) and not t.passed_at(i) for t in trajs)
        rows.append(
            IterationRow(
                iteration=i,
                solved=solved,
                first_fixes=solved - prev_solved,
                passing=passing,
                fixes=fixes,
                regressions=regressions,
            )
        )
        prev_solved = solved
    if stopping is None:
        stopping = TrajectorySet("", trajs).early_stop
    return EarlyStoppingTable(
        rows=tuple(rows),
        n_trajectories=len(trajs),
        n_runs=len({t.repeat for t in trajs}),
        stopping=stopping,
    )


@dataclass(frozen=True)
class ErrorFixRow:
    """Problems whose first candidate failed with ``category``: first fixed at iteration 1..k, never."""

    category: str
    total: int
    fixed_at: tuple[int, ...]  # index 0 = iteration 1
    never: int

    @property
    def fixed(self) -> int:
        return sum(self.fixed_at)

    @property
    def fix_rate(self) -> float:
        return self.fixed / self.total if self.total else 0.0


@dataclass(frozen=True)
class ErrorFixTable:
    """Per initial error category, when refinement first fixed it (hidden tests)."""

    rows: tuple[ErrorFixRow, ...]
    horizon: int
    n_trajectories: int
    n_initially_passed: int
    n_runs: int

    def row(self, category: str) -> ErrorFixRow:
        for r in self.rows:
            if r.category == category:
                return r
        raise KeyError(category)

    def as_study_dict(self) -> dict[str, dict[str, int]]:
        """The study's ``error_fix_by_iter`` shape: {category: {total, fixed_iter_1.., never_fixed}}."""
        out = {}
        for r in self.rows:
            d = {"total": r.total}
            for i, n in enumerate(r.fixed_at, 1):
                d[f"fixed_iter_{i}"] = n
            d["never_fixed"] = r.never
            out[r.category] = d
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "n_trajectories": self.n_trajectories,
            "n_initially_passed": self.n_initially_passed,
            "n_runs": self.n_runs,
            "by_category": self.as_study_dict(),
        }


def error_fix_table(
    trajectories: Iterable[IterationTrajectory], *, horizon: int | None = None
) -> ErrorFixTable:
    """Per initial error category (iteration 0's error type, see :func:`error_category`): how many
    were first fixed (passed the hidden tests) at iteration 1, 2, ..., horizon, and how many never.

    A trajectory that ended before the horizon without passing counts as never fixed; one that
    passed at its last step counts at that step. Categories with no problem are left out; rows
    follow :data:`ERROR_CATEGORIES`.
    """
    trajs = list(trajectories)
    k = _horizon(trajs, horizon)
    counts: dict[str, list[int]] = {}
    initially_passed = 0
    for t in trajs:
        if t.steps[0].passed:
            initially_passed += 1
            continue
        c = counts.setdefault(t.initial_category, [0] * (k + 1))  # [fixed at 1..k] + [never]
        first = t.first_pass()
        if first is None or first > k:
            c[k] += 1
        else:
            c[first - 1] += 1
    rows = tuple(
        ErrorFixRow(
            category=cat, total=sum(counts[cat]), fixed_at=tuple(counts[cat][:k]), never=counts[cat][k]
        )
        for cat in ERROR_CATEGORIES
        if cat in counts
    )
    return ErrorFixTable(
        rows=rows,
        horizon=k,
        n_trajectories=len(trajs),
        n_initially_passed=initially_passed,
        n_runs=len({t.repeat for t in trajs}),
    )


@dataclass(frozen=True)
class TransitionTable:
    """Counts of (state before refinement -> state after), states being error categories or "passed".

    "Before" is step 0 (the candidate entering the loop), "after" the last step (the loop's
    output; an early-stopped loop's output is its last step too).
    """

    counts: dict[tuple[str, str], int]
    n_trajectories: int
    n_runs: int

    @property
    def states(self) -> list[str]:
        present = {s for pair in self.counts for s in pair}
        order = [PASSED, *ERROR_CATEGORIES]
        return [s for s in order if s in present]

    def before(self, state: str) -> int:
        return sum(n for (a, _), n in self.counts.items() if a == state)

    def after(self, state: str) -> int:
        return sum(n for (_, b), n in self.counts.items() if b == state)

    def to_dict(self) -> dict[str, Any]:
        nested: dict[str, dict[str, int]] = {}
        for (a, b), n in sorted(self.counts.items()):
            nested.setdefault(a, {})[b] = n
        return {"n_trajectories": self.n_trajectories, "n_runs": self.n_runs, "transitions": nested}


def transition_table(trajectories: Iterable[IterationTrajectory]) -> TransitionTable:
    """Count initial state -> final state over the trajectories (see :class:`TransitionTable`)."""
    trajs = list(trajectories)
    counts: dict[tuple[str, str], int] = {}
    for t in trajs:
        key = (t.initial_category, t.final_category)
        counts[key] = counts.get(key, 0) + 1
    return TransitionTable(counts=counts, n_trajectories=len(trajs), n_runs=len({t.repeat for t in trajs}))


def first_break_iterations(trajectories: Iterable[IterationTrajectory]) -> list[int]:
    """For each trajectory whose first candidate passed and a later one failed: the first failing
    iteration, in input order (the study's ``regression_first_break``)."""
    out = []
    for t in trajectories:
        if t.steps[0].passed:
            broke = next((s.iteration for s in t.steps[1:] if not s.passed), None)
            if broke is not None:
                out.append(broke)
    return out


@dataclass(frozen=True)
class RegressionTable:
    """How often refinement broke initially-correct code: initial passes, broke, by first break."""

    initial_passes: int
    broke: int
    first_break_at: tuple[int, ...]  # index 0 = iteration 1
    n_runs: int

    @property
    def break_rate(self) -> float:
        return self.broke / self.initial_passes if self.initial_passes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "initial_passes": self.initial_passes,
            "broke": self.broke,
            "break_rate": self.break_rate,
            "first_break_at": list(self.first_break_at),
            "n_runs": self.n_runs,
        }


def regression_table(
    trajectories: Iterable[IterationTrajectory], *, horizon: int | None = None
) -> RegressionTable:
    """Initially passing problems that some later candidate failed (meaningful without early
    stopping; with it, a loop whose input passed never runs, so nothing can break)."""
    trajs = list(trajectories)
    k = _horizon(trajs, horizon)
    breaks = first_break_iterations(trajs)
    at = [0] * k
    for b in breaks:
        if b <= k:
            at[b - 1] += 1
    return RegressionTable(
        initial_passes=sum(t.steps[0].passed for t in trajs),
        broke=sum(at),
        first_break_at=tuple(at),
        n_runs=len({t.repeat for t in trajs}),
    )


def final_outcomes(ts: TrajectorySet) -> list[list[bool]]:
    """Per run (repeat order), per problem (task order of the first run), whether the final
    candidate passed (the line's ``passed`` when recorded, else the last step): the input of :func:`neatpipe.analysis.stats.bootstrap_pass_at_1`.
    Raises ``ValueError`` if runs do not cover the same problems."""
    runs = ts.runs
    order: list[str] | None = None
    out = []
    for rep, trajs in runs.items():
        by_task = {
            t.task_id: (t.steps[-1].passed if t.final_passed is None else t.final_passed) for t in trajs
        }
        if order is None:
            order = [t.task_id for t in trajs]
        if set(by_task) != set(order):
            raise ValueError(f"{ts.name}: repeat {rep} covers different problems than the first run")
        out.append([by_task[task] for task in order])
    return out
