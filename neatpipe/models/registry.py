"""``load_backend``: a spec in, a ready backend out (wrapped in the completion cache when one is given).

Backend kinds map to loader functions by dotted name, so a kind's heavy imports happen only when it is
used. Adding a kind means: a spec class in :mod:`neatpipe.models.spec`, a module with
``load(spec, *, pool=None, runner=None) -> Backend``, and one line in ``LOADERS``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from neatpipe.models.base import Backend
from neatpipe.models.cache import CachedBackend, CompletionCache, open_cache
from neatpipe.models.errors import BackendUnavailableError
from neatpipe.models.spec import KINDS, ModelSpec, parse_spec

LOADERS: Mapping[str, str] = MappingProxyType(
    {
        "hf": "neatpipe.models.hf:load_hf",
        "ollama": "neatpipe.models.served:load_ollama",
        "openai": "neatpipe.models.served:load_openai",
        "synthetic": "neatpipe.synthetic:load_synthetic",
    }
)


def available_kinds() -> tuple[str, ...]:
    """Kinds that ``load_backend`` can build."""
    return tuple(k for k in KINDS if k in LOADERS)


def load_backend(
    spec: str | Mapping[str, Any] | ModelSpec,
    cache: CompletionCache | str | os.PathLike[str] | bool | None = None,
    *,
    pool: Any = None,
    runner: Any = None,
) -> Backend:
    """The backend for ``spec``; behind the completion cache when ``cache`` is given.

    ``cache``: a :class:`CompletionCache`, a path to its file, True for the default location
    (``$NEATPIPE_CACHE_DIR`` or ``~/.cache/neatpipe/completions.sqlite``), or None for no cache.
    ``pool``: a :class:`~neatpipe.models.hf.ModelPool` that local models share (their memory budget).
    ``runner``: the function that runs a batch of programs (a started sandbox's ``run_many``), for
    backends that run code themselves (the synthetic coder checks its candidates); the caller owns the
    sandbox behind it. Without one, such a backend starts a private sandbox and stops it in ``close()``.
    Loading is lazy: a local model is read on its first call, a server is contacted on its first call.
    """
    parsed = parse_spec(spec)
    target = LOADERS.get(parsed.kind)
    if target is None:
        raise BackendUnavailableError(
            f"{parsed.to_string()}: no loader is registered for the {parsed.kind!r} backend; "
            f"available kinds: {', '.join(available_kinds())}"
        )
    module_name, func_name = target.split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    backend: Backend = loader(parsed, pool=pool, runner=runner)
    completion_cache = open_cache(cache)
    return CachedBackend(backend, completion_cache) if completion_cache is not None else backend
