"""The Ray engine on a local Ray instance (started once for the module, 2 CPUs): a run on Ray is the run
in one process with the same seed, a resumed Ray run is the uninterrupted one, a model actor killed in
the middle of a batch is replaced and the batch sent again (nothing lost, nothing recorded twice), and a
missing Ray or a wrong ``ray:`` field is a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray (in the dev extras)")

from test_evolve_resume import log_lines, outcome  # noqa: E402 - the resume tests' comparison

from neatpipe.bench import load_humaneval  # noqa: E402
from neatpipe.distributed import EngineError, RayBackend, RayOptions, RaySandbox  # noqa: E402
from neatpipe.evolution.run import evolve  # noqa: E402
from neatpipe.models import load_backend  # noqa: E402
from neatpipe.models.base import Backend  # noqa: E402
from neatpipe.models.cache import CachedBackend, CompletionCache  # noqa: E402
from neatpipe.models.types import ChatRequest  # noqa: E402
from neatpipe.runtime.messages import generator_messages  # noqa: E402
from neatpipe.sandbox import Program, Sandbox, TestCase  # noqa: E402

EXPERIMENT = """\
format: neatpipe-experiment/1
name: ray-engine
seed: 5
benchmark: {name: humaneval}
subset: {size: 5, policy: rotating}
validation: {size: 4, repeats: 2, champions: 2}
models:
  coder: synthetic:coder-1.5b
  small: synthetic:small-1.5b
genome:
  max_nodes: 6
  max_stages: 2
  add_stage_rate: 0.6
neat:
  population: 6
  compatibility_threshold: 0.6
budget: {generations: 2}
backend: {cache: off}
ray: {sandbox_workers: 2, max_restarts: 2}
"""


STORE = 200 * 1024 * 1024  # bytes of object store per Ray node


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One Ray instance for the module; the engine finds it connected and leaves it running."""
    # a small object store: the tests move little data, and a CI container's /dev/shm may be small
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=STORE)
    # the factories below live in this test module, which Ray's workers cannot import: send them by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exp") / "ray-engine.yaml"
    path.write_text(EXPERIMENT)
    return path


@pytest.fixture(scope="module")
def local_run(experiment: Path, tmp_path_factory):
    return evolve(experiment, out=tmp_path_factory.mktemp("local") / "run", progress=False)


@pytest.fixture(scope="module")
def ray_run(experiment: Path, tmp_path_factory):
    return evolve(experiment, out=tmp_path_factory.mktemp("ray") / "run", progress=False, engine="ray")


def test_a_ray_run_is_the_run_in_one_process(local_run, ray_run) -> None:
    local, on_ray = log_lines(local_run.run_dir), log_lines(ray_run.run_dir)
    assert [r["generation"] for r in local] == [0, 1]
    assert len({r["best_genome"] for r in local}) > 1 and local[0]["problems"] != local[1]["problems"]
    assert on_ray == local
    assert outcome(ray_run.run_dir) == outcome(local_run.run_dir)
    assert ray_run.champion.behaviour_hash() == local_run.champion.behaviour_hash()
    state = json.loads((ray_run.run_dir / "run.json").read_text())
    assert state["options"]["engine"] == "ray"


