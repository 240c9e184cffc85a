"""``neatpipe bench generation`` at tiny scale on CPU (the real shape needs a GPU: --run-gpu)."""

from __future__ import annotations

import json

import pytest

from neatpipe.cli import main as cli_main
from neatpipe.perf.generation import chat_text, hashed_token_ids, humaneval_prompts, qwen_coder_1_5b_config


def test_smoke_on_cpu_with_the_tiny_model(tmp_path, capsys):
    out_file = tmp_path / "rows.json"
    argv = [
        "bench",
        "generation",
        "--model",
        "tiny",
        "--prompts",
        "8",
        "--tokens",
        "16",
        "--device",
        "cpu",
        "--output",
        str(out_file),
    ]
    assert cli_main(argv) == 0
    table = capsys.readouterr().out
    assert "tiny llama" in table and "cold tok/s" in table and "warm tok/s" in table
    rows = json.loads(out_file.read_text())["rows"]
    assert [(r["method"], r["batch_size"], r["prompts"]) for r in rows] == [
        ("batched", 1, 8),
        ("batched", 8, 8),
        ("generate", 1, 8),
    ]
    assert all(r["new_tokens"] == 8 * 16 for r in rows)  # end-of-sequence ignored: every token generated
    assert rows[-1]["ratio"] == 1.0 and all(r["warm_tokens_per_s"] > 0 for r in rows)


def test_bad_arguments_are_user_errors(capsys):
    assert cli_main(["bench", "generation", "--batch-sizes", "1,x"]) == 2
    assert "--batch-sizes" in capsys.readouterr().err
    assert cli_main(["bench", "generation", "--prompts", "200"]) == 2


def test_tokenizer_free_prompts_and_the_real_shape():
    prompts = humaneval_prompts(164)
    assert len(prompts) == 164
    ids = [hashed_token_ids(chat_text(p)) for p in prompts]
    assert all(0 <= i < 151936 for seq in ids for i in seq)
    mean_chars_per_token = sum(len(p) for p in prompts) / sum(len(s) - 40 for s in ids)
    assert 2.5 < mean_chars_per_token < 4.5  # what Qwen's tokenizer gives on Python code
    config = qwen_coder_1_5b_config()
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.num_key_value_heads,
        config.intermediate_size,
        config.vocab_size,
        config.tie_word_embeddings,
    ) == (1536, 28, 12, 2, 8960, 151936, True)


@pytest.mark.gpu
def test_real_shape_on_a_gpu(capsys):
    assert (
        cli_main(
            [
                "bench",
                "generation",
                "--prompts",
                "32",
                "--tokens",
                "64",
                "--batch-sizes",
                "1,16,32",
                "--sequential-prompts",
                "2",
            ]
        )
        == 0
    )
    assert "Qwen2.5-Coder-1.5B shape" in capsys.readouterr().out


def test_qwen_path_with_a_shrunken_config_on_cpu(monkeypatch, capsys):
    """The real-shape code path (config in code, hashed prompt ids, bfloat16), with 2 thin layers."""
    import neatpipe.perf.generation as generation

    real = generation.qwen_coder_1_5b_config

    def shrunk():
        config = real()
        config.hidden_size, config.intermediate_size, config.num_hidden_layers = 64, 128, 2
        config.num_attention_heads, config.num_key_value_heads, config.head_dim = 4, 2, 16
        config.layer_types = config.layer_types[:2]
        return config

    monkeypatch.setattr(generation, "qwen_coder_1_5b_config", shrunk)
    argv = [
        "bench",
        "generation",
        "--prompts",
        "4",
        "--tokens",
        "4",
        "--batch-sizes",
        "1,4",
        "--sequential-prompts",
        "2",
        "--device",
        "cpu",
        "--dtype",
        "bfloat16",
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "Qwen2.5-Coder-1.5B shape, random weights, bfloat16 on cpu" in out
