"""``neatpipe finetune``: SFT and DPO with TRL / PEFT on a tiny model built on the spot, on CPU.

Training data are written here from HumanEval prompts and reference solutions (no model needed). What
the trainer reports is checked against plain transformers forward passes: the fine-tuned model's loss
on the examples, and its preference margin, are measured here independently of TRL. The outputs then
run a pipeline through ``hf:DIR`` like any model, merged weights and adapter folder alike.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from neatpipe.bench import load_humaneval
from neatpipe.cli import main
from neatpipe.models import ModelNotAvailableError, load_backend, make_tiny_model
from neatpipe.models.hf import HFBackend
from neatpipe.models.spec import HFSpec
from neatpipe.training import FinetuneOptions, finetune

SYSTEM = "You write correct Python functions."
MAX_LENGTH = 320  # tokens: keeps every step short on a CPU


def _problems(n: int):
    return list(load_humaneval().problems)[:n]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def tiny(root: Path) -> Path:
    return make_tiny_model(root / "tiny", arch="llama", seed=0).path


@pytest.fixture(scope="module")
def sft_file(root: Path) -> Path:
    rows = [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": p.prompt},
                {"role": "assistant", "content": p.reference_solution},
            ],
            "task_id": p.task_id,
            "source": "reference",
        }
        for p in _problems(8)
    ]
    return _write_jsonl(root / "sft.jsonl", rows)


@pytest.fixture(scope="module")
def dpo_file(root: Path) -> Path:
    problems = _problems(8)
    rows = [
        {
            "prompt": [{"role": "user", "content": p.prompt}],
            "chosen": [{"role": "assistant", "content": p.reference_solution}],
            # another problem's solution: code of the same kind, wrong for this prompt
            "rejected": [{"role": "assistant", "content": problems[(i + 3) % 8].reference_solution}],
            "task_id": p.task_id,
        }
        for i, p in enumerate(problems)
    ]
    return _write_jsonl(root / "dpo.jsonl", rows)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- independent measurements: plain transformers forward passes ---------------------------------------------


def _load(folder: Path):
    """Model and tokenizer as the hf: backend loads them (an adapter folder: base + adapter merged)."""
    loaded = HFBackend(HFSpec(model=str(folder), device="cpu", dtype="float32")).load_model()
    return loaded.model, loaded.tokenizer


def _answer_logprob(model, tokenizer, prompt: list[dict], answer: list[dict]) -> tuple[float, int]:
    """Summed log-probability of the answer's tokens after the prompt (chat template), and their count."""
    import torch

    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(prompt + answer, tokenize=False)
    assert full_text.startswith(prompt_text)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full_text, add_special_tokens=False)["input_ids"][:MAX_LENGTH]
    # the answer starts where the two token lists part (a token merged across the seam is the answer's,
    # as TRL counts it); logits at position i predict token i + 1
    prefix = next(
        (i for i, (a, b) in enumerate(zip(prompt_ids, ids, strict=False)) if a != b), len(prompt_ids)
    )
    start = prefix - 1
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return float(logp[start:].sum()), len(ids) - 1 - start


def sft_loss(folder: Path, data: Path) -> float:
    """Mean negative log-likelihood per answer token over the file's examples."""
    model, tokenizer = _load(folder)
    total, count = 0.0, 0
    for row in _rows(data):
        logp, n = _answer_logprob(model, tokenizer, row["messages"][:-1], row["messages"][-1:])
        total, count = total - logp, count + n
    return total / count


def preference_margin(folder: Path, data: Path) -> float:
    """Mean over examples of log p(chosen) - log p(rejected)."""
    model, tokenizer = _load(folder)
    margins = [
        _answer_logprob(model, tokenizer, r["prompt"], r["chosen"])[0]
        - _answer_logprob(model, tokenizer, r["prompt"], r["rejected"])[0]
        for r in _rows(data)
    ]
    return sum(margins) / len(margins)


# -- the trained outputs, shared by the tests below ------------------------------------------------------------


@pytest.fixture(scope="module")
def sft_full(root: Path, tiny: Path, sft_file: Path):
    options = FinetuneOptions(method="sft", max_steps=6, learning_rate=2e-3, max_length=MAX_LENGTH, seed=1)
    return finetune([sft_file], f"hf:{tiny}", root / "sft-full", options)


@pytest.fixture(scope="module")
def sft_lora(root: Path, tiny: Path, sft_file: Path):
    options = FinetuneOptions(
        method="sft", lora=True, max_steps=6, learning_rate=1e-2, max_length=MAX_LENGTH, seed=1
    )
    return finetune([sft_file], f"hf:{tiny}", root / "sft-lora", options)


