"""What the declared dependencies are for: transformers' ``logits_to_keep`` and accelerate's placement.

* The decoder asks the model for the last position's logits only (``logits_to_keep=1``); transformers
  older than 4.49 (the lower bound in pyproject.toml) takes ``num_logits_to_keep`` instead and would
  silently compute the logits of every prompt position.
* ``device_map`` (with ``max_memory``) spreads an ``hf:`` model over GPUs, CPU memory and disk through
  accelerate; on the CPU alone a small ``max_memory`` sends layers to disk, and the answers must not change.
"""

from __future__ import annotations

import functools
import inspect
import json

import pytest
import torch

from neatpipe.models import ChatRequest, SpecError, load_backend, make_tiny_model, parse_spec
from neatpipe.models.decoding import TokenRequest
from neatpipe.models.hf import HFBackend
from neatpipe.models.spec import HFSpec, spec_to_mapping


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", arch="llama", seed=0).path


# ---------------------------------------------------------------------------------------------------------
# transformers: logits_to_keep


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_prefill_computes_the_last_positions_logits_only(tmp_path, arch):
    from transformers import AutoModelForCausalLM

    path = make_tiny_model(tmp_path / arch, arch=arch, seed=2).path
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    assert "logits_to_keep" in inspect.signature(type(model).forward).parameters

    shapes: list[tuple[int, int]] = []  # (positions fed, logit positions returned) per forward pass
    forward = model.forward

    @functools.wraps(forward)  # the decoder reads the forward's signature
    def recording(*args, **kwargs):
        out = forward(*args, **kwargs)
        shapes.append((int(kwargs["input_ids"].shape[1]), int(out.logits.shape[1])))
        return out

    model.forward = recording
    backend = HFBackend.from_model(model, name=f"tiny-{arch}")
    prompt = tuple(range(5, 29))  # 24 tokens
    backend.generate_tokens([TokenRequest(prompt, 4, ignore_eos=True)])
    assert shapes[0][0] >= len(prompt)  # the prefill
    assert [returned for _, returned in shapes] == [1] * len(shapes)


# ---------------------------------------------------------------------------------------------------------
# accelerate: device_map, max_memory, offload_folder


def test_placement_options_parse_and_round_trip():
    spec = parse_spec(
        {
            "spec": "hf:org/name",
            "device_map": "auto",
            "max_memory": {0: "6GiB", "cuda:1": "1.5GB", "cpu": 500_000},
            "offload_folder": "~/offload",
        }
    )
    assert spec.device_map == "auto" and spec.offload_folder == "~/offload"
    assert spec.max_memory == (("cpu", 500_000), ("cuda:0", 6 * 2**30), ("cuda:1", 1_500_000_000))
    assert parse_spec(spec_to_mapping(spec)) == spec
    assert spec_to_mapping(spec)["max_memory"] == {
        "cpu": 500_000,
        "cuda:0": 6 * 2**30,
        "cuda:1": 1_500_000_000,
    }
    assert hash(spec) == hash(parse_spec(spec_to_mapping(spec)))
    assert parse_spec("hf:org/name").device_map is None


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"device_map": "everywhere"}, "device_map", "auto, balanced, balanced_low_0, sequential"),
        ({"device_map": "auto", "max_memory": {"cpu": "6 gigs"}}, "max_memory.cpu", "6GiB"),
        ({"device_map": "auto", "max_memory": {"cpu": "4Gb"}}, "max_memory.cpu", "4Gb"),
        ({"device_map": "auto", "max_memory": {"cpu": 0}}, "max_memory.cpu", "size"),
        ({"device_map": "auto", "max_memory": {"tpu": "1GB"}}, "max_memory", "cuda:N"),
        ({"device_map": "auto", "max_memory": {}}, "max_memory", "mapping"),
        ({"device_map": "auto", "max_memory": "6GiB"}, "max_memory", "mapping"),
        ({"max_memory": {"cpu": "1GB"}}, "max_memory", "only used with device_map"),
        ({"offload_folder": "/tmp/x"}, "offload_folder", "only used with device_map"),
        ({"device_map": "auto", "device": "cuda:0"}, "device", "not both"),
    ],
)
def test_placement_option_errors_name_the_field(options, field, words):
    with pytest.raises(SpecError) as info:
        parse_spec({"spec": "hf:org/name", **options})
    assert info.value.field == field and words in str(info.value)


def _cpu_budget_that_offloads(folder) -> int:
    """Room in CPU memory for the (tied) embeddings and not much more, so the layers go to disk."""
    config = json.loads((folder / "config.json").read_text())
    return int(1.8 * config["vocab_size"] * config["hidden_size"] * 4)


def test_device_map_offloads_to_disk_and_answers_as_the_plain_load(tiny, tmp_path):
    plain = load_backend({"spec": f"hf:{tiny}", "device": "cpu", "dtype": "float32"})
    placed = load_backend(
        {
            "spec": f"hf:{tiny}",
            "dtype": "float32",
            "device_map": "auto",
            "max_memory": {"cpu": _cpu_budget_that_offloads(tiny)},
            "offload_folder": str(tmp_path / "offload"),
        }
    )
    requests = [
        ChatRequest.user("Write a function that adds two numbers.", max_tokens=12),
        ChatRequest.user("Sort a list.", max_tokens=9, temperature=0.8, seed=3),
    ]
    want = [c.text for c in plain.generate(requests)]
    got = [c.text for c in placed.generate(requests)]
    loaded = placed._loaded()
    device_map = loaded.model.hf_device_map
    assert "disk" in device_map.values() and device_map["model.embed_tokens"] == "cpu"
    assert got == want
    assert loaded.device == "cpu"
    assert loaded.nbytes < plain._loaded().nbytes  # offloaded weights take no memory
    assert placed.pool_key != plain.pool_key and placed.identity() == plain.identity()
    tokens = [TokenRequest(tuple(range(3, 40)), 6, ignore_eos=True)]
    assert placed.generate_tokens(tokens)[0].token_ids == plain.generate_tokens(tokens)[0].token_ids


def test_a_budget_that_leaves_the_inputs_no_device_is_a_spec_error(tiny):
    placed = load_backend(
        {"spec": f"hf:{tiny}", "dtype": "float32", "device_map": "auto", "max_memory": {"cpu": 1000}}
    )
    with pytest.raises(SpecError) as info:
        placed.generate([ChatRequest.user("hi", max_tokens=2)])
    assert info.value.field == "max_memory" and "input embeddings" in str(info.value)


def test_spec_objects_without_placement_load_as_before(tiny):
    backend = HFBackend(HFSpec(model=str(tiny), device="cpu", dtype="float32"))
    assert backend._placement() == {}
    assert backend.generate([ChatRequest.user("hi", max_tokens=3)])[0].completion_tokens >= 1
