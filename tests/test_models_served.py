"""Ollama and OpenAI-compatible backends against a real HTTP server on 127.0.0.1.

The server speaks both protocols with their real request and response shapes. Its answer is a pure
function of the request (so tests can predict it); model names select behaviours: ``slow`` answers late,
``flaky`` fails with 503 the first times it sees a request, ``drop`` closes the connection without an
answer, ``drop-once`` does that once per request, ``limited`` answers 429 with ``Retry-After`` the first
times, ``drip-body`` and ``drip-head`` send their answer (body, or status line and headers) a byte at a
time, ``keeps-stop`` returns the stop string with the text and ``ignores-stop`` runs on past it, and any
name it does not know gets the server's 404. It speaks HTTP/1.1, so connections are kept alive; it
records the client port of every request.
"""

from __future__ import annotations

import json
import os
import random
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
from neatpipe.models.http import RetryPolicy, parse_retry_after

REPO = Path(__file__).resolve().parents[1]
KNOWN = {
    "coder:1.5b",
    "slow",
    "flaky",
    "drop",
    "drop-once",
    "tiny-coder",
    "limited",
    "drip-body",
    "drip-head",
    "keeps-stop",
    "ignores-stop",
}
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
        self.retry_after = "1"
        self.drip_s = 0.05
        self.ports: list[int] = []
        self.requests: list[tuple[str, dict | None]] = []
        self.seen: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _drip(self, status: int, body: dict, head: bool) -> None:
                """The answer a byte at a time (at most 200 bytes: the client gives up long before)."""
                data = json.dumps(body).encode()
                raw = (
                    f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                ).encode()
                if not head:
                    self.wfile.write(raw)
                    self.wfile.flush()
                for byte in (raw + data if head else data)[:200]:
                    time.sleep(server.drip_s)
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        break
                self.close_connection = True

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
                    server.ports.append(self.client_address[1])
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
                if model == "limited" and times <= server.fail_times:
                    headers = {"Retry-After": server.retry_after} if server.retry_after else {}
                    return self._send(429, {"error": {"message": "rate limit reached"}}, headers)
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
                stop = body.get("stop", [])
                text, pt, ct, finish = answer(
                    body["messages"],
                    body["max_tokens"],
                    body["seed"],
                    body["temperature"],
                    [] if model in ("keeps-stop", "ignores-stop") else stop,
                )
                if model == "keeps-stop":
                    for s in stop:
                        if s in text:
                            text = text[: text.index(s) + len(s)]
                reply = {
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
                }
                if model in ("drip-body", "drip-head"):
                    return self._drip(200, reply, head=model == "drip-head")
                return self._send(200, reply)

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
        "top_k": 0,  # sent, so that Ollama's own defaults (top_k 40, repeat_penalty 1.1) do not apply
        "repeat_penalty": 1.0,
    }
    assert "think" not in sent[1]
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
def test_a_timed_out_request_is_not_sent_again(server, kind):
    """The server got the request and may still be working on it: a second copy would only queue."""
    spec = "ollama:slow" if kind == "ollama" else f"openai:{server.url}#slow"
    options = {"base_url": server.url, "digest": "d"} if kind == "ollama" else {}
    backend = load_backend({"spec": spec, **options, "timeout_s": 0.2, "retries": 3, "backoff_s": 0.01})
    with pytest.raises(BackendTimeoutError) as info:
        backend.generate([ChatRequest.user("hello")])
    message = str(info.value)
    assert server.url in message and "within 0.2 s" in message and "not sent again" in message
    assert len(server.posts("/api/chat" if kind == "ollama" else "/v1/chat/completions")) == 1


@pytest.mark.parametrize("part", ["body", "head"])
def test_an_answer_dripping_past_the_deadline_is_cut_off(server, part):
    """A byte every 50 ms keeps every read short; only a deadline for the whole answer ends it."""
    backend = load_backend({"spec": f"openai:{server.url}#drip-{part}", **FAST, "timeout_s": 0.5})
    t0 = time.perf_counter()
    with pytest.raises(BackendTimeoutError, match="no complete answer within 0.5 s"):
        backend.generate([ChatRequest.user("a b c d e f g h")])
    elapsed = time.perf_counter() - t0
    assert 0.45 <= elapsed < 1.5  # the whole answer would take 200 x 50 ms = 10 s
    assert len(server.posts("/v1/chat/completions")) == 1


