"""The decoding loop's promises, measured on CPU: batch independence in float32 and bfloat16, the
model's generation config, per-request context limits, and the batch limit after out-of-memory."""

from __future__ import annotations

import random

import pytest
import torch

from neatpipe.models import ChatRequest, load_backend, make_tiny_model
from neatpipe.models.decoding import TokenRequest
from neatpipe.models.hf import HFBackend


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoding")
    return {arch: make_tiny_model(root / arch, arch=arch, seed=0).path for arch in ("llama", "qwen2")}


def mixed_requests(seed: int, n: int = 16) -> list[TokenRequest]:
    """Prompts of 1 to 120 tokens, greedy and sampled, with and without end-of-sequence."""
    rng = random.Random(seed)
    return [
        TokenRequest(
            tuple(rng.randrange(8, 1000) for _ in range(rng.randrange(1, 120))),
            rng.randrange(4, 16),
            temperature=rng.choice([0.0, 0.0, 0.7, 1.0]),
            top_p=rng.choice([1.0, 0.9]),
            seed=rng.randrange(1000),
            ignore_eos=rng.random() < 0.5,
        )
        for _ in range(n)
    ]


def mismatches(backend: HFBackend, requests: list[TokenRequest]) -> int:
    """Requests whose tokens alone differ from their tokens inside the whole mixed batch."""
    alone = [backend.generate_tokens([r])[0].token_ids for r in requests]
    together = [r.token_ids for r in backend.generate_tokens(requests)]
    return sum(a != b for a, b in zip(alone, together, strict=True))


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_batch_independence_in_float32_and_bfloat16(models, arch, capsys):
    requests = mixed_requests(seed=len(arch))
    for dtype in ("float32", "bfloat16"):
        backend = load_backend({"spec": f"hf:{models[arch]}", "device": "cpu", "dtype": dtype})
        assert mismatches(backend, requests) == 0, dtype  # what docs/backends.md promises
    # for the record: transformers' default SDPA attention in bfloat16 (what the backend avoids)
    from transformers import AutoModelForCausalLM

    sdpa = AutoModelForCausalLM.from_pretrained(
        models[arch], dtype=torch.bfloat16, attn_implementation="sdpa"
    )
    rate = mismatches(HFBackend.from_model(sdpa.eval(), name="sdpa"), requests)
    with capsys.disabled():
        print(f"\n{arch} bfloat16 with SDPA attention: {rate}/{len(requests)} requests depend on the batch")


def test_sampling_from_candidates_equals_noise_over_the_whole_vocabulary():
    from neatpipe.models.decoding import _select_dense, gumbel_noise, hash32, row_key, select_tokens

    gen = torch.Generator().manual_seed(0)
    rows, vocab = 64, 5000
    logits = torch.randn(rows, vocab, generator=gen) * 2
    logits.scatter_add_(1, torch.randint(0, vocab, (rows, 8), generator=gen), torch.full((rows, 8), 12.0))
    token_hash = hash32(torch.arange(vocab, dtype=torch.int64))
    keys = torch.tensor([row_key(s, 3) for s in range(rows)], dtype=torch.int64)
    temperature = torch.linspace(0.3, 1.5, rows)
    for p in (1.0, 0.8):
        top_p = torch.full((rows,), p)
        fast = select_tokens(logits, temperature, top_p, keys, token_hash)
        full = _select_dense(
            logits / temperature[:, None], logits.argmax(-1), temperature, top_p, keys, token_hash, None
        )
        assert torch.equal(fast, full)
    # the noise is finite even for the hash value whose uniform rounds to 1 in float32
    top = torch.tensor([15340575], dtype=torch.int64)  # found by search: its hash's top 24 bits are all 1
    assert int(hash32(top)) >> 8 == 0xFFFFFF
    assert torch.isfinite(gumbel_noise(torch.zeros(1, dtype=torch.int64), top)).all()


