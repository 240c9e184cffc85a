"""The Ray engine on a simulated two-node cluster (``ray.cluster_utils.Cluster``, one CPU per node, both
on this machine): one sandbox actor per node, a batch of programs spread over both and returned in order;
a node that leaves in the middle of a batch loses no program; a model's batch split across two actors
comes back in order. The engine joins the cluster by its address, as ``ray.address`` does."""

from __future__ import annotations

import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray (in the dev extras)")

from ray.cluster_utils import Cluster  # noqa: E402

from neatpipe.bench import load_humaneval  # noqa: E402
from neatpipe.distributed import RayBackend, RayEngine, RayOptions  # noqa: E402
from neatpipe.models import load_backend  # noqa: E402
from neatpipe.models.types import ChatRequest  # noqa: E402
from neatpipe.runtime.messages import generator_messages  # noqa: E402
from neatpipe.sandbox import Program, Sandbox, TestCase  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    store = 200 * 1024 * 1024  # a small object store per node: the tests move little data
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store})
    cluster.add_node(num_cpus=1, object_store_memory=store)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def engine(cluster):
    with RayEngine(RayOptions(address=cluster.address, sandbox_workers=1, max_restarts=1)) as engine:
        assert engine.started_ray  # it connected itself, so it disconnects at the end
        yield engine
    assert not ray.is_initialized()


def programs(n: int, sleep_s: float = 0.0) -> list[Program]:
    """Each program's verdict depends on its index, so results out of order would show."""
    pause = f"import time\ntime.sleep({sleep_s})\n" if sleep_s else ""
    return [
        Program(f"{pause}def f(x):\n    return x + {i % 3}", (TestCase("assert f(1) == 2"),), label=str(i))
        for i in range(n)
    ]


def verdicts(results) -> list[tuple]:
    return [(r.status, r.error_type, r.failing_test) for r in results]


@pytest.fixture(scope="module")
def expected() -> list[tuple]:
    with Sandbox(workers=1) as local:
        return verdicts(local.run_many(programs(40)))


def test_programs_run_on_both_nodes_and_come_back_in_order(engine, expected) -> None:
    where = engine.sandbox.where()
    assert len({w["node"] for w in where}) == 2 == len(engine.sandbox.nodes)
    before = [s["batches"] for s in engine.sandbox.stats()]
    results = engine.sandbox.run_many(programs(40))
    assert verdicts(results) == expected
    after = [s["batches"] for s in engine.sandbox.stats()]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)  # both nodes worked


def test_a_batch_split_across_two_model_actors_comes_back_in_order(engine) -> None:
    requests = [
        ChatRequest(generator_messages(p, 0), temperature=0.8, seed=i)
        for i, p in enumerate(list(load_humaneval())[:9])
    ]
    with load_backend("synthetic:coder-1.5b") as local:
        expected = [c.text for c in local.generate(requests)]
    backend = RayBackend("synthetic:coder-1.5b", RayOptions(model_actors=2))
    try:
        assert [c.text for c in backend.generate(requests)] == expected
        assert sorted(s["requests"] for s in backend.stats()) == [4, 5]
    finally:
        backend.close()


def test_a_node_that_leaves_mid_batch_loses_no_program(cluster, engine, expected) -> None:
    """Run last: it takes the second node away. Its sandbox actor cannot come back there (it is pinned
    to the node), so Ray gives it up and its spans go to the other node."""
    head = ray.get_runtime_context().get_node_id()
    worker = next(n for n in cluster.list_all_nodes() if n.node_id != head)
    done: list = []
    progress: list[int] = []
    call = threading.Thread(
        target=lambda: done.extend(
            engine.sandbox.run_many(programs(40, 0.1), progress=lambda d, n: progress.append(d))
        )
    )
    call.start()
    deadline = time.monotonic() + 60
    while not progress and time.monotonic() < deadline:
        time.sleep(0.02)
    assert progress and progress[-1] < 40, "the batch finished before the node could leave"
    cluster.remove_node(worker)
    call.join(120)
    assert not call.is_alive()
    assert verdicts(done) == expected
    assert engine.sandbox.group.lost == 1 and len(engine.sandbox.where()) == 1
