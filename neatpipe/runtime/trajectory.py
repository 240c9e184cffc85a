"""Trajectories: what a pipeline did on one problem, step by step, and the JSONL files that hold them.

One :class:`Trajectory` per problem per repeat. It records every step (the code, the raw model text,
the execution result the pipeline saw, whether the candidate passes the hidden tests, tokens, time; for
a model step also its exact request and full answer, by the keys of their texts in the run directory's
text store, :mod:`neatpipe.runtime.texts`),
the refine stages' iteration lists (the shape the reference study's analyses read), and the final
candidate scored on the hidden tests (pass@1).

A trajectory file is JSON Lines: one object per line, each tagged ``"format": "neatpipe-trajectory/1"``.
The fields are documented in ``docs/runtime.md``. :func:`write_trajectories` writes atomically;
:func:`read_trajectories` checks every field and names the file and line of the first problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError
from neatpipe.io import atomic_write_text

FORMAT = "neatpipe-trajectory/1"
#: Raw model text kept inline per step, in characters (the code is always kept whole; the full answer is
#: in the text store, see :class:`RequestRecord`).
TEXT_LIMIT = 4000
ROLES = ("generator", "executor", "analyzer", "refiner", "selector")


class TrajectoryError(NeatpipeError, ValueError):
    """A trajectory file or record is malformed; the message names the file, the line and the field."""


# -- records ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackResult:
    """An executor's run of a candidate on its feedback tests (``source``: visible or hidden)."""

    source: str
    status: str
    error_type: str | None
    failing_test: str | None
    tests_passed: int
    tests_total: int
    time_limit_s: float | None = None  # the CPU-time limit of the run (None in files written before it)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class HiddenResult:
    """A candidate's run on the benchmark's hidden tests."""

    passed: bool
    status: str
    error_type: str | None


@dataclass(frozen=True)
class RequestRecord:
    """A model step's exact request and full answer, by key: ``messages`` are (role, key of the content)
    pairs, the sampling parameters are the request's own, ``answer`` is the key of the full answer text.
    Keys are SHA-256 hex digests of the texts, which the run directory's text store holds."""

    messages: tuple[tuple[str, str], ...]
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int
    answer: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": [{"role": role, "content": key} for role, key in self.messages],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "seed": self.seed,
            "answer": self.answer,
        }


@dataclass(frozen=True)
class TraceStep:
    """One node step for one problem.

    ``iteration``: 0 for generators and selectors; in a refine stage, the index of the stage's
    candidate the step concerns: an executor step with iteration i checks candidate i (0 = the
    stage's input), analyzer and refiner steps with iteration i make candidate i. ``code`` is the
    candidate the step emitted (generator, refiner, selector) or looked at (executor, analyzer).
    ``selected`` names the input a selector picked. ``request`` (model steps of files written since
    requests are kept) names the exact request and full answer in the text store.
    """

    node: str
    role: str
    iteration: int
    model: str | None
    code: str
    text: str
    feedback_result: FeedbackResult | None
    hidden: HiddenResult | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    duration_s: float
    selected: str | None = None
    request: RequestRecord | None = None


@dataclass(frozen=True)
class StageIteration:
    """Candidate ``iter`` of a refine stage: ``passed``/``error_type`` on the hidden tests,
    ``visible_passed`` on the stage's feedback tests."""

    iter: int
    passed: bool
    error_type: str | None
    visible_passed: bool


@dataclass(frozen=True)
class StageTrace:
    """A refine stage's candidates for one problem, from its input (iter 0) to its output."""

    node: str
    early_stop: bool
    max_iterations: int
    feedback: str
    iterations: tuple[StageIteration, ...]


@dataclass(frozen=True)
class FinalResult:
    """The candidate that reached the output, on the hidden tests."""

    code: str
    status: str
    error_type: str | None
    failing_test: str | None
    time_limit_s: float | None = None  # the hidden tests' CPU-time limit (every hidden verdict's)


