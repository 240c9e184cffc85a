"""``neatpipe models make-tiny | generate`` and ``neatpipe cache stats | prune``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from neatpipe.cli import CLIError


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="model backends: build a tiny model, try a spec")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    p = models_sub.add_parser(
        "make-tiny",
        help="write a tiny random-weight model (for tests and offline runs)",
        description="Write a small random-weight model of a real architecture with a tokenizer trained on "
        "the spot and a chat template, in the Hugging Face layout; load it with hf:DIR.",
    )
    p.add_argument("dir", help="folder to write (created if missing)")
    p.add_argument(
        "--arch", choices=("llama", "qwen2"), default="llama", help="architecture (default: llama)"
    )
    p.add_argument("--seed", type=int, default=0, help="weight seed (default: 0)")
    p.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary size (default: 1024)")
    p.add_argument("--hidden-size", type=int, default=64, help="hidden size (default: 64)")
    p.add_argument("--layers", type=int, default=2, help="decoder layers (default: 2)")
    p.set_defaults(func=_make_tiny)

    p = models_sub.add_parser(
        "generate",
        help="answer one or more prompts with a model spec (a quick check)",
        description="Send each --prompt as a one-turn chat request, all in one batch, and print the answers "
        "with token counts, latency and cache status.",
    )
    p.add_argument("spec", help="model spec, e.g. hf:./tiny, ollama:qwen2.5-coder:1.5b, openai:URL#MODEL")
    p.add_argument("--prompt", "-p", action="append", required=True, help="user message (repeatable)")
    p.add_argument("--system", help="system message for every prompt")
    p.add_argument("--max-tokens", type=int, default=128, help="token budget per answer (default: 128)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default: 0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spec option, e.g. -o dtype=float32 -o device=cpu (values are read as JSON when they parse)",
    )
    _cache_arguments(p)
    p.add_argument("--json", action="store_true", help="print the completions as JSON lines")
    p.set_defaults(func=_generate)

    cache = sub.add_parser("cache", help="the completion cache: statistics and pruning")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    p = cache_sub.add_parser("stats", help="entries, hits, misses and tokens saved, per model")
    p.add_argument("--path", help="cache file (default: $NEATPIPE_CACHE_DIR or ~/.cache/neatpipe)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_cache_stats)

    p = cache_sub.add_parser(
        "prune",
        help="delete cache entries",
        description="Delete entries not used for DAYS days and/or of models matching NAME (a glob over "
        "the model label or identity); --all empties the cache.",
    )
    p.add_argument("--path", help="cache file (default: $NEATPIPE_CACHE_DIR or ~/.cache/neatpipe)")
    p.add_argument("--older-than", type=float, metavar="DAYS", help="entries not used in the last DAYS days")
    p.add_argument("--model", metavar="NAME", help="entries of this model (glob, e.g. 'ollama:qwen*')")
    p.add_argument("--all", action="store_true", help="every entry and counter")
    p.set_defaults(func=_cache_prune)


def _cache_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache",
        metavar="PATH",
        help="cache file (default: $NEATPIPE_CACHE_DIR or ~/.cache/neatpipe); off or none: no cache",
    )
    p.add_argument(
        "--cache-mode",
        choices=("readwrite", "readonly", "refresh", "off"),
        default="readwrite",
        help="readwrite (default), readonly, refresh (recompute and overwrite) or off",
    )


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _spec_with_options(spec: str, options: list[str]) -> str | dict[str, Any]:
    if not options:
        return spec
    mapping: dict[str, Any] = {"spec": spec}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--option expects KEY=VALUE, got {item!r}")
        mapping[key.strip()] = _option_value(value)
    return mapping


def _make_tiny(args: argparse.Namespace) -> int:
    from neatpipe.models.tiny import make_tiny_model

    for name in ("vocab_size", "hidden_size", "layers"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1")
    if args.vocab_size < 300:
        raise CLIError("--vocab-size must be at least 300 (256 byte tokens, special tokens and some merges)")
    if args.hidden_size % 4:
        raise CLIError("--hidden-size must be a multiple of 4 (4 attention heads)")
    info = make_tiny_model(
        args.dir,
        arch=args.arch,
        seed=args.seed,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        intermediate_size=2 * args.hidden_size,
    )
    print(
        f"wrote {info.arch} model to {info.path}: {info.parameters:,} parameters, vocabulary {info.vocab_size}, "
        f"hidden {info.hidden_size}, {info.num_layers} layers (random weights)"
    )
    print(f"use it as: hf:{info.path}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from neatpipe.models import ChatRequest, CompletionCache, load_backend
    from neatpipe.models.cache import cache_choice

    requests = [
        ChatRequest.user(
            text,
            system=args.system,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            stop=tuple(args.stop),
        )
        for text in args.prompt
    ]
    choice = cache_choice(True if args.cache is None else args.cache)
    cache = CompletionCache(
        None if choice in (None, "default") else choice, mode=args.cache_mode if choice else "off"
    )
    with load_backend(_spec_with_options(args.spec, args.option), cache=cache) as backend:
        completions = backend.generate(requests)
        usage = backend.usage.total()
    for text, c in zip(args.prompt, completions, strict=True):
        if args.json:
            print(
                json.dumps(
                    {
                        "prompt": text,
                        "text": c.text,
                        "prompt_tokens": c.prompt_tokens,
                        "completion_tokens": c.completion_tokens,
                        "finish_reason": c.finish_reason,
                        "latency_s": round(c.latency_s, 4),
                        "cached": c.cached,
                    }
                )
            )
        else:
            source = "cache" if c.cached else f"{c.latency_s:.2f} s"
            print(
                f"--- {text!r} ({c.prompt_tokens} + {c.completion_tokens} tokens, {c.finish_reason}, {source})"
            )
            print(c.text)
    if not args.json:
        print(
            f"--- {usage.requests} request(s) in {usage.seconds:.2f} s: {usage.cache_hits} from the cache, "
            f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens generated",
            file=sys.stderr,
        )
    return 0


def _cache_stats(args: argparse.Namespace) -> int:
    from neatpipe.models import CompletionCache

    stats = CompletionCache(args.path, mode="readonly").stats()
    if args.json:
        data = {k: v for k, v in stats.__dict__.items() if k != "models"}
        data["models"] = [m.__dict__ for m in stats.models]
        print(json.dumps(data, indent=2))
        return 0
    print(f"cache: {stats.path} ({stats.size_bytes / 1e6:.1f} MB)")
    print(
        f"entries: {stats.entries}   hits: {stats.hits}   misses: {stats.misses}   hit rate: {stats.hit_rate:.1%}   "
        f"tokens saved: {stats.tokens_saved}   model time saved: {stats.seconds_saved:.1f} s"
    )
    if stats.models:
        width = max(len(m.model) for m in stats.models)
        print(
            f"{'model':<{width}}  {'entries':>8} {'hits':>8} {'misses':>8} {'tokens saved':>13} {'s saved':>9}"
        )
        for m in stats.models:
            print(
                f"{m.model:<{width}}  {m.entries:>8} {m.hits:>8} {m.misses:>8} {m.tokens_saved:>13} "
                f"{m.seconds_saved:>9.1f}"
            )
    return 0


def _cache_prune(args: argparse.Namespace) -> int:
    from neatpipe.models import CompletionCache

    if args.all and (args.older_than is not None or args.model is not None):
        raise CLIError("--all deletes everything; do not combine it with --older-than or --model")
    if not args.all and args.older_than is None and args.model is None:
        raise CLIError("say what to prune: --older-than DAYS, --model NAME or --all")
    removed = CompletionCache(args.path).prune(
        older_than_days=args.older_than, model=args.model, everything=args.all
    )
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {CompletionCache(args.path).path}")
    return 0
