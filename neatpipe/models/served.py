"""Backends for models behind a server: Ollama (``/api/chat``) and OpenAI-compatible servers.

A batch fans out over a thread pool of ``concurrency`` threads (one pool per backend, created on first
use), one HTTP request per chat request, and the answers come back in request order. The server does
the batching (vLLM, SGLang and llama.cpp batch concurrent requests; Ollama does with
``OLLAMA_NUM_PARALLEL``), so ``concurrency`` should match what the server runs at once.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from neatpipe.models.base import Backend
from neatpipe.models.errors import ModelNotAvailableError, ServerError
from neatpipe.models.http import HttpResponse, RetryPolicy, request_json
from neatpipe.models.spec import OllamaSpec, OpenAISpec
from neatpipe.models.types import ChatRequest, Completion


class _ServedBackend(Backend):
    """Shared machinery: the thread pool, in-order fan-out, and first-error propagation."""

    def __init__(self, label: str, concurrency: int, policy: RetryPolicy) -> None:
        super().__init__(label)
        self.concurrency = concurrency
        self.policy = policy
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"neatpipe-{self.kind}")
            return self._pool

    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        if len(requests) == 1:
            return [self._timed(requests[0])]
        pool = self._executor()
        futures: list[Future[Completion]] = [pool.submit(self._timed, r) for r in requests]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def _timed(self, request: ChatRequest) -> Completion:
        t0 = time.perf_counter()
        text, prompt_tokens, completion_tokens, finish = self._send(request)
        return Completion(text, prompt_tokens, completion_tokens, finish, time.perf_counter() - t0)

    def _send(self, request: ChatRequest) -> tuple[str, int, int, str]:
        raise NotImplementedError

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


class OllamaBackend(_ServedBackend):
    """A model served by Ollama: ``POST /api/chat`` with ``stream: false`` and the sampling ``options``.

    Token counts come from ``prompt_eval_count`` and ``eval_count`` (Ollama leaves out the first when the
    whole prompt was already in its KV cache; it then counts as 0). The model's digest, asked once from
    ``/api/tags`` unless pinned with the ``digest`` option, goes into the cache key.
    """

    kind = "ollama"
    START_HINT = "Start it with `ollama serve` (or point base_url at where it listens)."

    def __init__(self, spec: OllamaSpec) -> None:
        super().__init__(
            spec.to_string(), spec.concurrency, RetryPolicy(spec.timeout_s, spec.retries, spec.backoff_s)
        )
        self.spec = spec
        self._digest = spec.digest
        self._digest_lock = threading.Lock()

    @staticmethod
    def _full_tag(tag: str) -> str:
        return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"

    def _not_pulled(self, detail: str) -> ModelNotAvailableError:
        return ModelNotAvailableError(
            f"Ollama at {self.spec.base_url} has no model {self.spec.tag!r} ({detail}); "
            f"pull it with `ollama pull {self.spec.tag}`"
        )

    def identity(self) -> str:
        with self._digest_lock:
            if self._digest is None:
                url = f"{self.spec.base_url}/api/tags"
                resp = request_json(
                    "GET", url, None, policy=self.policy, server="Ollama", start_hint=self.START_HINT
                )
                if resp.status != 200:
                    raise ServerError(
                        f"Ollama at {url}: HTTP {resp.status}: {resp.error_text()}", resp.status
                    )
                wanted = self._full_tag(self.spec.tag)
                for m in resp.json().get("models", []):
                    names = {self._full_tag(str(m.get("name", ""))), self._full_tag(str(m.get("model", "")))}
                    if wanted in names:
                        self._digest = str(m.get("digest") or "unknown")
                        break
                else:
                    raise self._not_pulled("not in `ollama list`")
            return f"ollama:{self._full_tag(self.spec.tag)}@{self._digest}"

    def preflight(self) -> None:
        """The server answers and has pulled the model (its digest is asked for once, here)."""
        self.identity()

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        options: dict[str, Any] = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "num_predict": request.max_tokens,
            "seed": request.seed,
        }
        if request.stop:
            options["stop"] = list(request.stop)
        if self.spec.num_ctx is not None:
            options["num_ctx"] = self.spec.num_ctx
        body: dict[str, Any] = {
            "model": self.spec.tag,
            "messages": request.messages_as_dicts(),
            "stream": False,
            "options": options,
        }
        if self.spec.keep_alive is not None:
            body["keep_alive"] = self.spec.keep_alive
        return body

    def _send(self, request: ChatRequest) -> tuple[str, int, int, str]:
        url = f"{self.spec.base_url}/api/chat"
        resp = request_json(
            "POST",
            url,
            self.payload(request),
            policy=self.policy,
            server="Ollama",
            start_hint=self.START_HINT,
        )
        if resp.status == 404:
            raise self._not_pulled(resp.error_text())
        if resp.status != 200:
            raise ServerError(f"Ollama at {url}: HTTP {resp.status}: {resp.error_text()}", resp.status)
        data = _json_object(resp, url, "Ollama")
        message = data.get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise ServerError(f"Ollama at {url}: answer has no message.content: {resp.body[:200]!r}")
        finish = "length" if data.get("done_reason") == "length" else "stop"
        return text, _count(data.get("prompt_eval_count")), _count(data.get("eval_count")), finish


class OpenAIBackend(_ServedBackend):
    """Any OpenAI-compatible server: ``POST /v1/chat/completions`` with ``seed``, ``max_tokens``, ``stop``.

    Such servers report no weight digest, so the cache keys on the model name and the ``revision`` you
    declare in the spec: set it when the weights behind a name change.
    """

    kind = "openai"
    START_HINT = (
        "Start the server first, e.g. `vllm serve MODEL --port 8000`, "
        "`llama-server -m model.gguf --port 8000`, or LM Studio's local server."
    )

    def __init__(self, spec: OpenAISpec, environ: dict[str, str] | None = None) -> None:
        super().__init__(
            spec.to_string(), spec.concurrency, RetryPolicy(spec.timeout_s, spec.retries, spec.backoff_s)
        )
        self.spec = spec
        env = os.environ if environ is None else environ
        self._headers: dict[str, str] = {}
        if spec.api_key_env is not None:
            key = env.get(spec.api_key_env)
            if not key:
                raise ModelNotAvailableError(
                    f"{spec.to_string()}: api_key_env names {spec.api_key_env!r}, which is not set"
                )
            self._headers["Authorization"] = f"Bearer {key}"

    def identity(self) -> str:
        rev = self.spec.revision or "unversioned"
        return f"openai:{self.spec.model}@{rev}"

    def preflight(self) -> None:
        """The server answers ``GET /v1/models``; when it lists its models, this model is among them."""
        url = self.spec.chat_url.rsplit("/", 2)[0] + "/models"
        resp = request_json(
            "GET",
            url,
            None,
            policy=self.policy,
            server="the OpenAI-compatible server",
            start_hint=self.START_HINT,
            headers=self._headers,
        )
        if resp.status in (404, 405):
            return  # a server without the listing: it answered, the first request will tell the rest
        if resp.status != 200:
            raise ServerError(f"{url}: HTTP {resp.status}: {resp.error_text()}", resp.status)
        data = _json_object(resp, url, "the OpenAI-compatible server")
        listed = data.get("data")
        if isinstance(listed, list):
            names = {str(m.get("id")) for m in listed if isinstance(m, dict)}
            if names and self.spec.model not in names:
                raise ModelNotAvailableError(
                    f"the server at {url} does not serve model {self.spec.model!r}; it lists "
                    f"{', '.join(sorted(names)[:10])}"
                )

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": request.messages_as_dicts(),
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
            "n": 1,
            "stream": False,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        return body

    def _send(self, request: ChatRequest) -> tuple[str, int, int, str]:
        url = self.spec.chat_url
        resp = request_json(
            "POST",
            url,
            self.payload(request),
            policy=self.policy,
            server="the OpenAI-compatible server",
            start_hint=self.START_HINT,
            headers=self._headers,
        )
        if resp.status == 404:
            raise ModelNotAvailableError(
                f"the server at {url} does not serve model {self.spec.model!r} ({resp.error_text()}); "
                f"check the names it lists at {self.spec.chat_url.rsplit('/', 2)[0]}/models"
            )
        if resp.status != 200:
            raise ServerError(f"{url}: HTTP {resp.status}: {resp.error_text()}", resp.status)
        data = _json_object(resp, url, "the OpenAI-compatible server")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ServerError(f"{url}: answer has no choices: {resp.body[:200]!r}")
        message = choices[0].get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        text = "" if text is None else text
        if not isinstance(text, str):
            raise ServerError(f"{url}: choices[0].message.content is not a string: {resp.body[:200]!r}")
        finish = "length" if choices[0].get("finish_reason") == "length" else "stop"
        usage = data.get("usage") or {}
        return text, _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")), finish


def _json_object(resp: HttpResponse, url: str, server: str) -> dict[str, Any]:
    try:
        data = resp.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServerError(
            f"{server} at {url} answered with invalid JSON ({exc}): {resp.body[:200]!r}"
        ) from None
    if not isinstance(data, dict):
        raise ServerError(f"{server} at {url} answered with {type(data).__name__}, not a JSON object")
    return data


def load_ollama(spec: OllamaSpec, *, pool: object = None, runner: object = None) -> OllamaBackend:
    """Registry entry for ``ollama:`` (``pool`` is for local models and is ignored)."""
    return OllamaBackend(spec)


def load_openai(spec: OpenAISpec, *, pool: object = None, runner: object = None) -> OpenAIBackend:
    """Registry entry for ``openai:`` (``pool`` is for local models and is ignored)."""
    return OpenAIBackend(spec)