def test_generation_config_repetition_penalty_and_top_k(models, tmp_path):
    import json
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from neatpipe.models.decoding import hash32, row_key, select_tokens
    from neatpipe.models.hf import encode_chat

    folder = tmp_path / "penalised"
    shutil.copytree(models["qwen2"], folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(repetition_penalty=1.5, top_k=3)
    (folder / "generation_config.json").write_text(json.dumps(config))
    backend = load_backend({"spec": f"hf:{folder}", "device": "cpu", "dtype": "float32"})
    plain = load_backend({"spec": f"hf:{models['qwen2']}", "device": "cpu", "dtype": "float32"})
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    requests = [ChatRequest.user(t, max_tokens=20) for t in ("def add(a, b):", "Sort the words", "x")]
    ours = backend.generate(requests)
    for request, got in zip(requests, ours, strict=True):
        ids = torch.tensor([encode_chat(tokenizer, request.messages_as_dicts())])
        with torch.inference_mode():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=20, top_k=None
            )
        assert got.text == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert [c.text for c in ours] != [c.text for c in plain.generate(requests)]  # the penalty changed them
    # top-k: sampled tokens are always among each row's k best
    logits = torch.randn(400, 50, generator=torch.Generator().manual_seed(1))
    keys = torch.tensor([row_key(s, 0) for s in range(400)], dtype=torch.int64)
    ones = torch.ones(400)
    picks = select_tokens(logits, ones, ones, keys, hash32(torch.arange(50)), torch.full((400,), 3))
    allowed = logits.topk(3, dim=-1).indices
    assert (allowed == picks[:, None]).any(dim=-1).all()
    assert len(set(picks.tolist())) > 3  # still sampling, not argmax


def test_out_of_memory_limit_grows_back(models):
    pressure = {"on": True}

    def hook(rows: int, kv_length: int) -> None:
        if pressure["on"] and rows > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    spec = {"spec": f"hf:{models['llama']}", "device": "cpu", "dtype": "float32", "batch_size": 8}
    from neatpipe.models import parse_spec

    backend = HFBackend(parse_spec(spec), fail_hook=hook)
    requests = [ChatRequest.user(f"task {i}", max_tokens=2) for i in range(8)]
    reference = [c.text for c in backend.generate(requests[:4])]
    assert backend.state.batch_limit == 2 and backend.state.oom_halvings == 1  # 4 rows failed: 2
    pressure["on"] = False
    for _ in range(4):  # the limit doubles after every 4 full batches: 2, 4, 8
        assert [c.text for c in backend.generate(requests)][:4] == reference
    state = backend.state
    assert state.batch_limit == 8 and state.regrowths == 2 and state.ceiling == 8
    assert state.batches[-1].rows == 8 and state.oom_halvings == 1


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_prompt_shared_by_several_rows_is_prefilled_once(models, dtype):
    """A generation stream sends the same prompt many times (one prompt variant, one problem, many genomes,
    other seeds and temperatures): each row still gets exactly its answer alone."""
    widths: list[int] = []

    def count(rows: int, kv_length: int) -> None:
        widths.append(rows)

    shared = mixed_requests(seed=3, n=4)
    requests = [
        TokenRequest(p.prompt_ids, 12, temperature=t, seed=s, ignore_eos=True)
        for p in shared
        for t, s in ((0.0, 0), (0.8, 1), (0.8, 2))
    ] + mixed_requests(seed=4, n=3)
    spec = {"spec": f"hf:{models['qwen2']}", "device": "cpu", "dtype": dtype}
    backend = HFBackend.from_model(load_backend(spec)._loaded().model, name="q", fail_hook=count)
    together = [r.token_ids for r in backend.generate_tokens(requests)]
    assert widths[0] == len({r.prompt_ids for r in requests}) == 7  # the prefill: one row per prompt
    alone = [backend.generate_tokens([r])[0].token_ids for r in requests]
    assert together == alone
    assert len({together[1], together[2]}) == 2  # the same prompt, other seeds: other samples
