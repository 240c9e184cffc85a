"""The OpenAI-compatible backend against a real OpenAI-compatible server: ``transformers serve``.

The test builds the tiny random-weight model, starts ``transformers serve`` on it on 127.0.0.1 (a free
port, offline, CPU), talks to it through ``openai:`` and compares its answers with the ``hf:`` backend
running the same folder in this process. The server is stopped when the module's tests end. What a real
server will not do on demand (429 with Retry-After, an answer dripping past the deadline) is tested
against the loopback fake in test_models_served.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from neatpipe.models import ChatRequest, ModelNotAvailableError, load_backend
from neatpipe.models.tiny import make_tiny_model

START_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, folder: Path, url: str, log: Path) -> None:
        self.folder, self.url, self.log = folder, url, log

    def backend(self, model: str | None = None, **options: object):
        spec = f"openai:{self.url}/v1#{model or self.folder}"
        return load_backend({"spec": spec, "timeout_s": 120.0, "retries": 1, **options}, cache=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``transformers serve`` pinned to a tiny qwen2 folder, started here and stopped after the module."""
    pytest.importorskip("transformers")
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():  # installed by the dev extra; a missing one is a broken setup, not a skip
        pytest.fail("transformers serve needs fastapi, uvicorn and openai: pip install -e '.[dev]'")
    root = tmp_path_factory.mktemp("served")
    folder = make_tiny_model(root / "tiny", arch="qwen2").path
    # transformers serve samples only when the model's generation config says do_sample (it decodes
    # greedily otherwise, whatever the temperature); real chat models ship it, the tiny one is made so
    config_file = folder / "generation_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "do_sample": True}))
    port = _free_port()
    log = root / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Served(folder, f"http://127.0.0.1:{port}", log)
    try:
        probe = server.backend(retries=0, timeout_s=5.0)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                probe.preflight()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    pytest.fail(f"transformers serve did not start (exit {proc.poll()}):\n{tail}")
                time.sleep(0.5)
        probe.close()
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def _requests() -> list[ChatRequest]:
    return [ChatRequest.user(f"def f{i}(x):\n    return x + {i}", max_tokens=24, seed=i) for i in range(4)]


def test_greedy_answers_match_the_hf_backend_on_the_same_folder(served: Served) -> None:
    backend = served.backend(concurrency=4)
    local = load_backend({"spec": f"hf:{served.folder}", "device": "cpu"}, cache=False)
    requests = _requests()
    out, ref = backend.generate(requests), local.generate(requests)
    # transformers serve's response parser drops whitespace at the start of the answer; the rest is equal
    assert [c.text for c in out] == [c.text.lstrip() for c in ref]
    assert len({c.text for c in out}) == 4  # four different prompts, four different answers
    assert [c.finish_reason for c in out] == [c.finish_reason for c in ref]
    assert [(c.prompt_tokens, c.completion_tokens) for c in out] == [
        (c.prompt_tokens, c.completion_tokens) for c in ref
    ]
    assert all(c.latency_s > 0 for c in out)
    backend.close()


def test_stop_strings_end_the_text_as_in_the_hf_backend(served: Served) -> None:
    backend = served.backend()
    local = load_backend({"spec": f"hf:{served.folder}", "device": "cpu"}, cache=False)
    free = backend.generate(_requests()[:1])[0].text
    stop = free[len(free) // 2 : len(free) // 2 + 2]  # two characters from the middle of the answer
    assert stop.strip() and free.index(stop) > 0
    request = ChatRequest.user("def f0(x):\n    return x + 0", max_tokens=24, seed=0, stop=(stop,))
    (c,) = backend.generate([request])
    (r,) = local.generate([request])
    assert c.text == free[: free.index(stop)] == r.text.lstrip()
    assert c.finish_reason == "stop" == r.finish_reason


def test_preflight_and_a_model_the_server_does_not_serve(served: Served) -> None:
    served.backend().preflight()
    with pytest.raises(ModelNotAvailableError, match="does not serve model 'other-model'"):
        served.backend("other-model").preflight()


def test_a_seeded_sampled_request_repeats_on_the_same_server(served: Served) -> None:
    """The server seeds torch globally per request: one request at a time, the same seed gives the same
    text (with requests running at once it would not; see docs/backends.md)."""
    backend = served.backend(concurrency=1)
    request = ChatRequest.user("def g(x):", max_tokens=16, temperature=1.0, seed=11)
    first, again = backend.generate([request]), backend.generate([request])
    other = backend.generate([ChatRequest.user("def g(x):", max_tokens=16, temperature=1.0, seed=12)])
    greedy = backend.generate([ChatRequest.user("def g(x):", max_tokens=16, seed=11)])
    assert first[0].text == again[0].text
    assert len({first[0].text, other[0].text, greedy[0].text}) == 3  # sampled, by seed
