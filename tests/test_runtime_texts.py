"""Trajectories keep what training needs: every model step's exact request (messages, sampling
parameters, seed) and full answer, rebuilt byte for byte from a run directory's text store.

A recording backend wraps the synthetic coder and keeps every request it was sent with its answer; an
evaluation (``write_design_files``, what ``neatpipe evaluate --out`` writes) and a small evolution run
write their run directories; every model step of every trajectory file is rebuilt with
``request_of`` / ``TextStore.call`` and compared with what the backend saw.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from neatpipe.bench import load_humaneval
from neatpipe.evolution import build
from neatpipe.evolution.designs import Design, evaluate_designs, write_design_files
from neatpipe.evolution.evaluator import Evaluator
from neatpipe.evolution.run import evolve
from neatpipe.genome import load_genome
from neatpipe.models import load_backend
from neatpipe.models.types import ChatRequest, Completion
from neatpipe.runtime import (
    TEXTS_FILE,
    TextStore,
    TextStoreError,
    Trajectory,
    read_trajectories,
    request_of,
    text_key,
)

ROOT = Path(__file__).resolve().parents[1]


class Recording:
    """A backend wrapper that keeps every request it answers with the answer's text."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.label = inner, inner.label
        self.seen: dict[ChatRequest, str] = {}

    def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        out = self.inner.generate(requests)
        for r, c in zip(requests, out, strict=True):
            assert self.seen.setdefault(r, c.text) == c.text  # a request's answer never changes
        return out

    def identity(self) -> str:
        return self.inner.identity()

    def close(self) -> None:
        self.inner.close()


def _model_steps(trajectories: list[Trajectory]) -> list[tuple[Trajectory, int]]:
    return [(t, i) for t in trajectories for i, s in enumerate(t.steps) if s.model is not None]


def _check_rebuilt(run_dir: Path, trajectories: list[Trajectory], backends: dict[str, Recording]) -> set:
    """Every model step's rebuilt request is one the backend of its model was sent, with the answer it
    gave; returns the (model, request) pairs seen."""
    rebuilt = set()
    with TextStore(run_dir / TEXTS_FILE) as store:
        for t, i in _model_steps(trajectories):
            call = store.call(t, i)
            step = t.steps[i]
            sent = backends[step.model].seen
            assert call.request in sent, (t.task_id, step.node, step.iteration)
            assert call.answer == sent[call.request]
            assert call.answer.startswith(step.text) and len(step.text) <= 4000
            assert call.model == step.model
            assert call.backend == backends[step.model].identity()
            rebuilt.add((step.model, call.request))
    return rebuilt


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, sandbox) -> tuple[Path, dict[str, Recording], list[Trajectory]]:
    out = tmp_path_factory.mktemp("evaluated") / "eval"
    backends = {
        "llama3.2-3b": Recording(load_backend("synthetic:general-3b", runner=sandbox.run_many)),
        "qwen2.5-coder-1.5b": Recording(load_backend("synthetic:coder-1.5b", runner=sandbox.run_many)),
    }
    designs = [
        Design(name, load_genome(ROOT / "genomes" / f"{name}.yaml"), name)
        for name in ("analyzer-stage", "self-refine", "best-of-3-refine")
    ]
    problems = list(load_humaneval().select([f"HumanEval/{i}" for i in (0, 2, 10, 32, 38, 129)]))
    evaluator = Evaluator(backends, sandbox, repeats=2, seed=3, result_cache=False)
    results = evaluate_designs(evaluator, designs, problems, seed=3)
    write_design_files(out, results, {"evaluations": []})
    return out, backends, [t for r in results for t in r.trajectories]


def test_every_model_step_of_an_evaluation_is_rebuilt_byte_for_byte(evaluated) -> None:
    out, backends, made = evaluated
    read = read_trajectories(out / "trajectories.jsonl")
    assert read == made and not any(t.texts for t in read)  # the texts are in the store, not the lines
    rebuilt = _check_rebuilt(out, read, backends)
    sent = {(m, r) for m, b in backends.items() for r in b.seen}
    assert rebuilt == sent  # and every request a backend was sent belongs to a step
    roles = {t.steps[i].role for t, i in _model_steps(read)}
    assert roles == {"generator", "analyzer", "refiner"}
    assert len({t.steps[i].request.seed for t, i in _model_steps(read)}) > 1
    assert all(t.model_ids for t in read)


def test_shared_prompts_are_stored_once(evaluated) -> None:
    out, _, read = evaluated
    references = [key for t, i in _model_steps(read) for _, key in t.steps[i].request.messages]
    keys = set(references) | {t.steps[i].request.answer for t, i in _model_steps(read)}
    with TextStore(out / TEXTS_FILE) as store:
        assert len(store) == len(keys)  # one row per distinct text, none missing, none extra
    assert len(set(references)) < len(references) / 2  # system prompts and problems are shared
    rows = sqlite3.connect(out / TEXTS_FILE).execute("SELECT key, data FROM texts").fetchall()
    assert all(text_key(zlib.decompress(data).decode()) == key for key, data in rows)


