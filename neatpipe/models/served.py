"""Backends for models behind a server: Ollama (``/api/chat``) and OpenAI-compatible servers.

A batch fans out over a thread pool of ``concurrency`` threads (one pool per backend, created on first
use), one HTTP request per chat request over the backend's pool of keep-alive connections, and the
answers come back in request order. The server does the batching (vLLM, SGLang and llama.cpp batch
concurrent requests; Ollama does with ``OLLAMA_NUM_PARALLEL``), so ``concurrency`` should match what
the server runs at once.

What servers do differently is evened out here: stop strings are cut from the returned text (some
servers keep the stop string, some ignore it), and the sampling settings are sent explicitly.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from neatpipe.models.base import Backend
from neatpipe.models.errors import ModelNotAvailableError, ServerError
from neatpipe.models.http import HttpClient, HttpResponse, RetryPolicy
from neatpipe.models.spec import OllamaSpec, OpenAISpec
from neatpipe.models.types import ChatRequest, Completion


class _ServedBackend(Backend):
    """Shared machinery: the thread pool, in-order fan-out, and first-error propagation."""

    SERVER = "the server"
    START_HINT = ""

    def __init__(
        self, label: str, concurrency: int, policy: RetryPolicy, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(label)
        self.concurrency = concurrency
        self.policy = policy
        self.http = HttpClient(
            policy, server=self.SERVER, start_hint=self.START_HINT, connections=concurrency, headers=headers
        )
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
        text, cut = cut_at_stop(text, request.stop)
        return Completion(
            text, prompt_tokens, completion_tokens, "stop" if cut else finish, time.perf_counter() - t0
        )

    def _send(self, request: ChatRequest) -> tuple[str, int, int, str]:
        raise NotImplementedError

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        self.http.close()


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` up to the earliest of the ``stop`` strings, and whether one was found.

    Why: servers differ (vLLM leaves the stop string out, some keep it at the end, a server without stop
    support runs on past it); cut here, every server's text ends where the ``hf:`` backend's does.
    """
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


class OllamaBackend(_ServedBackend):
    """A model served by Ollama: ``POST /api/chat`` with ``stream: false`` and the sampling ``options``.

    Token counts come from ``prompt_eval_count`` and ``eval_count`` (Ollama leaves out the first when the
    whole prompt was already in its KV cache; it then counts as 0). The model's digest, asked once from
    ``/api/tags`` unless pinned with the ``digest`` option, goes into the cache key.
    """

    kind = "ollama"
    SERVER = "Ollama"
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
                resp = self.http.request_json("GET", url)
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
        # Ollama's own defaults (top_k 40, repeat_penalty 1.1) would apply unless these are sent
        options["top_k"] = self.spec.top_k or 0
        options["repeat_penalty"] = self.spec.repetition_penalty or 1.0
        if self.spec.repetition_penalty is not None:
            options["repeat_last_n"] = -1  # the whole context, as transformers' penalty
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
        if self.spec.think is not None:
            body["think"] = self.spec.think
        return body

    def _send(self, request: ChatRequest) -> tuple[str, int, int, str]:
        url = f"{self.spec.base_url}/api/chat"
        resp = self.http.request_json("POST", url, self.payload(request))
        if resp.status == 404:
            raise self._not_pulled(resp.error_text())
        if resp.status == 400 and "think" in resp.error_text():
            raise ModelNotAvailableError(
                f"Ollama at {url}: model {self.spec.tag!r} refuses think: {self.spec.think} "
                f"({resp.error_text()}); leave the think option out for a model that does not think"
            )
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
    SERVER = "the OpenAI-compatible server"
    START_HINT = (
        "Start the server first, e.g. `vllm serve MODEL --port 8000`, "
        "`llama-server -m model.gguf --port 8000`, or LM Studio's local server."
    )

    def __init__(self, spec: OpenAISpec, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        headers: dict[str, str] = {}
        if spec.api_key_env is not None:
            key = env.get(spec.api_key_env)
            if not key:
                raise ModelNotAvailableError(
                    f"{spec.to_string()}: api_key_env names {spec.api_key_env!r}, which is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        super().__init__(
            spec.to_string(),
            spec.concurrency,
            RetryPolicy(spec.timeout_s, spec.retries, spec.backoff_s),
            headers=headers,
        )
        self.spec = spec

    def identity(self) -> str:
        rev = self.spec.revision or "unversioned"
        return f"openai:{self.spec.model}@{rev}"

    def preflight(self) -> None:
        """The server answers ``GET /v1/models``; when it lists its models, this model is among them."""
        url = self.spec.chat_url.rsplit("/", 2)[0] + "/models"
        resp = self.http.request_json("GET", url)
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
            "stream": False,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        # vLLM and SGLang take these beside the OpenAI fields (vLLM would otherwise apply the model's
        # generation_config); strict servers refuse unknown fields, so they go only when set
        if self.spec.top_k is not None:
            body["top_k"] = self.spec.top_k
        if self.spec.repetition_penalty is not None:
            body["repetition_penalty"] = self.spec.repetition_penalty
        return body

    def _send(self, request: ChatRequest) -> tuple[str, int, int, str]:
        url = self.spec.chat_url
        resp = self.http.request_json("POST", url, self.payload(request))
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
