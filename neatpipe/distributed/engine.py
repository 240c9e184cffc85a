"""``RayEngine``: a run's connection to Ray, its sandbox actors and its model actors, in one object that
takes them all down at the end (and stops Ray when it started it)."""

from __future__ import annotations

from typing import Any

from neatpipe.distributed.backend import RayBackend
from neatpipe.distributed.cluster import EngineError, RayOptions, connect, import_ray
from neatpipe.distributed.sandbox import RaySandbox
from neatpipe.models.spec import ModelSpec
from neatpipe.sandbox.limits import Isolation, Limits


class RayEngine:
    """Connects to Ray (or starts it on this machine) and makes :class:`RaySandbox` and
    :class:`RayBackend` objects; :meth:`close` ends every actor it made.

    >>> with RayEngine(RayOptions(num_cpus=4)) as engine:                     # doctest: +SKIP
    ...     results = engine.sandbox.run_many(programs)
    ...     coder = engine.backend("hf:Qwen/Qwen2.5-Coder-1.5B-Instruct")
    """

    name = "ray"

    def __init__(
        self,
        options: RayOptions | None = None,
        limits: Limits | None = None,
        isolation: Isolation | None = None,
    ) -> None:
        self.options = options or RayOptions()
        self.started_ray = connect(self.options)
        self.backends: list[RayBackend] = []
        try:
            self.sandbox = RaySandbox(self.options, limits, isolation)
        except BaseException:
            self._stop_ray()
            raise

    def backend(self, spec: str | ModelSpec, runner: Any = None) -> RayBackend:
        """The model of ``spec`` on its actors. ``runner`` is not sent along: a backend that runs programs
        itself (the synthetic coder) runs them in a sandbox of its own inside its actor."""
        self.backends = [b for b in self.backends if b.group.live]  # a closed backend frees its actors
        self._check_room(len(self.backends) + 1)
        backend = RayBackend(spec, self.options)
        self.backends.append(backend)
        return backend

    def _check_room(self, models: int) -> None:
        """Refuses model actors that the cluster could never place (Ray would wait for them forever)."""
        have = self.resources()
        o = self.options
        for field, resource, each in (("num_gpus", "GPU", o.num_gpus), ("model_cpus", "CPU", o.model_cpus)):
            need = models * o.model_actors * each
            if need > have.get(resource, 0.0) + 1e-9:
                raise EngineError(
                    f"ray.{field}: {models} model(s) x {o.model_actors} actor(s) x {each:g} {resource} "
                    f"need {need:g} {resource}, and the Ray cluster has {have.get(resource, 0.0):g}"
                )

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (CPU, GPU, memory), as Ray counts them."""
        return dict(import_ray().cluster_resources())

    def close(self) -> None:
        try:
            for backend in self.backends:
                backend.close()
            self.sandbox.close()
        finally:
            self.backends = []
            self._stop_ray()

    def _stop_ray(self) -> None:
        if self.started_ray:
            import_ray().shutdown()
            self.started_ray = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