@pytest.fixture(scope="module")
def dpo_adapter(root: Path, tiny: Path, dpo_file: Path):
    options = FinetuneOptions(
        method="dpo",
        lora=True,
        adapter=True,
        max_steps=5,
        learning_rate=5e-3,
        batch_size=4,
        max_length=MAX_LENGTH,
        seed=1,
    )
    return finetune([dpo_file], f"hf:{tiny}", root / "dpo-adapter", options)


@pytest.mark.parametrize("which", ["sft_full", "sft_lora"])
def test_sft_lowers_the_loss_on_its_examples(which: str, request, tiny: Path, sft_file: Path) -> None:
    result = request.getfixturevalue(which)
    log = result.log
    assert [e["step"] for e in log] == list(range(1, 7))
    assert log[0]["loss"] > log[-1]["loss"]  # the trainer's own account
    before, after = sft_loss(tiny, sft_file), sft_loss(result.out, sft_file)
    assert after < before - 0.05, (before, after)  # measured here, outside TRL
    assert (result.out / "config.json").is_file() and not (result.out / "adapter_config.json").exists()


def test_the_output_folder_records_how_it_was_made(sft_lora, sft_file: Path, tiny: Path) -> None:
    out = sft_lora.out
    logged = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert logged == sft_lora.log
    assert {"step", "loss", "learning_rate", "epoch"} <= set(logged[0])
    assert logged[0]["learning_rate"] == pytest.approx(1e-2)  # linear decay from the given rate
    assert logged[-1]["learning_rate"] < logged[0]["learning_rate"]
    assert (out / "loss.svg").read_text().lstrip().startswith("<?xml") and sft_lora.plot == out / "loss.svg"
    record = json.loads((out / "finetune.json").read_text())
    assert record["data"] == [
        {"path": str(sft_file), "sha256": hashlib.sha256(sft_file.read_bytes()).hexdigest(), "examples": 8}
    ]
    assert record["method"] == "sft" and record["output"] == "merged" and record["seed"] == 1
    assert record["model"]["source"] == str(tiny) and record["hyperparameters"]["lora"] is True
    assert record["hyperparameters"]["learning_rate"] == 1e-2 and record["steps"] == 6
    assert all(record["versions"][name] for name in ("trl", "peft", "transformers", "torch"))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny).chat_template
    assert not list(out.parent.glob(".sft-lora.partial-*"))  # the work folder was renamed into place


def test_dpo_with_lora_widens_the_preference_margin(dpo_adapter, tiny: Path, dpo_file: Path) -> None:
    log = dpo_adapter.log
    assert len(log) == 5 and all("reward_margin" in e for e in log)
    assert log[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the first step
    assert log[-1]["loss"] < log[0]["loss"] and log[-1]["reward_margin"] > log[0]["reward_margin"]
    out = dpo_adapter.out
    assert (out / "adapter_config.json").is_file() and not (out / "config.json").exists()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny)
    # measured here through hf: loading (base + adapter), so it also shows the adapter is applied
    assert preference_margin(out, dpo_file) > preference_margin(tiny, dpo_file) + 1.0


def test_an_adapter_folder_loads_as_its_base_with_the_adapter_merged(dpo_adapter, tiny: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, _ = _load(dpo_adapter.out)
    base, _ = _load(tiny)
    expected = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny), str(dpo_adapter.out)
    ).merge_and_unload()
    ids = torch.tensor([[5, 17, 99, 3, 250]])
    with torch.no_grad():
        got, want, plain = (m(ids).logits for m in (model, expected, base))
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, plain, atol=1e-3)
    backend = HFBackend(HFSpec(model=str(dpo_adapter.out), device="cpu"))
    assert backend.identity().startswith("hf:adapter#") and backend.identity().endswith(
        HFBackend(HFSpec(model=str(tiny), device="cpu")).identity()
    )