@dataclass(frozen=True)
class Trajectory:
    """Everything a pipeline did on one problem in one repeat.

    ``model_ids`` maps the model-pool names to the backends' identities (exact model and revision).
    ``texts`` (key -> text) holds the texts its steps' ``request`` records name, for a trajectory made in
    this process; it is not part of the JSON line (the writers put it in the text store) and is empty for
    a trajectory read from a file.
    """

    task_id: str
    benchmark: str
    genome: str
    label: str
    repeat: int
    seed: int
    feedback: str
    synthetic: bool
    passed: bool
    final: FinalResult
    steps: tuple[TraceStep, ...]
    stages: tuple[StageTrace, ...]
    prompt_tokens: int
    completion_tokens: int
    model_calls: int
    duration_s: float
    models: Mapping[str, str] = field(default_factory=dict)
    model_ids: Mapping[str, str] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    plus_passed: bool | None = None  # HumanEval+ / MBPP+: the final candidate on base and plus inputs

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of one line (keys in the documented order)."""
        return {
            "format": FORMAT,
            "task_id": self.task_id,
            "benchmark": self.benchmark,
            "genome": self.genome,
            "label": self.label,
            "repeat": self.repeat,
            "seed": self.seed,
            "feedback": self.feedback,
            "synthetic": self.synthetic,
            "models": dict(self.models),
            **({"model_ids": dict(self.model_ids)} if self.model_ids else {}),
            "passed": self.passed,
            **({"plus_passed": self.plus_passed} if self.plus_passed is not None else {}),
            "final": _plain(self.final),
            "steps": [_step_dict(s) for s in self.steps],
            "stages": [
                {
                    "node": st.node,
                    "early_stop": st.early_stop,
                    "max_iterations": st.max_iterations,
                    "feedback": st.feedback,
                    "iterations": [_plain(it) for it in st.iterations],
                }
                for st in self.stages
            ],
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model_calls": self.model_calls,
            "duration_s": self.duration_s,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any) -> Trajectory:
        """The trajectory in ``data``; ``TrajectoryError`` names the first bad field."""
        d = _Fields(data, "trajectory")
        fmt = d.get("format", str)
        if fmt != FORMAT:
            raise TrajectoryError(f"field 'format': expected {FORMAT!r}, got {fmt!r}")
        final = _Fields(d.get("final", dict), "final")
        steps = d.get("steps", list)
        stages = d.get("stages", list)
        models = d.get("models", dict, optional=True) or {}
        model_ids = d.get("model_ids", dict, optional=True) or {}
        for name, mapping in (("models", models), ("model_ids", model_ids)):
            for k, v in mapping.items():
                if not isinstance(v, str):
                    raise TrajectoryError(f"field '{name}.{k}': expected a string, got {_kind(v)}")
        return cls(
            task_id=d.get("task_id", str),
            benchmark=d.get("benchmark", str),
            genome=d.get("genome", str),
            label=d.get("label", str),
            repeat=d.get("repeat", int),
            seed=d.get("seed", int),
            feedback=d.get("feedback", str),
            synthetic=d.get("synthetic", bool),
            passed=d.get("passed", bool),
            final=FinalResult(
                code=final.get("code", str),
                status=final.get("status", str),
                error_type=final.get("error_type", str, nullable=True),
                failing_test=final.get("failing_test", str, nullable=True),
                time_limit_s=final.get("time_limit_s", float, nullable=True, optional=True),
            ),
            steps=tuple(_step_from(s, f"steps[{i}]") for i, s in enumerate(steps)),
            stages=tuple(_stage_from(s, f"stages[{i}]") for i, s in enumerate(stages)),
            prompt_tokens=d.get("prompt_tokens", int),
            completion_tokens=d.get("completion_tokens", int),
            model_calls=d.get("model_calls", int),
            duration_s=d.get("duration_s", float),
            models=dict(models),
            model_ids=dict(model_ids),
            plus_passed=d.get("plus_passed", bool, optional=True),
        )


# -- (de)serialisation helpers -----------------------------------------------------------------------


def _plain(obj: Any) -> dict[str, Any]:
    return dict(obj.__dict__)


def _step_dict(s: TraceStep) -> dict[str, Any]:
    out = {
        "node": s.node,
        "role": s.role,
        "iteration": s.iteration,
        "model": s.model,
        "code": s.code,
        "text": s.text,
        "feedback_result": _plain(s.feedback_result) if s.feedback_result is not None else None,
        "hidden": _plain(s.hidden) if s.hidden is not None else None,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "cached": s.cached,
        "duration_s": s.duration_s,
    }
    if s.selected is not None:
        out["selected"] = s.selected
    if s.request is not None:
        out["request"] = s.request.to_dict()
    return out


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Fields:
    """Typed access to a JSON object's fields, with errors that give the field's path."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise TrajectoryError(f"{where}: expected a JSON object, got {_kind(data)}")
        self.data, self.where = data, where

    def get(self, name: str, kind: type, *, nullable: bool = False, optional: bool = False) -> Any:
        path = name if self.where == "trajectory" else f"{self.where}.{name}"
        if name not in self.data:
            if optional:
                return None
            raise TrajectoryError(f"missing field '{path}'")
        value = self.data[name]
        if value is None and nullable:
            return None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, bool):
            ok = False
        else:
            ok = isinstance(value, kind)
        if not ok:
            wanted = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
                kind, f"a {kind.__name__}"
            )
            wanted = {dict: "an object", list: "a list"}.get(kind, wanted)
            raise TrajectoryError(
                f"field '{path}': expected {wanted}{' or null' if nullable else ''}, got {_kind(value)}"
            )
        return value


