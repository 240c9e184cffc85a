"""Seconds per decode step spent choosing tokens (``select_tokens``) at a batch's shape, on this machine.

Usage: ``python scripts/bench_sampling.py [ROWS] [VOCAB]`` (default 164 rows, Qwen2.5's 151936 tokens).
Two kinds of logits: ``flat``, normals with standard deviation 3 (nearly every token is a candidate, the
worst case), and ``peaked``, normals with standard deviation 2 plus 20 on 32 tokens per row (a trained
model's few plausible continuations). Every row samples at temperature 0.7, with top-p 1, then 0.95.
Prints the median of five steps.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from neatpipe.models.decoding import hash32, row_key, select_tokens


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 164
    vocab = int(sys.argv[2]) if len(sys.argv) > 2 else 151936
    gen = torch.Generator().manual_seed(0)
    flat = torch.randn(rows, vocab, generator=gen) * 3
    peaked = torch.randn(rows, vocab, generator=gen) * 2
    peaked.scatter_add_(1, torch.randint(0, vocab, (rows, 32), generator=gen), torch.full((rows, 32), 20.0))
    ids = torch.arange(vocab, dtype=torch.int64)
    token_hash = hash32((ids * 2654435761 + 0x5BD1E995) & 0xFFFFFFFF)
    temperature = torch.full((rows,), 0.7)
    print(f"select_tokens, {rows} rows x {vocab} tokens, torch threads {torch.get_num_threads()}")
    for (name, logits), top_p in [
        ((n, x), p) for n, x in (("flat", flat), ("peaked", peaked)) for p in (1.0, 0.95)
    ]:
        times = []
        for step in range(5):
            keys = torch.tensor([row_key(seed, step) for seed in range(rows)], dtype=torch.int64)
            t0 = time.perf_counter()
            select_tokens(logits, temperature, torch.full((rows,), top_p), keys, token_hash)
            times.append(time.perf_counter() - t0)
        print(f"  {name:<6} top_p {top_p}: {statistics.median(times):.3f} s per step (median of 5)")


if __name__ == "__main__":
    main()
