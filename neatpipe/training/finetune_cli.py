"""``neatpipe finetune DATA... --model SPEC --method sft|dpo [--lora [--adapter]] --out DIR``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    description = (
        "Fine-tune an hf: model on JSONL datasets (sft/repair: messages; dpo: prompt/chosen/rejected) with "
        "TRL, fully or with LoRA, and write a folder that loads as hf:DIR in any genome (merged weights, or "
        "with --adapter the LoRA adapter only), with training_log.jsonl, loss.svg and finetune.json beside "
        "it. Needs pip install 'neatpipe[train]'."
    )
    p = sub.add_parser(
        "finetune", help="fine-tune a model on datasets with TRL / PEFT", description=description
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="JSONL training files")
    p.add_argument("--model", required=True, metavar="SPEC", help="hf:<hub id or folder> to start from")
    p.add_argument("--method", default="sft", help="sft (supervised, also repair data) or dpo (default: sft)")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder for the fine-tuned model")
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter instead of all weights")
    p.add_argument(
        "--adapter", action="store_true", help="with --lora: keep the adapter only (default: merge it)"
    )
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the data (default: 1)")
    p.add_argument("--max-steps", type=int, help="optimizer steps; overrides --epochs")
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: sft 2e-5, sft --lora 2e-4, dpo 1e-6, dpo --lora 1e-5)",
    )
    p.add_argument("--batch-size", type=int, default=4, help="examples per device step (default: 4)")
    p.add_argument("--grad-accum", type=int, default=1, help="steps per optimizer update (default: 1)")
    p.add_argument("--max-length", type=int, default=1024, help="longest example in tokens (default: 1024)")
    p.add_argument("--warmup-steps", type=int, default=0, help="steps of linear warm-up (default: 0)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default: 16)")
    p.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (default: 32)")
    p.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (default: 0.05)")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta (default: 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of data order and initial weights (default: 0)")
    p.add_argument("--logging-steps", type=int, default=1, help="log every N steps (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_finetune)


def _finetune(args: argparse.Namespace) -> int:
    from neatpipe.training.finetune import FinetuneOptions, describe, finetune

    options = FinetuneOptions(
        method=args.method,
        lora=args.lora,
        adapter=args.adapter,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        warmup_steps=args.warmup_steps,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        beta=args.beta,
        seed=args.seed,
        logging_steps=args.logging_steps,
    )
    result = finetune(args.data, args.model, args.out, options, progress=not args.quiet)
    print(describe(result))
    return 0
