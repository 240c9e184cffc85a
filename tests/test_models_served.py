"""Ollama and OpenAI-compatible backends against a real HTTP server on 127.0.0.1.

The server speaks both protocols with their real request and response shapes. Its answer is a pure
function of the request (so tests can predict it); model names select behaviours: ``slow`` answers late,
``flaky`` fails with 503 the first times it sees a request, ``drop`` closes the connection without an
answer, ``drop-once`` does that once per request, and any name it does not know gets the server's 404.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from neatpipe.models import (
    BackendTimeoutError,
    CachedBackend,
    ChatRequest,
    CompletionCache,
    ModelNotAvailableError,
    ServerError,
    ServerUnreachableError,
    load_backend,
)

REPO = Path(__file__).resolve().parents[1]
KNOWN = {"coder:1.5b", "slow", "flaky", "drop", "drop-once", "tiny-coder"}
DIGEST = "sha256:6e1c2a3b"


def answer(messages: list[dict], max_tokens: int, seed: int, temperature: float, stop: list[str]):
    """The reply: the last message's words reversed, tagged with seed and temperature, cut at budget/stop."""
    words = messages[-1]["content"].split()
    reply = [f"s{seed}", f"t{temperature:g}", *reversed(words)]
    finish = "stop"
    if len(reply) > max_tokens:
        reply, finish = reply[:max_tokens], "length"
    text = " ".join(reply)
    for s in stop:
        if s in text:
            text, finish = text[: text.index(s)], "stop"
    prompt_tokens = sum(len(m["content"].split()) + 2 for m in messages)
    return text, prompt_tokens, len(reply), finish