def test_request_of_and_the_in_memory_trajectory_agree(evaluated) -> None:
    out, _, made = evaluated
    t = next(t for t in made if any(s.role == "analyzer" for s in t.steps))
    i = next(i for i, s in enumerate(t.steps) if s.role == "analyzer")
    from_file = request_of(out, read_trajectories(out / "trajectories.jsonl")[made.index(t)], i)
    assert from_file == request_of(out, t, i)
    assert from_file.request.messages[-1].content in t.texts.values()


def test_a_damaged_text_and_an_old_trajectory_are_clear_errors(evaluated, tmp_path: Path) -> None:
    out = evaluated[0]
    read = read_trajectories(out / "trajectories.jsonl")
    t, i = _model_steps(read)[0]
    copy = tmp_path / TEXTS_FILE
    copy.write_bytes((out / TEXTS_FILE).read_bytes())
    db = sqlite3.connect(copy)
    with db:
        db.execute(
            "UPDATE texts SET data = ? WHERE key = ?", (zlib.compress(b"other"), t.steps[i].request.answer)
        )
    db.close()
    with pytest.raises(TextStoreError, match="damaged"):
        request_of(tmp_path, t, i)
    old = json.loads(t.to_json())
    for step in old["steps"]:
        step.pop("request", None)
    old.pop("model_ids")
    legacy = Trajectory.from_dict(old)  # files written before requests were kept still read
    assert legacy.steps[i].request is None and legacy.steps[i].text == t.steps[i].text
    with pytest.raises(TextStoreError, match="no recorded request"):
        request_of(out, legacy, i)
    with pytest.raises(TextStoreError, match="no text store"):
        request_of(tmp_path / "elsewhere", t, i)
    executor = next(j for j, s in enumerate(t.steps) if s.model is None)
    with pytest.raises(TextStoreError, match="makes no model request"):
        request_of(out, t, executor)


def test_a_bad_request_record_names_the_field(evaluated) -> None:
    _, _, read = evaluated
    t, i = _model_steps(read)[0]
    data = json.loads(t.to_json())
    data["steps"][i]["request"]["answer"] = "not-a-key"
    from neatpipe.runtime import TrajectoryError

    with pytest.raises(TrajectoryError, match=rf"steps\[{i}\]\.request\.answer"):
        Trajectory.from_dict(data)


EXPERIMENT = """\
format: neatpipe-experiment/1
name: texts
seed: 1
benchmark: {name: humaneval}
subset: {size: 4, policy: rotating}
validation: {size: 4, repeats: 1, champions: 1}
models:
  coder: synthetic:coder-1.5b
  small: synthetic:small-1.5b
genome: {initial: minimal, max_nodes: 6, max_stages: 2, add_stage_rate: 0.6}
neat: {population: 5, compatibility_threshold: 1.0}
budget: {generations: 2}
backend: {cache: off}
"""


def test_an_evolution_run_directory_rebuilds_every_request(tmp_path: Path, monkeypatch) -> None:
    backends: dict[str, Recording] = {}
    plain = build.build_models

    def recorded(*args: Any, **kwargs: Any) -> dict[str, Any]:
        backends.update({name: Recording(b) for name, b in plain(*args, **kwargs).items()})
        return dict(backends)

    monkeypatch.setattr(build, "build_models", recorded)
    exp = tmp_path / "exp.yaml"
    exp.write_text(textwrap.dedent(EXPERIMENT))
    evolve(exp, out=tmp_path / "run", progress=False)
    files = sorted((tmp_path / "run" / "trajectories").glob("*.jsonl.gz"))
    assert [f.name for f in files] == ["gen-0000.jsonl.gz", "gen-0001.jsonl.gz", "validation.jsonl.gz"]
    trajectories = []
    for f in files:
        with gzip.open(f, "rt") as lines:
            trajectories += [Trajectory.from_dict(json.loads(line)) for line in lines]
    rebuilt = _check_rebuilt(tmp_path / "run", trajectories, backends)
    # results reused from earlier generations write no trajectory, so not every request need be in one
    assert rebuilt and rebuilt <= {(m, r) for m, b in backends.items() for r in b.seen}


def test_no_line_is_written_when_its_texts_could_not_be_stored(
    evaluated, tmp_path: Path, monkeypatch
) -> None:
    from neatpipe.evolution.reporters import RunRecorder, partial_trajectories

    _, _, made = evaluated

    class Fitness:
        generation = 0

    class Run:
        trajectories = made[:3]

    recorder = RunRecorder(tmp_path, None, Fitness(), [], lambda: 0.0)
    monkeypatch.setattr(
        TextStore, "put_many", lambda self, texts: (_ for _ in ()).throw(TextStoreError("full"))
    )
    with pytest.raises(TextStoreError):
        recorder.keep_trajectories(Run())
    assert not partial_trajectories(tmp_path, 0).exists()
    monkeypatch.undo()
    recorder.keep_trajectories(Run())
    lines = partial_trajectories(tmp_path, 0).read_text().splitlines()
    assert [Trajectory.from_dict(json.loads(line)) for line in lines] == made[:3]
    for t, i in _model_steps(made[:3]):
        assert request_of(tmp_path, Trajectory.from_dict(json.loads(t.to_json())), i) == request_of(
            tmp_path, t, i
        )