def test_a_resumed_ray_run_is_the_uninterrupted_one(experiment: Path, ray_run, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = evolve(experiment, out=run_dir, progress=False, engine="ray", generations=1)
    assert [r.generation for r in first.history] == [0]
    resumed = evolve(resume=run_dir, generations=2, progress=False)  # the engine kept in run.json
    assert log_lines(run_dir) == log_lines(ray_run.run_dir)
    assert outcome(run_dir) == outcome(ray_run.run_dir)
    assert resumed.champion.behaviour_hash() == ray_run.champion.behaviour_hash()


def test_a_run_started_in_one_process_continues_on_ray(experiment: Path, ray_run, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    evolve(experiment, out=run_dir, progress=False, generations=1)
    evolve(resume=run_dir, generations=2, progress=False, engine="ray")
    assert json.loads((run_dir / "run.json").read_text())["options"]["engine"] == "ray"
    assert log_lines(run_dir) == log_lines(ray_run.run_dir)
    assert outcome(run_dir) == outcome(ray_run.run_dir)


# -- a model actor killed in the middle of a batch --------------------------------------------------------


class SlowCounting(Backend):
    """The synthetic coder, slowed down and counted in files: ``started-<pid>-<n>`` when a batch begins,
    a line in ``done`` when it is answered, so a test can kill the actor mid-batch and count the work."""

    def __init__(self, inner: Backend, where: Path) -> None:
        super().__init__(inner.label)
        self.inner, self.where, self.kind, self.synthetic = inner, where, inner.kind, True
        self.started = 0

    def identity(self) -> str:
        return self.inner.identity()

    def _generate(self, requests):
        import os

        self.started += 1
        (self.where / f"started-{os.getpid()}-{self.started}").touch()
        time.sleep(1.5)
        out = self.inner.generate(requests)
        with open(self.where / "done", "a") as f:
            f.write(f"{len(requests)}\n")
        return out

    def close(self) -> None:
        self.inner.close()


def slow_counting(where: Path, spec):
    return SlowCounting(load_backend(spec), where)


def test_a_killed_model_actor_is_replaced_and_its_batch_sent_again(tmp_path: Path) -> None:
    problems = list(load_humaneval())[:8]
    requests = [
        ChatRequest(generator_messages(p, 0), temperature=0.8, seed=i) for i, p in enumerate(problems)
    ]
    requests += requests[:3]  # duplicates in the batch are paid once, by the cache
    with load_backend("synthetic:coder-1.5b") as local:
        expected = [c.text for c in local.generate(requests)]
    assert len(set(expected)) > 4
    backend = RayBackend(
        "synthetic:coder-1.5b", RayOptions(max_restarts=2), factory=partial(slow_counting, tmp_path)
    )
    cached = CachedBackend(backend, CompletionCache(tmp_path / "completions.sqlite"))
    try:
        (actor,) = backend.actors
        pid_before = backend.stats()[0]["pid"]
        answers: list = []
        call = threading.Thread(target=lambda: answers.extend(cached.generate(requests)))
        call.start()
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("started-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp_path.glob("started-*")), "the batch never started"
        ray.kill(actor, no_restart=False)  # mid-batch: it sleeps 1.5 s before answering
        call.join(120)
        assert not call.is_alive()
        assert [c.text for c in answers] == expected
        started = sorted(p.name for p in tmp_path.glob("started-*"))
        assert len(started) == 2 and len({name.split("-")[1] for name in started}) == 2  # two processes
        assert (tmp_path / "done").read_text().split() == ["8"]  # one batch answered, distinct requests
        (stats,) = backend.stats()
        assert stats["pid"] != pid_before and (stats["calls"], stats["requests"]) == (1, 8)
        assert cached.cache.stats().entries == 8
        again = cached.generate(requests)  # every answer is cached in the driver: no actor is asked
        assert [c.text for c in again] == expected and all(c.cached for c in again)
        assert backend.stats()[0]["calls"] == 1 and len(list(tmp_path.glob("started-*"))) == 2
    finally:
        cached.close()


def test_the_sandbox_actor_gives_the_local_verdicts_in_order() -> None:
    programs = [
        Program(f"def f(x):\n    return x + {i % 3}", (TestCase("assert f(1) == 2"),)) for i in range(30)
    ]
    programs[7] = Program("def f(x):\n    return f(x)", (TestCase("assert f(1) == 2"),))
    with Sandbox(workers=2) as local:
        expected = [(r.status, r.error_type, r.failing_test) for r in local.run_many(programs)]
    seen = []
    with RaySandbox(RayOptions(sandbox_workers=2)) as sandbox:
        results = sandbox.run_many(programs, progress=lambda done, total: seen.append((done, total)))
        assert len(sandbox.where()) == 1
    assert [(r.status, r.error_type, r.failing_test) for r in results] == expected
    assert results[7].error_type == "RecursionError"
    assert seen[-1] == (30, 30)


def test_model_actors_the_cluster_cannot_place_are_refused_before_any_work(tmp_path: Path) -> None:
    path = tmp_path / "gpus.yaml"
    path.write_text(EXPERIMENT.replace("max_restarts: 2}", "max_restarts: 2, num_gpus: 1}"))
    with pytest.raises(EngineError, match=r"ray.num_gpus: 1 model\(s\) x 1 actor\(s\) x 1 GPU need 1 GPU"):
        evolve(path, out=tmp_path / "run", progress=False, engine="ray")
    assert not (tmp_path / "run").exists()
    path.write_text(EXPERIMENT.replace("max_restarts: 2}", "max_restarts: 2, model_actors: 2}"))
    with pytest.raises(EngineError, match=r"ray.model_cpus: 2 model\(s\) x 2 actor\(s\) x 1 CPU need 4 CPU"):
        evolve(path, out=tmp_path / "run", progress=False, engine="ray")


# -- errors ---------------------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path, block_ray: bool = False) -> subprocess.CompletedProcess:
    block = "import sys; sys.modules['ray'] = None; " if block_ray else ""
    code = f"{block}from neatpipe.cli import main; raise SystemExit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_engine_ray_without_ray_is_a_one_line_error_with_the_install_hint(
    experiment: Path, tmp_path: Path
) -> None:
    done = run_cli("evolve", str(experiment), "--engine", "ray", "--out", "run", cwd=tmp_path, block_ray=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'neatpipe[ray]'" in lines[0], done.stderr
    assert not (tmp_path / "run").exists()


def test_a_wrong_ray_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(EXPERIMENT.replace("ray: {sandbox_workers: 2, max_restarts: 2}", "ray: {num_gpus: -1}"))
    done = run_cli("evolve", str(path), "--engine", "ray", cwd=tmp_path)
    assert done.returncode == 2
    assert "ray.num_gpus: must be at least 0.0, got -1.0" in done.stderr
    path.write_text(EXPERIMENT.replace("ray: {sandbox_workers: 2, max_restarts: 2}", "engine: rays"))
    done = run_cli("evolve", str(path), cwd=tmp_path)
    assert done.returncode == 2 and "engine: 'rays' is not one of local, ray" in done.stderr