class FakeServer:
    """A ThreadingHTTPServer on an ephemeral loopback port speaking /api/* and /v1/*."""

    def __init__(self, slow_s: float = 1.0, fail_times: int = 2):
        self.slow_s = slow_s
        self.fail_times = fail_times
        self.requests: list[tuple[str, dict | None]] = []
        self.seen: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server.record(self.path, None, self.headers)
                if self.path == "/api/tags":
                    models = [{"name": m, "model": m, "digest": DIGEST, "size": 1} for m in sorted(KNOWN)]
                    self._send(200, {"models": models})
                elif self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in KNOWN]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.record(self.path, body, self.headers)
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                self.counted = True
                try:
                    self._answer(body)
                finally:
                    self._done()

            def _done(self):
                # a request stops counting before its answer is written: once a client has read the
                # answer it may send its next request before this thread would get to run again
                if getattr(self, "counted", False):
                    self.counted = False
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self, body):
                model = body.get("model")
                ollama = self.path == "/api/chat"
                if self.path not in ("/api/chat", "/v1/chat/completions"):
                    return self._send(404, {"error": "no such endpoint"})
                if model not in KNOWN:
                    if ollama:
                        return self._send(404, {"error": f"model '{model}' not found, try pulling it first"})
                    return self._send(
                        404,
                        {
                            "error": {
                                "message": f"The model `{model}` does not exist.",
                                "type": "NotFoundError",
                                "code": 404,
                            }
                        },
                    )
                key = json.dumps(body, sort_keys=True)
                with server.lock:
                    server.seen[key] += 1
                    times = server.seen[key]
                if model == "slow":
                    time.sleep(server.slow_s)
                self._done()
                if model == "flaky" and times <= server.fail_times:
                    return self._send(503, {"error": "model is loading"})
                if model == "drop" or (model == "drop-once" and times == 1):
                    self.close_connection = True
                    return  # no status line: the client sees the connection close
                if ollama:
                    o = body["options"]
                    text, pt, ct, finish = answer(
                        body["messages"], o["num_predict"], o["seed"], o["temperature"], o.get("stop", [])
                    )
                    return self._send(
                        200,
                        {
                            "model": model,
                            "created_at": "2024-01-01T00:00:00Z",
                            "message": {"role": "assistant", "content": text},
                            "done": True,
                            "done_reason": finish,
                            "total_duration": 1000,
                            "prompt_eval_count": pt,
                            "eval_count": ct,
                        },
                    )
                text, pt, ct, finish = answer(
                    body["messages"],
                    body["max_tokens"],
                    body["seed"],
                    body["temperature"],
                    body.get("stop", []),
                )
                return self._send(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": finish,
                            }
                        ],
                        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
                    },
                )

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # clients that time out or hang up, on purpose
                server.handler_errors += 1

        self.handler_errors = 0
        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def record(self, path, body, headers):
        with self.lock:
            self.requests.append((path, body, dict(headers)))

    def posts(self, path: str) -> list[dict]:
        with self.lock:
            return [b for p, b, _ in self.requests if p == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (a port that was just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


FAST = {"retries": 2, "backoff_s": 0.01, "timeout_s": 5.0}


def batch() -> list[ChatRequest]:
    return [
        ChatRequest.user("one two three", max_tokens=16, temperature=0.7, seed=1, top_p=0.9),
        ChatRequest.user("alpha beta", system="be brief", max_tokens=3, seed=2),
        ChatRequest.user("x y z w", max_tokens=16, stop=("z",), temperature=0.2, seed=3),
        ChatRequest.user("last", max_tokens=16, seed=4, temperature=1.0),
    ]


def test_ollama_chat_batch(server):
    backend = load_backend(
        {"spec": "ollama:coder:1.5b", "base_url": server.url, "num_ctx": 2048, "concurrency": 3, **FAST}
    )
    out = backend.generate(batch())
    assert [c.text for c in out] == ["s1 t0.7 three two one", "s2 t0 beta", "s3 t0.2 w ", "s4 t1 last"]
    assert [c.finish_reason for c in out] == ["stop", "length", "stop", "stop"]
    assert [(c.prompt_tokens, c.completion_tokens) for c in out] == [(5, 5), (8, 3), (6, 6), (3, 3)]
    assert all(c.latency_s > 0 and not c.cached for c in out)
    sent = {b["options"]["seed"]: b for b in server.posts("/api/chat")}
    assert sent[1]["stream"] is False and sent[1]["model"] == "coder:1.5b"
    assert sent[1]["options"] == {
        "temperature": 0.7,
        "top_p": 0.9,
        "num_predict": 16,
        "seed": 1,
        "num_ctx": 2048,
    }
    assert sent[3]["options"]["stop"] == ["z"]
    assert sent[2]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "alpha beta"},
    ]
    (record,) = backend.usage.records
    assert (record.requests, record.prompt_tokens, record.completion_tokens) == (4, 22, 17)
    assert backend.identity() == f"ollama:coder:1.5b@{DIGEST}"
    backend.close()


def test_openai_chat_batch(server, monkeypatch):
    monkeypatch.setenv("TEST_SERVER_KEY", "sekret")
    backend = load_backend(
        {
            "spec": f"openai:{server.url}/v1#tiny-coder",
            "api_key_env": "TEST_SERVER_KEY",
            "revision": "q4",
            **FAST,
        }
    )
    out = backend.generate(batch())
    assert [c.text for c in out] == ["s1 t0.7 three two one", "s2 t0 beta", "s3 t0.2 w ", "s4 t1 last"]
    assert [c.finish_reason for c in out] == ["stop", "length", "stop", "stop"]
    assert [(c.prompt_tokens, c.completion_tokens) for c in out] == [(5, 5), (8, 3), (6, 6), (3, 3)]
    body = next(b for b in server.posts("/v1/chat/completions") if b["seed"] == 3)
    assert {
        k: body[k] for k in ("model", "temperature", "top_p", "max_tokens", "seed", "stop", "stream")
    } == {
        "model": "tiny-coder",
        "temperature": 0.2,
        "top_p": 1.0,
        "max_tokens": 16,
        "seed": 3,
        "stop": ["z"],
        "stream": False,
    }
    assert all(h.get("Authorization") == "Bearer sekret" for p, _, h in server.requests)
    assert backend.identity() == "openai:tiny-coder@q4"
    assert len(backend.usage) == 1 and backend.usage.total().requests == 4


