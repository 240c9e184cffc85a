"""``RaySandbox``: a sandbox whose programs run on every node of the cluster, one pool actor per node."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from neatpipe.distributed.actors import SandboxWorker
from neatpipe.distributed.cluster import EngineError, RayOptions, alive_nodes, import_ray
from neatpipe.distributed.group import ActorGroup
from neatpipe.sandbox.limits import Isolation, Limits
from neatpipe.sandbox.program import ExecResult, Program
from neatpipe.sandbox.report import IsolationReport

ROUNDS = 4  # spans per node and batch: a slow span holds a node up for a quarter of its share at most


class RaySandbox:
    """The programs of a batch spread over one sandbox actor per live node (pinned there with Ray's node
    affinity); results in input order, as :class:`~neatpipe.sandbox.Sandbox` gives them. A node takes a
    share of a batch in proportion to its sandbox workers. Needs a connected Ray."""

    def __init__(
        self,
        options: RayOptions | None = None,
        limits: Limits | None = None,
        isolation: Isolation | None = None,
    ) -> None:
        ray = import_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.options = options or RayOptions()
        self.limits = limits or Limits()
        self.isolation_options = isolation or Isolation()
        nodes = alive_nodes()
        if not nodes:
            raise EngineError("the Ray cluster has no live node to run programs on")
        remote = ray.remote(SandboxWorker)
        actors = [
            remote.options(
                num_cpus=0,  # its worker processes are the sandbox's, not Ray's; models keep their CPUs
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                **self.options.actor_options(),
            ).remote(self.options.sandbox_workers, self.limits, self.isolation_options)
            for node in nodes
        ]
        try:
            weights = ray.get([a.workers.remote() for a in actors])
        except BaseException:
            ActorGroup(actors, name="sandbox").close()
            raise
        self.group = ActorGroup(actors, weights, name="sandbox", rounds=ROUNDS, depth=2)
        self.nodes = [n["NodeID"] for n in nodes]
        self.workers = int(sum(weights))
        self._isolation: IsolationReport | None = None

    def start(self) -> RaySandbox:
        """Starts every node's workers and waits until each reported its isolation features."""
        reports = self.group.call_all("start")
        self._isolation = IsolationReport.from_dict(reports[0])
        return self

    @property
    def isolation(self) -> IsolationReport:
        """The isolation features of the first node's workers (nodes alike in setup report alike)."""
        if self._isolation is None:
            self.start()
        assert self._isolation is not None
        return self._isolation

    def run(self, program: Program) -> ExecResult:
        return self.run_many([program])[0]

    def run_many(
        self, programs: Iterable[Program], progress: Callable[[int, int], None] | None = None
    ) -> list[ExecResult]:
        """Runs ``programs`` across the nodes; ``progress(done, total)`` after each span comes back."""
        batch = list(programs)
        for program in batch:
            if not isinstance(program, Program):
                raise TypeError(f"run_many expects Program objects, got {type(program).__name__}")
        if not batch:
            return []
        return self.group.map("run_many", batch, progress)

    def where(self) -> list[dict[str, Any]]:
        """Per live sandbox actor: its node and process id."""
        return self.group.call_all("where")

    def stats(self) -> list[dict[str, int]]:
        return self.group.call_all("stats")

    def close(self) -> None:
        self.group.close()

    def __enter__(self) -> RaySandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
