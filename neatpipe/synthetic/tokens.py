"""Token counts for a backend that has no tokenizer.

The runner and the reports account for tokens per call (budgets, cost per problem), and ``max_tokens``
must cut an answer where a model would stop. The synthetic coder has no vocabulary, so it counts one
token per word (``\\w+``) or punctuation character, which is close to what code tokenizers give for
Python and English, and truncates at the same boundaries.
"""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Words and punctuation characters: close to a code tokenizer's count for Python and English."""
    return len(_TOKEN_RE.findall(text))


def truncate_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut after ``max_tokens`` estimated tokens (unchanged when it has no more)."""
    for i, m in enumerate(_TOKEN_RE.finditer(text)):
        if i == max_tokens:
            return text[: m.start()].rstrip(" ")
    return text
