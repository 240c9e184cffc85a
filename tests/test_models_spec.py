"""Model specs, request validation and usage accounting: pure Python, no model, no network."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neatpipe.models import (
    ChatMessage,
    ChatRequest,
    Completion,
    HFSpec,
    OllamaSpec,
    OpenAISpec,
    RequestError,
    SpecError,
    SyntheticSpec,
    Usage,
    UsageLog,
    load_backend,
    parse_spec,
    spec_to_mapping,
)
from neatpipe.models.spec import DEFAULT_OLLAMA_URL, looks_like_path


def test_hf_strings_and_mappings():
    assert parse_spec("hf:Qwen/Qwen2.5-Coder-1.5B-Instruct") == HFSpec(
        model="Qwen/Qwen2.5-Coder-1.5B-Instruct"
    )
    spec = parse_spec({"spec": "hf:./models/tiny", "dtype": "bf16", "device": "cuda:1", "revision": "abc"})
    assert spec == HFSpec(model="./models/tiny", dtype="bfloat16", device="cuda:1", revision="abc")
    assert spec.is_local and not HFSpec(model="org/name").is_local
    assert parse_spec({"spec": "hf:x", "batch_size": 16}).batch_size == 16


def test_ollama_tag_keeps_its_colon_and_options():
    spec = parse_spec({"spec": "ollama:qwen2.5-coder:1.5b", "num_ctx": 4096, "concurrency": 2})
    assert spec == OllamaSpec(tag="qwen2.5-coder:1.5b", num_ctx=4096, concurrency=2)
    assert spec.base_url == DEFAULT_OLLAMA_URL
    assert (
        parse_spec({"spec": "ollama:x", "base_url": "http://gpu-box:11434/"}).base_url
        == "http://gpu-box:11434"
    )


def test_openai_base_url_and_model():
    spec = parse_spec("openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-Coder-1.5B-Instruct")
    assert spec == OpenAISpec(base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-Coder-1.5B-Instruct")
    assert spec.chat_url == "http://127.0.0.1:8000/v1/chat/completions"
    assert (
        parse_spec("openai:http://localhost:8080#m").chat_url == "http://localhost:8080/v1/chat/completions"
    )


def test_synthetic_specs_load_through_the_registry():
    spec = parse_spec({"spec": "synthetic:strong", "pass_rate": 0.6})
    assert spec == SyntheticSpec(preset="strong", options=(("pass_rate", 0.6),))
    with pytest.raises(SpecError, match="strong"):  # unknown preset: the error names it
        load_backend(spec)
    backend = load_backend("synthetic:coder-1.5b")
    assert backend.kind == "synthetic" and "synthetic" in backend.identity()


@pytest.mark.parametrize("spec", ["hf:a/b", "ollama:q:1b", "openai:https://h:1/v1#m", "synthetic:p"])
def test_round_trip_through_the_mapping_form(spec):
    parsed = parse_spec(spec)
    assert parse_spec(spec_to_mapping(parsed)) == parsed
    assert parsed.to_string() == spec


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("hf", "kind", "KIND:TARGET"),
        ("gguf:x", "kind", "unknown backend kind 'gguf'"),
        ("hf:", "model", "nothing after"),
        ("ollama:  ", "tag", "nothing after"),
        ("ollama:qwen coder", "tag", "no spaces"),
        ("openai:http://h:8000", "model", "#<model>"),
        ("openai:http://h:8000#", "model", "empty"),
        ("openai:ftp://h#m", "base_url", "http://"),
        ("openai:http://h:99999#m", "base_url", "port"),
        ("synthetic:bad name", "preset", "letters"),
        ({"spec": "hf:x", "dtype": "int4"}, "dtype", "int4"),
        ({"spec": "hf:x", "device": "tpu"}, "device", "tpu"),
        ({"spec": "hf:x", "batch_size": 0}, "batch_size", ">= 1"),
        ({"spec": "hf:x", "temperature": 0.2}, "temperature", "unknown option for hf"),
        ({"spec": "ollama:x", "retries": -1}, "retries", ">= 0"),
        ({"spec": "ollama:x", "timeout_s": 0}, "timeout_s", "> 0"),
        ({"spec": "openai:http://h#m", "model": "y"}, "model", "part of the spec string"),
        ({"dtype": "bf16"}, "spec", "'spec' key"),
        ({"spec": 3}, "spec", "a string"),
        (42, "spec", "a string or a mapping"),
    ],
)
def test_errors_name_the_spec_and_the_field(value, field, words):
    with pytest.raises(SpecError) as info:
        parse_spec(value)
    assert info.value.field == field
    message = str(info.value)
    assert f": {field}: " in message and words in message
    shown = value["spec"] if isinstance(value, dict) and "spec" in value and len(value) == 1 else value
    assert repr(shown)[:20] in message or str(shown)[:20] in message


def test_path_spelling():
    for p in ("/abs", "./rel", "../up", "~/home", ".", "C:\\models"):
        assert looks_like_path(p)
    for p in ("Qwen/Qwen2.5", "gpt2"):
        assert not looks_like_path(p)


def test_request_validation_and_normalisation():
    r = ChatRequest([{"role": "user", "content": "hi"}], temperature=1, stop="END")
    assert r.messages == (ChatMessage("user", "hi"),) and r.stop == ("END",) and r.temperature == 1.0
    assert hash(r) == hash(ChatRequest.user("hi", temperature=1.0, stop=("END",)))
    for bad in (
        dict(messages=()),
        dict(messages=[{"role": "robot", "content": "x"}]),
        dict(messages=[{"role": "user"}]),
        dict(messages=[ChatMessage("user", "x")], temperature=-0.1),
        dict(messages=[ChatMessage("user", "x")], temperature=float("nan")),
        dict(messages=[ChatMessage("user", "x")], top_p=0),
        dict(messages=[ChatMessage("user", "x")], top_p=1.5),
        dict(messages=[ChatMessage("user", "x")], max_tokens=0),
        dict(messages=[ChatMessage("user", "x")], seed=-1),
        dict(messages=[ChatMessage("user", "x")], seed=True),
        dict(messages=[ChatMessage("user", "x")], stop=("",)),
    ):
        with pytest.raises(RequestError):
            ChatRequest(**bad)


def test_usage_log_totals_snapshot_and_diff():
    log = UsageLog("x")
    paid = Completion("a", 10, 5, "stop", 0.5)
    hit = Completion("b", 7, 3, "length", 0.0, cached=True)
    log.record([paid, hit], seconds=0.6, started_at=0.0)
    before = log.total()
    mark = len(log)
    log.record([paid], seconds=0.5, started_at=1.0)
    delta = log.total() - before
    assert delta == Usage(calls=1, requests=1, prompt_tokens=10, completion_tokens=5, seconds=delta.seconds)
    assert delta.seconds == pytest.approx(0.5)
    assert [r.requests for r in log.since(mark)] == [1]
    total = log.total()
    assert (total.calls, total.requests, total.cache_hits, total.cache_misses) == (2, 3, 1, 2)
    assert (total.total_tokens, total.tokens_saved) == (30, 10)
    assert log.records[0].cache_misses == 1


def test_importing_the_package_does_not_import_torch():
    code = "import sys, neatpipe.models; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
