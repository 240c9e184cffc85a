"""``neatpipe bench generation``: tokens per second of the transformers backend's batched path.

What runs, all in one process on one device:

* ``batched``: :class:`~neatpipe.models.hf.HFBackend`'s own decoding loop (the path every pipeline node
  uses) at batch sizes 1, 16, 64 and 164 over the HumanEval prompts, greedy, every request generating
  exactly ``--tokens`` tokens (end-of-sequence ignored).
* ``generate``: one ``model.generate`` call per prompt (greedy, ``min_new_tokens = max_new_tokens``), what a
  harness that loops over problems does.

The model is a Qwen2.5-Coder-1.5B-shaped ``Qwen2ForCausalLM`` with random weights built from its config
in code (hidden 1536, 28 layers, 12 heads, 2 KV heads, intermediate 8960, vocabulary 151936, tied
embeddings) in bfloat16: the same compute as the trained model, nothing downloaded. ``--model tiny`` uses a
tiny model with a trained tokenizer instead, for a smoke test on CPU.

Prompts without the real tokenizer: each HumanEval prompt is wrapped in the ChatML turn that Qwen's chat
template writes, cut into pieces the way byte-level BPE pre-tokenizers do (words with their leading space,
digit groups, punctuation runs, whitespace runs; long words split every 6 characters), and each piece
becomes a token id by hashing (CRC-32 modulo the ordinary vocabulary). The lengths approximate the real
tokenizer's; the ids do not matter for speed. With ``--model tiny`` the tiny model's own tokenizer and
chat template are used.

Cold and warm: ``cold`` is the first batch of a size (the first ``b`` prompts), the first time the process
runs that shape, so it includes kernel selection and allocator growth; ``warm`` is then the whole workload
at that batch size. The sequential methods (batch 1 and ``generate``) run on the first
``--sequential-prompts`` prompts only (their per-prompt rate does not depend on how many there are); the
table says how many prompts each row used. The ratio is a row's warm rate over ``generate``'s warm rate.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from neatpipe.cli import CLIError

MODELS = ("qwen2.5-coder-1.5b", "tiny")
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
QWEN_SPECIAL_FROM = 151643  # ids from here on are Qwen's special tokens
_PIECES = re.compile(r" ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    method: str
    batch_size: int
    prompts: int
    new_tokens: int  # generated in the warm run
    cold_seconds: float
    cold_tokens_per_s: float
    warm_seconds: float
    warm_tokens_per_s: float
    ratio: float | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", choices=MODELS, default=MODELS[0], help="model shape (default: %(default)s)"
    )
    parser.add_argument("--prompts", type=int, default=164, help="HumanEval prompts to use (default: 164)")
    parser.add_argument("--tokens", type=int, default=512, help="new tokens per request (default: 512)")
    parser.add_argument(
        "--batch-sizes", default="1,16,64,164", help="comma-separated batch sizes (default: %(default)s)"
    )
    parser.add_argument(
        "--sequential-prompts",
        type=int,
        default=8,
        help="prompts for batch size 1 and the per-prompt generate baseline (default: 8)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, MPS, CPU), cuda, cpu, ... (default: auto)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "bfloat16", "float16", "float32"),
        help="auto: bfloat16 on CUDA, float16 on MPS, float32 on CPU (default: auto)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the model.generate baseline")
    parser.add_argument("--output", metavar="JSON", help="also write the rows as JSON to this file")


def humaneval_prompts(limit: int) -> list[str]:
    """The first ``limit`` HumanEval prompts, read from the file shipped in the package."""
    data = resources.files("neatpipe").joinpath("data/HumanEval.jsonl.gz").read_bytes()
    records = [
        json.loads(line) for line in gzip.decompress(data).decode("utf-8").splitlines() if line.strip()
    ]
    return [r["prompt"] for r in records[:limit]]


def chat_text(prompt: str) -> str:
    """The prompt as Qwen2.5's chat template writes a one-turn request with its default system message."""
    user = f"Complete the following Python function.\n\n```python\n{prompt}```"
    return (
        f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
        f"<|im_start|>assistant\n"
    )


def hashed_token_ids(text: str, vocab: int = QWEN_SPECIAL_FROM) -> list[int]:
    """Token ids of roughly the real tokenizer's count, without the tokenizer (see the module docstring)."""
    ids = []
    for special in re.split(r"(<\|im_start\|>|<\|im_end\|>)", text):
        if special == "<|im_start|>":
            ids.append(151644)
        elif special == "<|im_end|>":
            ids.append(151645)
        else:
            for piece in _PIECES.findall(special):
                for k in range(0, len(piece), 6) if len(piece) > 8 else (0,):
                    chunk = piece[k : k + 6] if len(piece) > 8 else piece
                    ids.append(zlib.crc32(chunk.encode()) % vocab)
    return ids


