"""The transformers backend on tiny random-weight models built here (CPU, float32).

One tiny model folder is built per module and loaded through ``hf:DIR``, the same
``from_pretrained`` path as a hub model.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from neatpipe.cli import main as cli_main
from neatpipe.models import (
    CachedBackend,
    ChatRequest,
    CompletionCache,
    ModelNotAvailableError,
    OutOfMemoryError,
    load_backend,
    make_tiny_model,
    parse_spec,
)
from neatpipe.models.decoding import TokenRequest, gumbel_noise, hash32, row_key, select_tokens
from neatpipe.models.hf import HFBackend, ModelPool, encode_chat


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", arch="llama", seed=0).path


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2", arch="qwen2", seed=1).path


def cpu(path, **options) -> dict:
    return {"spec": f"hf:{path}", "device": "cpu", "dtype": "float32", **options}


@pytest.fixture(scope="module")
def backend(tiny):
    b = load_backend(cpu(tiny))
    yield b
    b.close()


REQUESTS = [
    ChatRequest.user("Write a function that adds two numbers.", max_tokens=12),
    ChatRequest.user("hi", max_tokens=9, temperature=0.8, seed=3),
    ChatRequest.user(
        "Sort a list of words by length and return it.", max_tokens=14, temperature=1.0, top_p=0.9, seed=7
    ),
    ChatRequest.user("x", max_tokens=5, temperature=0.5, seed=11, system="You write Python."),
    ChatRequest.user("Return the median of a list of numbers, please.", max_tokens=10),
]


def texts(backend, requests):
    return [c.text for c in backend.generate(requests)]


def test_folder_is_in_the_hugging_face_layout(tiny):
    names = {p.name for p in tiny.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    } <= names
    assert "chat_template" in json.loads((tiny / "tokenizer_config.json").read_text())
    config = json.loads((tiny / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 2


def test_answers_a_batch_through_hf_spec(backend):
    out = backend.generate(REQUESTS)
    assert len(out) == len(REQUESTS)
    loaded = backend._loaded()
    for r, c in zip(REQUESTS, out, strict=True):
        assert c.prompt_tokens == len(encode_chat(loaded.tokenizer, r.messages_as_dicts()))
        assert 1 <= c.completion_tokens <= r.max_tokens
        assert c.finish_reason in ("stop", "length") and isinstance(c.text, str) and not c.cached
        assert c.finish_reason == "stop" or c.completion_tokens == r.max_tokens
    assert backend.pool.loads == 1
    record = backend.usage.records[-1]
    assert record.requests == len(REQUESTS) and record.completion_tokens == sum(
        c.completion_tokens for c in out
    )


def test_output_does_not_depend_on_the_batch(tiny, backend):
    alone = [backend.generate([r])[0].text for r in REQUESTS]
    assert texts(backend, REQUESTS) == alone
    assert texts(backend, REQUESTS[::-1]) == alone[::-1]
    assert texts(backend, [REQUESTS[2], REQUESTS[0]]) == [alone[2], alone[0]]
    # other batch limits, keeping finished rows, and fixed bucket sizes with filler rows
    for options in ({"batch_size": 2}, {"batch_size": 1}):
        other = load_backend(cpu(tiny, **options))
        assert texts(other, REQUESTS) == alone
    kept = HFBackend(parse_spec(cpu(tiny)), drop_finished=False)
    assert texts(kept, REQUESTS) == alone
    bucketed = HFBackend(parse_spec(cpu(tiny)), batch_buckets=(4, 8))
    assert texts(bucketed, REQUESTS[:3]) == alone[:3]
    assert bucketed.state.batches[-1].padded_rows == 4 and bucketed.state.batches[-1].rows == 3


def test_seed_matters_when_sampling_not_when_greedy(backend):
    sampled = {
        backend.complete(ChatRequest.user("def f(x):", temperature=1.0, seed=s, max_tokens=12)).text
        for s in range(4)
    }
    assert len(sampled) > 1
    greedy = {backend.complete(ChatRequest.user("def f(x):", seed=s, max_tokens=12)).text for s in range(3)}
    assert len(greedy) == 1


def test_budget_and_stop_strings(backend):
    base = backend.complete(ChatRequest.user("Write a function that adds two numbers.", max_tokens=24))
    assert base.completion_tokens == 24 and base.finish_reason == "length"
    stop = base.text[6:9]
    assert stop.strip()
    cut = backend.complete(
        ChatRequest.user("Write a function that adds two numbers.", max_tokens=24, stop=(stop,))
    )
    assert cut.text == base.text[: base.text.index(stop)]
    assert cut.finish_reason == "stop" and cut.completion_tokens < 24


def test_out_of_memory_halves_the_batch_and_retries(tiny, backend):
    reference = texts(backend, REQUESTS)
    calls = []

    def fake_oom(rows: int, kv_length: int) -> None:
        calls.append((rows, kv_length))
        if rows > 2 and len(calls) > 3:  # fail in the middle of decoding, not only at the prefill
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    limited = HFBackend(parse_spec(cpu(tiny, batch_size=8)), fail_hook=fake_oom)
    assert texts(limited, REQUESTS) == reference
    state = limited.state
    assert state.oom_halvings == 1 and state.batch_limit == 2  # the failing batch of 5 halves to 2
    assert all(b.rows <= 2 for b in state.batches)
    assert len(limited.usage) == 1  # still one call in the call log

    def always(rows: int, kv_length: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    hopeless = HFBackend(parse_spec(cpu(tiny)), fail_hook=always)
    with pytest.raises(OutOfMemoryError, match="one request"):
        hopeless.generate(REQUESTS[:2])


def test_finished_rows_stop_counting(tiny):
    requests = [
        ChatRequest.user("a", max_tokens=2),
        ChatRequest.user("b", max_tokens=2),
        ChatRequest.user("c", max_tokens=2),
        ChatRequest.user("d", max_tokens=30),
    ]
    dropping = HFBackend(parse_spec(cpu(tiny)))
    keeping = HFBackend(parse_spec(cpu(tiny)), drop_finished=False)
    assert texts(dropping, requests) == texts(keeping, requests)
    dropped, kept = dropping.state.batches[-1], keeping.state.batches[-1]
    assert dropped.compactions == 1 and kept.compactions == 0
    assert dropped.steps == kept.steps == 29
    assert kept.row_steps == 4 * 29 and dropped.row_steps == 4 * 1 + 1 * 28


def test_pool_keeps_models_within_a_budget(tiny, tiny_qwen):
    probe = load_backend(cpu(tiny))
    probe.complete(ChatRequest.user("x", max_tokens=1))
    size = probe.pool.used_bytes
    pool = ModelPool(budget_bytes=int(size * 1.5))
    a = load_backend(cpu(tiny), pool=pool)
    b = load_backend(cpu(tiny_qwen), pool=pool)
    a.complete(ChatRequest.user("x", max_tokens=1))
    b.complete(ChatRequest.user("x", max_tokens=1))
    assert pool.resident() == (b.pool_key,) and pool.evictions == [a.pool_key]
    a.complete(ChatRequest.user("x", max_tokens=1))
    assert pool.resident() == (a.pool_key,) and pool.loads == 3
    roomy = ModelPool(budget_bytes=size * 3)
    for backend in (load_backend(cpu(tiny), pool=roomy), load_backend(cpu(tiny_qwen), pool=roomy)):
        backend.complete(ChatRequest.user("x", max_tokens=1))
    assert len(roomy.resident()) == 2 and roomy.evictions == []


def test_qwen2_chatml_template(tiny_qwen):
    backend = load_backend(cpu(tiny_qwen))
    tokenizer = backend._loaded().tokenizer
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert backend.complete(ChatRequest.user("hello", max_tokens=4)).completion_tokens <= 4


def test_offline_missing_model_says_what_to_download(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    backend = load_backend({"spec": "hf:nobody/missing-coder", "device": "cpu", "revision": "v2"})
    with pytest.raises(ModelNotAvailableError) as info:
        backend.generate([ChatRequest.user("x")])
    message = str(info.value)
    for part in (
        "'nobody/missing-coder'",
        "revision v2",
        str(tmp_path / "hub"),
        "HF_HUB_OFFLINE=1",
        "hf download nobody/missing-coder --revision v2",  # the command huggingface_hub 2.x installs
        "hf:/path/to/folder",
    ):
        assert part in message
    assert "huggingface-cli" not in message  # gone from huggingface_hub since 1.0


def test_the_download_command_is_the_one_huggingface_hub_installs(monkeypatch):
    from importlib import metadata

    from neatpipe.models.hf import hub_download_command

    class Dist:
        def __init__(self, *names):
            self.entry_points = [metadata.EntryPoint(n, "x:y", "console_scripts") for n in names]

    monkeypatch.setattr(metadata, "distribution", lambda name: Dist("huggingface-cli"))
    assert hub_download_command() == "huggingface-cli download"
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist("hf", "tiny-agents"))
    assert hub_download_command() == "hf download"
    with pytest.raises(ModelNotAvailableError, match="no model folder.*make-tiny"):
        load_backend("hf:./no/such/folder")


def test_an_existing_relative_folder_is_local_not_a_hub_id(tiny, monkeypatch):
    monkeypatch.chdir(tiny.parent)
    backend = load_backend(cpu("llama"))
    assert backend.folder == tiny.resolve()
    assert backend.identity() == load_backend(cpu(tiny)).identity()


def test_identity_follows_content_not_location(tiny, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(tiny, moved)
    assert load_backend(cpu(moved)).identity() == load_backend(cpu(tiny)).identity()
    other = make_tiny_model(tmp_path / "other", seed=5).path
    assert load_backend(cpu(other)).identity() != load_backend(cpu(tiny)).identity()
    assert load_backend(cpu(tiny)).identity().endswith(":float32")


def test_cache_hits_need_no_model_load(tiny, tmp_path):
    path = tmp_path / "c.sqlite"
    request = ChatRequest.user("def add(a, b):", temperature=0.7, seed=9, max_tokens=8)
    first = load_backend(cpu(tiny), cache=path)
    (paid,) = first.generate([request])
    second = load_backend(cpu(tiny), cache=CompletionCache(path))
    assert isinstance(second, CachedBackend)
    (hit,) = second.generate([request])
    assert hit.cached and hit.text == paid.text and not second.inner.is_loaded


def test_prompt_longer_than_context_ends_alone_with_length(tmp_path):
    small = make_tiny_model(tmp_path / "short", max_positions=32).path
    backend = load_backend(cpu(small))
    fits = ChatRequest.user("hi", max_tokens=3)
    alone = backend.complete(fits)
    long, kept = backend.generate([ChatRequest.user("word " * 40), fits])
    assert (long.text, long.completion_tokens, long.finish_reason) == ("", 0, "length")
    assert long.prompt_tokens > 32 and kept == alone.__class__(
        **{**alone.__dict__, "latency_s": kept.latency_s}
    )
    out = backend.complete(ChatRequest.user("hi", max_tokens=500))
    assert out.prompt_tokens + out.completion_tokens <= 32  # the budget is clamped to the context


def test_token_level_path_without_tokenizer(tiny):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    backend = HFBackend.from_model(model, name="tiny-in-memory")
    results = backend.generate_tokens(
        [
            TokenRequest((5, 6, 7), 6, ignore_eos=True),
            TokenRequest((8,) * 11, 3, temperature=1.0, seed=2, ignore_eos=True),
        ]
    )
    assert [len(r.token_ids) for r in results] == [6, 3] and {r.finish_reason for r in results} == {"length"}
    assert results[0].text is None and backend.identity().startswith("hf:memory:tiny-in-memory#")


def test_sampling_follows_the_distribution_and_top_p():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).repeat(3000, 1)
    hashes = hash32(torch.arange(3, dtype=torch.int64))
    keys = torch.tensor([row_key(seed, 0) for seed in range(3000)], dtype=torch.int64)
    ones = torch.ones(3000)
    picks = select_tokens(logits, ones, ones, keys, hashes)
    freq = torch.bincount(picks, minlength=3).float() / 3000
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.04)
    nucleus = select_tokens(logits, ones, torch.full((3000,), 0.75), keys, hashes)
    assert set(nucleus.tolist()) == {0, 1}
    assert select_tokens(logits[:2], torch.zeros(2), ones[:2], keys[:2], hashes).tolist() == [0, 0]
    noise = gumbel_noise(keys[:4], hashes)
    assert torch.equal(noise, gumbel_noise(keys[:4], hashes)) and torch.isfinite(noise).all()


def test_cli_make_tiny_and_generate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "cli-tiny"
    assert cli_main(["models", "make-tiny", str(folder), "--arch", "qwen2", "--seed", "3"]) == 0
    assert f"hf:{folder}" in capsys.readouterr().out
    argv = [
        "models",
        "generate",
        f"hf:{folder}",
        "-p",
        "hello",
        "-p",
        "add two numbers",
        "--max-tokens",
        "5",
        "--temperature",
        "0.5",
        "-o",
        "device=cpu",
        "-o",
        "dtype=float32",
        "--json",
    ]
    assert cli_main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["prompt"] for x in lines] == ["hello", "add two numbers"]
    assert all(x["completion_tokens"] <= 5 and not x["cached"] for x in lines)
    assert cli_main(argv) == 0
    assert all(json.loads(line)["cached"] for line in capsys.readouterr().out.splitlines())
    assert cli_main(["models", "generate", "hf:", "-p", "x"]) == 2
    assert "model spec 'hf:': model:" in capsys.readouterr().err
    assert cli_main(["models", "generate", f"hf:{folder}", "-p", "x", "-o", "dtype=int3"]) == 2
    assert "dtype" in capsys.readouterr().err
