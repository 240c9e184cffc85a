"""neatpipe's batched decoder against transformers' continuous batching (``generate_batch``), greedy, on the
same random-weight model, the same prompts and the same token budget. Prints a table.

    .venv/bin/python scripts/bench_continuous_batching.py [--rows 144] [--tokens 64] [--device cpu]

The numbers decide which engine the ``hf:`` backend uses (docs/backends.md). Both sides are warmed first;
the table also says whether both produced the same greedy tokens for every prompt.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from neatpipe.models import load_backend
from neatpipe.models.decoding import TokenRequest
from neatpipe.models.tiny import make_tiny_model


def prompts(rows: int, length: int) -> list[list[int]]:
    """``rows`` prompts of mixed lengths (``length`` down to ``length - 160`` tokens)."""
    return [[(i * 7 + j) % 500 + 3 for j in range(length - (i % 5) * 40)] for i in range(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=144)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print("| prompt tokens | neatpipe tok/s | continuous batching tok/s | neatpipe is | same greedy tokens |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        path = make_tiny_model(Path(tmp) / "tiny", arch="qwen2", seed=0).path
        ours = load_backend({"spec": f"hf:{path}", "device": args.device, "dtype": "float32"})
        theirs = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa", dtype=torch.float32)
        theirs.to(args.device)
        config = GenerationConfig(
            max_new_tokens=args.tokens, do_sample=False, eos_token_id=-1, pad_token_id=0
        )
        for length in (300, 700):
            batch = prompts(args.rows, length)
            requests = [TokenRequest(tuple(p), args.tokens, ignore_eos=True) for p in batch]
            ours.generate_tokens(requests[:4])
            theirs.generate_batch(batch[:4], generation_config=config)
            start = time.perf_counter()
            mine = ours.generate_tokens(requests)
            own_s = time.perf_counter() - start
            start = time.perf_counter()
            out = theirs.generate_batch(batch, generation_config=config)
            cb_s = time.perf_counter() - start
            by_prompt = {tuple(o.prompt_ids): list(o.generated_tokens)[: args.tokens] for o in out.values()}
            same = sum(list(r.token_ids) == by_prompt.get(tuple(p)) for r, p in zip(mine, batch, strict=True))
            tokens = args.rows * args.tokens
            print(f"| {length} | {tokens / own_s:,.0f} | {tokens / cb_s:,.0f} | {cb_s / own_s:.1f}x "
                  f"| {same}/{args.rows} |")  # fmt: skip
        ours.close()


if __name__ == "__main__":
    main()
