"""Tiny random-weight models of real architectures, built on the spot (no download).

Tests and the offline smoke experiment need a model that goes through exactly the code path of a hub
model: ``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained`` on a folder in the Hugging Face
layout, the tokenizer's chat template, end-of-turn tokens, batched generation. :func:`make_tiny_model`
writes such a folder: a byte-level BPE tokenizer trained in a second or two on Python source from the
standard library (code, comments and docstrings: code and English) plus generated task sentences, a chat
template (ChatML for ``qwen2``, Llama-3 headers for ``llama``), and a few-layer model with random weights.
Its text is gibberish; its shapes, tokens and control flow are real.
"""

from __future__ import annotations

import json
import random
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ARCHS = ("llama", "qwen2")

# standard-library modules whose source makes the tokenizer corpus (code, comments, docstrings)
_CORPUS_MODULES = (
    "textwrap.py",
    "string.py",
    "heapq.py",
    "bisect.py",
    "functools.py",
    "fractions.py",
    "statistics.py",
    "difflib.py",
    "json/decoder.py",
    "json/encoder.py",
    "csv.py",
    "calendar.py",
    "shlex.py",
    "fnmatch.py",
    "colorsys.py",
    "glob.py",
    "copy.py",
    "operator.py",
    "random.py",
    "keyword.py",
    "this.py",
)
_FALLBACK_CODE = '''
def add(a: int, b: int) -> int:
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    """
    return a + b


def is_palindrome(text: str) -> bool:
    """Check whether the given string reads the same forwards and backwards."""
    cleaned = [c.lower() for c in text if c.isalnum()]
    return cleaned == cleaned[::-1]
'''

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinyModelInfo:
    """What was written: the folder, architecture, sizes and the special tokens."""

    path: Path
    arch: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    parameters: int
    eos_token: str
    pad_token: str


def _task_sentences(rng: random.Random, n: int) -> Iterator[str]:
    verbs = [
        "Write a function that",
        "Implement a function which",
        "Return a program that",
        "Create code that",
    ]
    tasks = [
        "returns the sum of a list of numbers",
        "checks whether a string is a palindrome",
        "sorts a list of words by length",
        "counts the vowels in a sentence",
        "finds the largest prime factor of n",
        "reverses the words of a string",
        "merges two sorted lists",
        "removes duplicates while keeping order",
        "computes the n-th Fibonacci number",
        "returns the median of a list",
    ]
    tails = ["", " The input is never empty.", " Use only the standard library.", " Handle negative numbers."]
    for _ in range(n):
        yield f"{rng.choice(verbs)} {rng.choice(tasks)}.{rng.choice(tails)}"


def tokenizer_corpus(seed: int = 0, max_chars: int = 400_000) -> list[str]:
    """Training text: standard-library source (code and English) and generated task sentences."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    total = 0
    for name in _CORPUS_MODULES:
        path = stdlib / name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if name == "this.py":  # the Zen of Python is stored rot13-encoded
            import codecs

            text = codecs.decode(text.split('"""')[1], "rot13")
        texts.append(text[: max_chars - total])
        total += len(texts[-1])
        if total >= max_chars:
            break
    if not texts:
        texts.append(_FALLBACK_CODE)
    texts.extend(_task_sentences(random.Random(seed), 2000))
    return texts


def _special_tokens(arch: str) -> dict[str, str | list[str]]:
    if arch == "qwen2":
        return {
            "bos": "",
            "eos": "<|im_end|>",
            "pad": "<|endoftext|>",
            "template": CHATML_TEMPLATE,
            "all": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            "end": ["<|im_end|>", "<|endoftext|>"],
        }
    return {
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
        "pad": "<|end_of_text|>",
        "template": LLAMA3_TEMPLATE,
        "all": [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ],
        "end": ["<|eot_id|>", "<|end_of_text|>"],
    }


def train_tokenizer(arch: str = "llama", vocab_size: int = 1024, seed: int = 0) -> object:
    """A byte-level BPE ``PreTrainedTokenizerFast`` with the architecture's special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = _special_tokens(arch)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special["all"]),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=special["bos"] or None,
        eos_token=special["eos"],
        pad_token=special["pad"],
    )
    fast.chat_template = special["template"]
    return fast


def make_tiny_model(
    path: str | Path,
    *,
    arch: str = "llama",
    seed: int = 0,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_positions: int = 2048,
) -> TinyModelInfo:
    """Write a random-weight ``arch`` model with a trained tokenizer to ``path`` (created if missing).

    The folder is in the standard layout (``config.json``, ``model.safetensors``, ``tokenizer.json``,
    ``tokenizer_config.json`` with the chat template, ``generation_config.json``) and loads with
    ``hf:<path>`` exactly like a downloaded model. The same arguments give the same weights.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    out = Path(path).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(arch, vocab_size, seed)
    special = _special_tokens(arch)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in special["all"]}
    end_ids = [ids[t] for t in special["end"]]
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        # ten times the usual 0.02: with the default, a tiny random model repeats one token whatever the
        # prompt; with this, greedy text depends on the prompt, which tests of batching need
        initializer_range=0.2,
        eos_token_id=end_ids[0],
        pad_token_id=ids[special["pad"]],
        bos_token_id=ids[special["bos"]] if special["bos"] else None,
    )
    config = Qwen2Config(**common) if arch == "qwen2" else LlamaConfig(**common)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=common["bos_token_id"], eos_token_id=end_ids, pad_token_id=common["pad_token_id"]
    )
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar is noise here
    try:
        model.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(out, save_jinja_files=False)
    _check_layout(out)
    return TinyModelInfo(
        path=out,
        arch=arch,
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_layers=num_layers,
        parameters=sum(p.numel() for p in model.parameters()),
        eos_token=str(special["eos"]),
        pad_token=str(special["pad"]),
    )


def _check_layout(folder: Path) -> None:
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ):
        if not (folder / name).is_file():
            raise RuntimeError(f"tiny model folder {folder} lacks {name} after saving")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    if "chat_template" not in config:
        raise RuntimeError(f"{folder}/tokenizer_config.json has no chat_template after saving")
