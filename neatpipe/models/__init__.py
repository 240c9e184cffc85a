"""Model backends: one batched chat interface over transformers, Ollama and OpenAI-compatible servers.

>>> from neatpipe.models import ChatRequest, CompletionCache, load_backend
>>> backend = load_backend("hf:./models/tiny", cache=CompletionCache())          # doctest: +SKIP
>>> answers = backend.generate([ChatRequest.user(p, max_tokens=256) for p in prompts])  # doctest: +SKIP
>>> backend.usage.total()                                                        # doctest: +SKIP

Importing this package does not import torch; the transformers backend does when it loads a model.
"""

from __future__ import annotations

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
