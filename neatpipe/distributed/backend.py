"""``RayBackend``: a model backend in the driver whose batches are answered by Ray actors.

Each actor builds the real backend from the model's spec (:class:`~neatpipe.distributed.actors.ModelWorker`),
so a local model loads on the GPU Ray gave the actor and a served model is asked from the node. The
driver keeps the completion cache: wrap a ``RayBackend`` in a ``CachedBackend`` (as the run builder
does) and cached answers never reach an actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neatpipe.distributed.actors import BackendFactory, ModelWorker
from neatpipe.distributed.cluster import RayOptions, import_ray
from neatpipe.distributed.group import ActorGroup
from neatpipe.models.base import Backend
from neatpipe.models.spec import ModelSpec, parse_spec
from neatpipe.models.types import ChatRequest, Completion


class RayBackend(Backend):
    """The backend of ``spec`` served by ``options.model_actors`` actors; a batch is split across them in
    order. ``factory`` builds the backend inside each actor (default: the registry's ``load_backend``).
    Needs a connected Ray (``ray.init`` or :class:`~neatpipe.distributed.RayEngine`)."""

    def __init__(
        self,
        spec: str | ModelSpec,
        options: RayOptions | None = None,
        *,
        factory: BackendFactory | None = None,
    ) -> None:
        ray = import_ray()
        self.spec = parse_spec(spec)
        self.options = options or RayOptions()
        remote = ray.remote(ModelWorker).options(
            num_gpus=self.options.num_gpus,
            num_cpus=self.options.model_cpus,
            **self.options.actor_options(),
        )
        actors = [remote.remote(self.spec, factory) for _ in range(self.options.model_actors)]
        self.group = ActorGroup(actors, name=f"model {self.spec.to_string()}")
        try:
            info = ray.get(actors[0].info.remote())
        except BaseException:
            self.group.close()
            raise
        super().__init__(info["label"])
        self.kind = info["kind"]
        self.synthetic = bool(info["synthetic"])
        self._identity = str(info["identity"])

    @property
    def actors(self) -> Sequence[Any]:
        """The live actors (for tests and health checks)."""
        return [self.group.actors[i] for i in self.group.live]

    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return self.group.map("generate", requests)

    def identity(self) -> str:
        return self._identity

    def preflight(self) -> None:
        self.group.call_all("preflight")

    def stats(self) -> list[dict[str, int]]:
        """Per live actor: process id, calls and requests it answered since it (re)started."""
        return self.group.call_all("stats")

    def close(self) -> None:
        self.group.close()