def test_concurrency_is_bounded(server):
    server.slow_s = 0.1
    backend = load_backend({"spec": f"openai:{server.url}#slow", "concurrency": 2, **FAST})
    t0 = time.perf_counter()
    out = backend.generate([ChatRequest.user(f"q{i}", seed=i) for i in range(6)])
    assert [c.text.split()[0] for c in out] == [f"s{i}" for i in range(6)]  # in request order
    assert server.max_in_flight == 2
    assert time.perf_counter() - t0 >= 0.3 - 0.05  # three rounds of two


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_timeout_after_retries(server, kind):
    spec = "ollama:slow" if kind == "ollama" else f"openai:{server.url}#slow"
    options = {"base_url": server.url, "digest": "d"} if kind == "ollama" else {}
    backend = load_backend({"spec": spec, **options, "timeout_s": 0.2, "retries": 1, "backoff_s": 0.01})
    with pytest.raises(BackendTimeoutError) as info:
        backend.generate([ChatRequest.user("hello")])
    assert server.url in str(info.value) and "timed out (2 attempts)" in str(info.value)


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_5xx_then_success_is_retried(server, kind):
    spec = "ollama:flaky" if kind == "ollama" else f"openai:{server.url}#flaky"
    options = {"base_url": server.url, "digest": "d"} if kind == "ollama" else {}
    backend = load_backend({"spec": spec, **options, **FAST})
    (c,) = backend.generate([ChatRequest.user("a b")])
    assert c.text == "s0 t0 b a"
    assert len(server.posts("/api/chat" if kind == "ollama" else "/v1/chat/completions")) == 3


def test_5xx_that_persists_is_a_server_error(server):
    server.fail_times = 100
    backend = load_backend({"spec": f"openai:{server.url}#flaky", **FAST})
    with pytest.raises(ServerError) as info:
        backend.generate([ChatRequest.user("a")])
    assert (
        info.value.status == 503 and "model is loading" in str(info.value) and "3 attempts" in str(info.value)
    )


def test_dropped_connections(server):
    once = load_backend({"spec": f"openai:{server.url}#drop-once", **FAST})
    assert once.generate([ChatRequest.user("a b")])[0].text == "s0 t0 b a"
    always = load_backend({"spec": "ollama:drop", "base_url": server.url, "digest": "d", **FAST})
    with pytest.raises(ServerError, match="closed without a complete answer"):
        always.generate([ChatRequest.user("x")])


def test_unreachable_server_says_how_to_start_it(dead_url):
    ollama = load_backend({"spec": "ollama:coder:1.5b", "base_url": dead_url, **FAST})
    with pytest.raises(ServerUnreachableError) as info:
        ollama.generate([ChatRequest.user("x")])
    message = str(info.value)
    assert f"{dead_url}/api/chat" in message and "ollama serve" in message and "3 attempts" in message
    with pytest.raises(ServerUnreachableError, match=f"{dead_url}/api/tags"):
        load_backend({"spec": "ollama:coder:1.5b", "base_url": dead_url, **FAST}, cache=False).identity()
    openai = load_backend({"spec": f"openai:{dead_url}/v1#m", **FAST})
    with pytest.raises(ServerUnreachableError) as info:
        openai.generate([ChatRequest.user("x")])
    assert f"{dead_url}/v1/chat/completions" in str(info.value) and "vllm serve" in str(info.value)


def test_unknown_model(server):
    by_tags = load_backend({"spec": "ollama:qwen9:7b", "base_url": server.url, **FAST})
    with pytest.raises(ModelNotAvailableError, match=r"ollama pull qwen9:7b"):
        by_tags.generate([ChatRequest.user("x")])
    by_chat = load_backend({"spec": "ollama:qwen9:7b", "base_url": server.url, "digest": "d", **FAST})
    with pytest.raises(ModelNotAvailableError, match=r"not found.*ollama pull qwen9:7b"):
        by_chat.generate([ChatRequest.user("x")])
    openai = load_backend({"spec": f"openai:{server.url}/v1#nope", **FAST})
    with pytest.raises(ModelNotAvailableError, match=r"does not serve model 'nope'.*/v1/models"):
        openai.generate([ChatRequest.user("x")])