def test_an_adapter_whose_base_is_missing_names_it(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/no/such/base"}))
    with pytest.raises(ModelNotAvailableError, match="/no/such/base"):
        load_backend({"spec": f"hf:{tmp_path}", "device": "cpu"})


@pytest.mark.parametrize("which", ["sft_lora", "dpo_adapter"])
def test_the_output_runs_a_pipeline_as_hf_dir(which: str, request, tmp_path: Path, sandbox) -> None:
    from neatpipe.genome import read_genome
    from neatpipe.runtime import run_pipeline

    out = request.getfixturevalue(which).out
    genome = tmp_path / "solo.yaml"
    genome.write_text(Path("genomes/solo.yaml").read_text().replace("max_tokens: 512", "max_tokens: 12"))
    backend = load_backend({"spec": f"hf:{out}", "device": "cpu"})
    run = run_pipeline(read_genome(genome), _problems(2), {"qwen2.5-coder-1.5b": backend}, sandbox)
    assert [t.task_id for t in run.trajectories] == ["HumanEval/0", "HumanEval/1"]
    assert run.model_calls == 2 and 0 < run.completion_tokens <= 24 and not run.synthetic


def test_the_same_seed_trains_the_same_way(root: Path, tiny: Path, sft_file: Path) -> None:
    def losses(name: str, seed: int) -> list[float]:
        options = FinetuneOptions(
            max_steps=2, learning_rate=1e-3, max_length=MAX_LENGTH, seed=seed, batch_size=2
        )
        return [e["loss"] for e in finetune([sft_file], f"hf:{tiny}", root / name, options).log]

    first = losses("seed-a", 7)
    assert losses("seed-b", 7) == first
    assert losses("seed-c", 8) != first  # the seed orders the data


# -- faults: one line, exit 2, before any model is loaded ------------------------------------------------------


def _bad_lines(tmp_path: Path) -> dict[str, Path]:
    good = {
        "messages": [{"role": "user", "content": "Add."}, {"role": "assistant", "content": "def f(): pass"}]
    }
    files = {
        "not_json": [good, "{not json"],
        "content": [{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": 3}]}],
        "last_role": [{"messages": [{"role": "user", "content": "x"}]}],
        "preference": [
            {
                "prompt": [{"role": "user", "content": "x"}],
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            }
        ],
        "sft": [good],
    }
    out = {}
    for name, rows in files.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        out[name] = path
    return out


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "missing.jsonl: cannot read: no such file or directory"),
        ("not_json", "not_json.jsonl:2: not a JSON object"),
        ("content", "content.jsonl:1: field 'messages[1].content' must be a string, got 3"),
        ("last_role", "last_role.jsonl:1: field 'messages[0].role' of the last message must be 'assistant'"),
        ("preference", "field 'messages' is missing (this is preference data: train it with --method dpo)"),
        (
            "sft_as_dpo",
            "sft.jsonl:1: field 'prompt' is missing (this is sft data: train it with --method sft)",
        ),
        ("method", "unknown method 'ppo'; choose one of sft, dpo"),
        ("adapter", "adapter output needs LoRA training (--lora)"),
        ("served", "fine-tuning needs the weights"),
        ("not_empty", "is not empty; give a new folder"),
        ("no_model", "no model folder at"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(case: str, expected: str, tmp_path: Path, capsys) -> None:
    files = _bad_lines(tmp_path)
    model, out = "hf:/no/such/model", tmp_path / "out"  # data faults are found before the model is looked at
    data, extra = [str(files.get(case, tmp_path / "missing.jsonl"))], []
    if case == "sft_as_dpo":
        data, extra = [str(files["sft"])], ["--method", "dpo"]
    elif case == "method":
        data, extra = [str(files["sft"])], ["--method", "ppo"]
    elif case == "adapter":
        data, extra = [str(files["sft"])], ["--adapter"]
    elif case == "served":
        data, model = [str(files["sft"])], "ollama:qwen2.5-coder:1.5b"
    elif case == "not_empty":
        data, model = [str(files["sft"])], "hf:/no/such/model"
        out.mkdir()
        (out / "config.json").write_text("{}")
    elif case == "no_model":
        data = [str(files["sft"])]
    assert main(["finetune", *data, "--model", model, "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neatpipe: error: ") and err.count("\n") == 1, err
    assert expected in err
    assert case == "not_empty" or not out.exists()


def test_the_command_trains_and_says_where_the_model_is(
    root: Path, tiny: Path, sft_file: Path, capsys
) -> None:
    out = root / "cli-adapter"
    args = ["finetune", str(sft_file), "--model", f"hf:{tiny}", "--out", str(out), "--lora", "--adapter"]
    assert main([*args, "--max-steps", "2", "--lr", "1e-3", "--max-length", str(MAX_LENGTH), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"(use it as hf:{out})" in printed and "sft, adapter) on 8 examples: 2 steps" in printed
    assert (out / "adapter_model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert json.loads((out / "finetune.json").read_text())["output"] == "adapter"


def test_without_matplotlib_the_plot_is_left_out_with_a_note(tmp_path: Path, monkeypatch) -> None:
    import sys

    from neatpipe.training.finetune import write_loss_plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    notes: list[str] = []
    assert write_loss_plot([{"step": 1, "loss": 2.0}], tmp_path / "loss.svg", "sft", notes) is None
    assert notes == ["no loss plot: matplotlib is not installed (pip install 'neatpipe[plot]')"]
    assert not (tmp_path / "loss.svg").exists()