def qwen_coder_1_5b_config() -> Any:
    """Qwen2.5-Coder-1.5B-Instruct's architecture, written out (no download)."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=151936,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
    )


def _build(args: argparse.Namespace, workdir: Path) -> tuple[Any, list[list[int]], str]:
    import torch
    from transformers import AutoModelForCausalLM

    from neatpipe.models.hf import attention_implementation, encode_chat, resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    attention = attention_implementation(dtype)  # what the backend loads a model with
    extra = {"attn_implementation": attention} if attention else {}
    texts = humaneval_prompts(args.prompts)
    if args.model == "tiny":
        from transformers import AutoTokenizer

        from neatpipe.models.tiny import make_tiny_model

        info = make_tiny_model(workdir / "tiny", max_positions=4096)
        tokenizer = AutoTokenizer.from_pretrained(info.path)
        model = AutoModelForCausalLM.from_pretrained(info.path, dtype=getattr(torch, dtype), **extra)
        prompts = [
            encode_chat(tokenizer, [{"role": "user", "content": f"Complete this function:\n{p}"}])
            for p in texts
        ]
        name = f"tiny llama ({sum(p.numel() for p in model.parameters()):,} parameters)"
    else:
        config = qwen_coder_1_5b_config()
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), **extra)
        prompts = [hashed_token_ids(chat_text(p)) for p in texts]
        name = "Qwen2.5-Coder-1.5B shape, random weights"
    model.to(device)
    model.eval()
    return model, prompts, f"{name}, {dtype} on {device}"


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_batched(
    model: Any, prompts: list[list[int]], tokens: int, batch: int
) -> tuple[float, int, float, int]:
    """(cold seconds, cold tokens, warm seconds, warm tokens) of the backend's path at one batch size."""
    from neatpipe.models.decoding import TokenRequest
    from neatpipe.models.hf import HFBackend

    device = next(model.parameters()).device
    backend = HFBackend.from_model(model, name="bench", batch_size=batch)
    requests = [TokenRequest(tuple(p), tokens, ignore_eos=True) for p in prompts]
    _sync(device)
    t0 = time.perf_counter()
    cold = backend.generate_tokens(requests[:batch])
    _sync(device)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = backend.generate_tokens(requests)
    _sync(device)
    warm_s = time.perf_counter() - t0
    return cold_s, sum(len(r.token_ids) for r in cold), warm_s, sum(len(r.token_ids) for r in warm)


def _run_generate(model: Any, prompts: list[list[int]], tokens: int) -> tuple[float, int, float, int]:
    """The same figures for one ``model.generate`` call per prompt."""
    import torch
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    config = GenerationConfig(
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=False,
        pad_token_id=pad,
        eos_token_id=model.config.eos_token_id,
    )

    def one(p: list[int]) -> int:
        ids = torch.tensor([p], device=device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        return int(out.shape[1] - ids.shape[1])

    _sync(device)
    t0 = time.perf_counter()
    cold_tokens = one(prompts[0])
    _sync(device)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm_tokens = sum(one(p) for p in prompts)
    _sync(device)
    return cold_s, cold_tokens, time.perf_counter() - t0, warm_tokens


def _rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else float("inf")


def _table(rows: list[Row], title: str) -> str:
    head = (
        f"{'method':<10} {'batch':>5} {'prompts':>7} {'tokens':>8} {'cold s':>8} {'cold tok/s':>11} "
        f"{'warm s':>8} {'warm tok/s':>11} {'ratio':>7}"
    )
    lines = [title, head, "-" * len(head)]
    for r in rows:
        ratio = f"{r.ratio:>6.1f}x" if r.ratio is not None else f"{'-':>7}"
        lines.append(
            f"{r.method:<10} {r.batch_size:>5} {r.prompts:>7} {r.new_tokens:>8} {r.cold_seconds:>8.2f} "
            f"{r.cold_tokens_per_s:>11.1f} {r.warm_seconds:>8.2f} {r.warm_tokens_per_s:>11.1f} {ratio}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        sizes = sorted({int(x) for x in str(args.batch_sizes).split(",") if x.strip()})
    except ValueError:
        raise CLIError(f"--batch-sizes must be comma-separated integers, got {args.batch_sizes!r}") from None
    for name in ("prompts", "tokens", "sequential_prompts"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1")
    if not sizes or sizes[0] < 1:
        raise CLIError("--batch-sizes needs at least one size >= 1")
    if not 1 <= args.prompts <= 164:
        raise CLIError("--prompts must be between 1 and 164 (HumanEval has 164)")

    with tempfile.TemporaryDirectory(prefix="neatpipe-bench-") as tmp:
        model, prompts, described = _build(args, Path(tmp))
        sequential = prompts[: args.sequential_prompts]
        capped = sorted({min(b, len(prompts)) for b in sizes})
        rows: list[Row] = []
        for b in capped:
            work = sequential if b == 1 else prompts
            cold_s, cold_t, warm_s, warm_t = _run_batched(model, work, args.tokens, b)
            rows.append(
                Row(
                    "batched",
                    b,
                    len(work),
                    warm_t,
                    cold_s,
                    _rate(cold_t, cold_s),
                    warm_s,
                    _rate(warm_t, warm_s),
                )
            )
            print(f"  batched, batch {b}: {_rate(warm_t, warm_s):.1f} tok/s warm", flush=True)
        if not args.no_baseline:
            cold_s, cold_t, warm_s, warm_t = _run_generate(model, sequential, args.tokens)
            base = Row(
                "generate",
                1,
                len(sequential),
                warm_t,
                cold_s,
                _rate(cold_t, cold_s),
                warm_s,
                _rate(warm_t, warm_s),
                1.0,
            )
            rows = [Row(**{**asdict(r), "ratio": r.warm_tokens_per_s / base.warm_tokens_per_s}) for r in rows]
            rows.append(base)

    title = (
        f"Generation throughput: {described}; {args.tokens} new tokens per request "
        f"(end-of-sequence ignored), greedy, {len(prompts)} HumanEval prompts"
    )
    print(_table(rows, title))
    if args.output:
        Path(args.output).write_text(
            json.dumps({"title": title, "rows": [asdict(r) for r in rows]}, indent=2)
        )
    return 0