def _step_from(data: Any, where: str) -> TraceStep:
    f = _Fields(data, where)
    role = f.get("role", str)
    if role not in ROLES:
        raise TrajectoryError(f"field '{where}.role': {role!r} is not one of {', '.join(ROLES)}")
    fb = f.get("feedback_result", dict, nullable=True)
    hidden = f.get("hidden", dict, nullable=True)
    return TraceStep(
        node=f.get("node", str),
        role=role,
        iteration=f.get("iteration", int),
        model=f.get("model", str, nullable=True),
        code=f.get("code", str),
        text=f.get("text", str),
        feedback_result=_feedback_from(fb, f"{where}.feedback_result") if fb is not None else None,
        hidden=_hidden_from(hidden, f"{where}.hidden") if hidden is not None else None,
        prompt_tokens=f.get("prompt_tokens", int),
        completion_tokens=f.get("completion_tokens", int),
        cached=f.get("cached", bool),
        duration_s=f.get("duration_s", float),
        selected=f.get("selected", str, nullable=True, optional=True),
        request=_request_from(f.get("request", dict, optional=True), f"{where}.request"),
    )


def _key(value: Any, path: str) -> str:
    if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
        raise TrajectoryError(f"field '{path}': expected a SHA-256 key (64 hex digits), got {_kind(value)}")
    return value


def _request_from(data: Any, where: str) -> RequestRecord | None:
    if data is None:
        return None
    f = _Fields(data, where)
    messages = []
    for i, m in enumerate(f.get("messages", list)):
        g = _Fields(m, f"{where}.messages[{i}]")
        messages.append((g.get("role", str), _key(g.get("content", str), f"{where}.messages[{i}].content")))
    stop = f.get("stop", list)
    for i, s in enumerate(stop):
        if not isinstance(s, str):
            raise TrajectoryError(f"field '{where}.stop[{i}]': expected a string, got {_kind(s)}")
    return RequestRecord(
        messages=tuple(messages),
        temperature=f.get("temperature", float),
        top_p=f.get("top_p", float),
        max_tokens=f.get("max_tokens", int),
        stop=tuple(stop),
        seed=f.get("seed", int),
        answer=_key(f.get("answer", str), f"{where}.answer"),
    )


def _feedback_from(data: Any, where: str) -> FeedbackResult:
    f = _Fields(data, where)
    return FeedbackResult(
        source=f.get("source", str),
        status=f.get("status", str),
        error_type=f.get("error_type", str, nullable=True),
        failing_test=f.get("failing_test", str, nullable=True),
        tests_passed=f.get("tests_passed", int),
        tests_total=f.get("tests_total", int),
        time_limit_s=f.get("time_limit_s", float, nullable=True, optional=True),
    )


def _hidden_from(data: Any, where: str) -> HiddenResult:
    f = _Fields(data, where)
    return HiddenResult(
        passed=f.get("passed", bool),
        status=f.get("status", str),
        error_type=f.get("error_type", str, nullable=True),
    )


def _stage_from(data: Any, where: str) -> StageTrace:
    f = _Fields(data, where)
    iterations = []
    for i, item in enumerate(f.get("iterations", list)):
        g = _Fields(item, f"{where}.iterations[{i}]")
        iterations.append(
            StageIteration(
                iter=g.get("iter", int),
                passed=g.get("passed", bool),
                error_type=g.get("error_type", str, nullable=True),
                visible_passed=g.get("visible_passed", bool),
            )
        )
    return StageTrace(
        node=f.get("node", str),
        early_stop=f.get("early_stop", bool),
        max_iterations=f.get("max_iterations", int),
        feedback=f.get("feedback", str),
        iterations=tuple(iterations),
    )


# -- files ---------------------------------------------------------------------------------------------


def write_trajectories(path: str | os.PathLike[str], trajectories: Iterable[Trajectory]) -> Path:
    """Writes one JSON line per trajectory to ``path`` atomically (a crash leaves the old file)."""
    lines = []
    for i, t in enumerate(trajectories):
        if not isinstance(t, Trajectory):
            raise TypeError(f"write_trajectories: item {i} is a {type(t).__name__}, not a Trajectory")
        lines.append(t.to_json() + "\n")
    target = Path(path)
    atomic_write_text(target, "".join(lines))
    return target


def read_trajectories(path: str | os.PathLike[str]) -> list[Trajectory]:
    """The trajectories in a JSONL file; blank lines are skipped.

    ``TrajectoryError`` names the file, the line number and the field of the first problem.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrajectoryError(f"{p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TrajectoryError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrajectoryError(f"{p}:{number}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        try:
            out.append(Trajectory.from_dict(data))
        except TrajectoryError as exc:
            raise TrajectoryError(f"{p}:{number}: {exc}") from None
    return out


__all__ = [
    "FORMAT",
    "TEXT_LIMIT",
    "FeedbackResult",
    "FinalResult",
    "HiddenResult",
    "RequestRecord",
    "StageIteration",
    "StageTrace",
    "TraceStep",
    "Trajectory",
    "TrajectoryError",
    "read_trajectories",
    "write_trajectories",
]