def test_ollama_tag_without_version_means_latest(server):
    KNOWN.add("plain:latest")
    try:
        backend = load_backend({"spec": "ollama:plain", "base_url": server.url, **FAST})
        assert backend.identity() == f"ollama:plain:latest@{DIGEST}"
    finally:
        KNOWN.discard("plain:latest")


_SECOND_PROCESS = textwrap.dedent(
    """
    import json, sys
    from neatpipe.models import ChatRequest, load_backend
    backend = load_backend(sys.argv[1], cache=sys.argv[2])
    out = backend.generate([ChatRequest.user("one two three", temperature=0.9, seed=5, max_tokens=8)])
    print(json.dumps({"text": out[0].text, "cached": out[0].cached, "model_calls": len(backend.inner.usage),
                      "torch": "torch" in sys.modules}))
    """
)


def test_cache_serves_a_second_process_without_a_backend_call(server, tmp_path):
    spec = f"openai:{server.url}/v1#tiny-coder"
    path = tmp_path / "c.sqlite"
    with CompletionCache(path) as cache:
        first = load_backend(spec, cache=cache)
        assert isinstance(first, CachedBackend)
        (c,) = first.generate([ChatRequest.user("one two three", temperature=0.9, seed=5, max_tokens=8)])
        assert not c.cached
    posts = len(server.posts("/v1/chat/completions"))
    script = tmp_path / "second.py"
    script.write_text(_SECOND_PROCESS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, str(script), spec, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    result = json.loads(run.stdout)
    assert result == {"text": c.text, "cached": True, "model_calls": 0, "torch": False}
    assert len(server.posts("/v1/chat/completions")) == posts  # the server never saw it again
    stats = CompletionCache(path, mode="readonly").stats()
    assert (stats.entries, stats.hits, stats.misses) == (1, 1, 1)


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_preflight_asks_the_server_once_and_names_what_is_missing(server, dead_url, kind) -> None:
    def spec(url: str, model: str) -> dict:
        text = f"ollama:{model}" if kind == "ollama" else f"openai:{url}/v1#{model}"
        return {"spec": text, **({"base_url": url} if kind == "ollama" else {}), **FAST, "retries": 0}

    load_backend(spec(server.url, "tiny-coder")).preflight()  # served: no error
    asked = [p for p, _, _ in server.requests]
    assert asked == (["/api/tags"] if kind == "ollama" else ["/v1/models"])
    assert not server.posts("/api/chat") and not server.posts("/v1/chat/completions")  # nothing generated
    with pytest.raises(ModelNotAvailableError, match="no-such-model"):
        load_backend(spec(server.url, "no-such-model")).preflight()
    with pytest.raises(ServerUnreachableError, match=dead_url):
        load_backend(spec(dead_url, "tiny-coder")).preflight()


@pytest.mark.parametrize(("batching", "in_flight"), [("generation", 3), ("genome", 1)])
def test_a_generation_keeps_a_served_model_busy_across_genomes(server, sandbox, batching, in_flight):
    """One problem per genome: only a stream over the whole generation gives the server more than one
    request at a time."""
    from neatpipe.bench import load_humaneval
    from neatpipe.evolution import Evaluator
    from neatpipe.perf.evaluation import mixed_population

    server.slow_s = 0.2
    solos = [(k, mixed_population(1, seed=k, models=("m",))[0][1].copy(k)) for k in (1, 2, 3)]
    assert all(len(g.nodes) == 1 for _, g in solos) and len({g.behaviour_hash() for _, g in solos}) == 3
    backend = load_backend({"spec": f"openai:{server.url}#slow", "concurrency": 4, **FAST})
    ev = Evaluator({"m": backend}, sandbox, result_cache=False, batching=batching)
    out = ev.evaluate_population(solos, list(load_humaneval())[:1])
    assert len(out) == 3 and len(backend.calls) == (1 if batching == "generation" else 3)
    assert server.max_in_flight == in_flight
