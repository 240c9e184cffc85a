"""Model backends: one batched chat interface over transformers, Ollama and OpenAI-compatible servers.

>>> from neatpipe.models import ChatRequest, CompletionCache, load_backend
>>> backend = load_backend("hf:./models/tiny", cache=CompletionCache())          # doctest: +SKIP
>>> answers = backend.generate([ChatRequest.user(p, max_tokens=256) for p in prompts])  # doctest: +SKIP
>>> backend.usage.total()                                                        # doctest: +SKIP

Importing this package does not import torch; the transformers backend does when it loads a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.models.base import Backend
    from neatpipe.models.cache import (
        CACHE_MODES,
        CachedBackend,
        CacheStats,
        CompletionCache,
        ModelCacheStats,
        canonical_request,
        default_cache_path,
        request_key,
    )
    from neatpipe.models.errors import (
        BackendTimeoutError,
        BackendUnavailableError,
        CacheError,
        ModelError,
        ModelNotAvailableError,
        OutOfMemoryError,
        RequestError,
        ServerError,
        ServerUnreachableError,
        SpecError,
    )
    from neatpipe.models.hf import HFBackend, ModelPool
    from neatpipe.models.registry import LOADERS, available_kinds, load_backend
    from neatpipe.models.served import OllamaBackend, OpenAIBackend
    from neatpipe.models.spec import (
        KINDS,
        HFSpec,
        ModelSpec,
        OllamaSpec,
        OpenAISpec,
        SyntheticSpec,
        parse_spec,
        spec_to_mapping,
    )
    from neatpipe.models.tiny import TinyModelInfo, make_tiny_model
    from neatpipe.models.types import ChatMessage, ChatRequest, Completion
    from neatpipe.models.usage import CallRecord, Usage, UsageLog

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Backend": ("neatpipe.models.base", "Backend"),
        "CACHE_MODES": ("neatpipe.models.cache", "CACHE_MODES"),
        "CachedBackend": ("neatpipe.models.cache", "CachedBackend"),
        "CacheStats": ("neatpipe.models.cache", "CacheStats"),
        "CompletionCache": ("neatpipe.models.cache", "CompletionCache"),
        "ModelCacheStats": ("neatpipe.models.cache", "ModelCacheStats"),
        "canonical_request": ("neatpipe.models.cache", "canonical_request"),
        "default_cache_path": ("neatpipe.models.cache", "default_cache_path"),
        "request_key": ("neatpipe.models.cache", "request_key"),
        "BackendTimeoutError": ("neatpipe.models.errors", "BackendTimeoutError"),
        "BackendUnavailableError": ("neatpipe.models.errors", "BackendUnavailableError"),
        "CacheError": ("neatpipe.models.errors", "CacheError"),
        "ModelError": ("neatpipe.models.errors", "ModelError"),
        "ModelNotAvailableError": ("neatpipe.models.errors", "ModelNotAvailableError"),
        "OutOfMemoryError": ("neatpipe.models.errors", "OutOfMemoryError"),
        "RequestError": ("neatpipe.models.errors", "RequestError"),
        "ServerError": ("neatpipe.models.errors", "ServerError"),
        "ServerUnreachableError": ("neatpipe.models.errors", "ServerUnreachableError"),
        "SpecError": ("neatpipe.models.errors", "SpecError"),
        "HFBackend": ("neatpipe.models.hf", "HFBackend"),
        "ModelPool": ("neatpipe.models.hf", "ModelPool"),
        "LOADERS": ("neatpipe.models.registry", "LOADERS"),
        "available_kinds": ("neatpipe.models.registry", "available_kinds"),
        "load_backend": ("neatpipe.models.registry", "load_backend"),
        "OllamaBackend": ("neatpipe.models.served", "OllamaBackend"),
        "OpenAIBackend": ("neatpipe.models.served", "OpenAIBackend"),
        "KINDS": ("neatpipe.models.spec", "KINDS"),
        "HFSpec": ("neatpipe.models.spec", "HFSpec"),
        "ModelSpec": ("neatpipe.models.spec", "ModelSpec"),
        "OllamaSpec": ("neatpipe.models.spec", "OllamaSpec"),
        "OpenAISpec": ("neatpipe.models.spec", "OpenAISpec"),
        "SyntheticSpec": ("neatpipe.models.spec", "SyntheticSpec"),
        "parse_spec": ("neatpipe.models.spec", "parse_spec"),
        "spec_to_mapping": ("neatpipe.models.spec", "spec_to_mapping"),
        "TinyModelInfo": ("neatpipe.models.tiny", "TinyModelInfo"),
        "make_tiny_model": ("neatpipe.models.tiny", "make_tiny_model"),
        "ChatMessage": ("neatpipe.models.types", "ChatMessage"),
        "ChatRequest": ("neatpipe.models.types", "ChatRequest"),
        "Completion": ("neatpipe.models.types", "Completion"),
        "CallRecord": ("neatpipe.models.usage", "CallRecord"),
        "Usage": ("neatpipe.models.usage", "Usage"),
        "UsageLog": ("neatpipe.models.usage", "UsageLog"),
    },
    globals(),
)


__all__ = [
    "CACHE_MODES",
    "KINDS",
    "LOADERS",
    "Backend",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "CacheError",
    "CacheStats",
    "CachedBackend",
    "CallRecord",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "CompletionCache",
    "HFBackend",
    "HFSpec",
    "ModelCacheStats",
    "ModelError",
    "ModelNotAvailableError",
    "ModelPool",
    "ModelSpec",
    "OllamaBackend",
    "OllamaSpec",
    "OpenAIBackend",
    "OpenAISpec",
    "OutOfMemoryError",
    "RequestError",
    "ServerError",
    "ServerUnreachableError",
    "SpecError",
    "SyntheticSpec",
    "TinyModelInfo",
    "Usage",
    "UsageLog",
    "available_kinds",
    "canonical_request",
    "default_cache_path",
    "load_backend",
    "make_tiny_model",
    "parse_spec",
    "request_key",
    "spec_to_mapping",
]