def test_429_waits_for_retry_after_then_succeeds(server):
    server.retry_after = "1"
    backend = load_backend({"spec": f"openai:{server.url}#limited", **FAST, "backoff_s": 0.01})
    t0 = time.perf_counter()
    (c,) = backend.generate([ChatRequest.user("a b")])
    elapsed = time.perf_counter() - t0
    assert c.text == "s0 t0 b a"
    assert len(server.posts("/v1/chat/completions")) == 3  # two 429s, then the answer
    assert 2.0 <= elapsed < 4.0  # waited the server's 1 s twice, not the 10 ms backoff


def test_429_that_persists_says_the_server_limits_the_rate(server):
    server.fail_times, server.retry_after = 100, ""
    backend = load_backend({"spec": f"openai:{server.url}#limited", **FAST})
    with pytest.raises(ServerError) as info:
        backend.generate([ChatRequest.user("a")])
    message = str(info.value)
    assert info.value.status == 429 and "3 attempts" in message and "rate limit reached" in message
    assert "lower concurrency" in message


def test_backoff_has_jitter_and_honours_retry_after():
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=4.0)
    rng = random.Random(7)
    delays = [policy.delay(2, rng=rng) for _ in range(200)]
    assert all(0 <= d <= 2.0 for d in delays) and max(delays) > 1.8 and min(delays) < 0.2
    assert len({round(d, 6) for d in delays}) == 200  # no two threads come back together
    assert [policy.delay(9, rng=rng) <= 4.0 for _ in range(50)] == [True] * 50  # capped
    assert policy.delay(0, retry_after=3.0) == 3.0 and policy.delay(0, retry_after=99.0) == 4.0
    assert parse_retry_after("2") == 2.0 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0) == 5.0


def test_connections_are_kept_alive(server):
    backend = load_backend({"spec": f"openai:{server.url}#tiny-coder", **FAST, "concurrency": 4})
    for i in range(5):
        backend.generate([ChatRequest.user(f"q {i}", seed=i)])
    backend.generate([ChatRequest.user(f"r {i}", seed=i) for i in range(12)])
    assert len(server.ports) == 17
    assert len(set(server.ports)) <= 4  # at most one connection per thread, reused
    backend.close()


@pytest.mark.parametrize("model", ["tiny-coder", "keeps-stop", "ignores-stop"])
def test_stop_strings_are_cut_whatever_the_server_does(server, model):
    backend = load_backend({"spec": f"openai:{server.url}#{model}", **FAST})
    out = backend.generate(
        [
            ChatRequest.user("x y z w", max_tokens=16, stop=("z", "y"), seed=3),
            ChatRequest.user("x y z w", max_tokens=16, stop=("q",), seed=3),
        ]
    )
    assert [c.text for c in out] == ["s3 t0 w ", "s3 t0 w z y x"]
    assert [c.finish_reason for c in out] == ["stop", "stop"]


def test_sampling_settings_and_think_are_sent_when_set(server):
    ollama = load_backend(
        {
            "spec": "ollama:coder:1.5b",
            "base_url": server.url,
            "digest": "d",
            "think": False,
            "top_k": 20,
            "repetition_penalty": 1.05,
            **FAST,
        }
    )
    ollama.generate([ChatRequest.user("a")])
    (body,) = server.posts("/api/chat")
    assert body["think"] is False
    assert {k: body["options"][k] for k in ("top_k", "repeat_penalty", "repeat_last_n")} == {
        "top_k": 20,
        "repeat_penalty": 1.05,
        "repeat_last_n": -1,
    }
    plain = load_backend({"spec": f"openai:{server.url}#tiny-coder", **FAST})
    tuned = load_backend(
        {"spec": f"openai:{server.url}#tiny-coder", "top_k": 20, "repetition_penalty": 1.05, **FAST}
    )
    plain.generate([ChatRequest.user("b")])
    tuned.generate([ChatRequest.user("c")])
    sent_plain, sent_tuned = server.posts("/v1/chat/completions")
    assert not {"top_k", "repetition_penalty", "n"} & set(sent_plain)  # strict servers refuse unknown fields
    assert (sent_tuned["top_k"], sent_tuned["repetition_penalty"]) == (20, 1.05)


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
