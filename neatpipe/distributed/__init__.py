"""The Ray engine: the evaluation of a run spread over a Ray cluster (one machine or many).

The evaluator stays in the driver (the process that runs ``neatpipe evolve``) with the result store,
the checkpoints and the completion cache; only the costly work moves:

- :class:`RayBackend`: a model backend whose batches go to Ray actors, each holding the real backend
  built from the model's spec (GPUs reserved per actor); a batch is split across a model's actors in order.
- :class:`RaySandbox`: a sandbox with one pool actor per node; ``run_many`` splits a batch of programs
  across the nodes and returns the results in order.
- :class:`RayEngine`: connects to (or starts) Ray, makes both, and takes everything down at the end.

An actor that dies is restarted by Ray and its batch sent again; a result counts only once its whole
batch came back, so nothing is lost and nothing is recorded twice. Ray is imported only when an engine
is used (``pip install 'neatpipe[ray]'``). See ``docs/engines.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.distributed.backend import RayBackend
    from neatpipe.distributed.cluster import EngineError, RayOptions, RayUnavailableError, import_ray
    from neatpipe.distributed.engine import RayEngine
    from neatpipe.distributed.sandbox import RaySandbox

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "RayBackend": ("neatpipe.distributed.backend", "RayBackend"),
        "EngineError": ("neatpipe.distributed.cluster", "EngineError"),
        "RayOptions": ("neatpipe.distributed.cluster", "RayOptions"),
        "RayUnavailableError": ("neatpipe.distributed.cluster", "RayUnavailableError"),
        "import_ray": ("neatpipe.distributed.cluster", "import_ray"),
        "RayEngine": ("neatpipe.distributed.engine", "RayEngine"),
        "RaySandbox": ("neatpipe.distributed.sandbox", "RaySandbox"),
    },
    globals(),
)

__all__ = [
    "EngineError",
    "RayBackend",
    "RayEngine",
    "RayOptions",
    "RaySandbox",
    "RayUnavailableError",
    "import_ray",
]
