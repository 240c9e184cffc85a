"""Seed derivation: every seed neatpipe uses is derived from the experiment's seed and a few named
parts, so that the same run draws the same subsets, repeats and racing orders in any process, on any
machine, and after any interruption. This module is a leaf: it imports nothing of neatpipe."""

from __future__ import annotations

import hashlib
import json


def seed_from_text(text: str, bits: int = 31) -> int:
    """A non-negative ``bits``-bit integer from the SHA-256 of ``text``: its first ``ceil(bits / 8)``
    bytes, big-endian, with the bits above ``bits`` cleared. Stable across processes, machines and
    Python versions (unlike ``hash``), so a seed derived once is derived again after a restart."""
    if bits < 1:
        raise ValueError(f"bits must be at least 1, got {bits}")
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[: (bits + 7) // 8], "big") & ((1 << bits) - 1)


def derive_seed(*parts: object) -> int:
    """A non-negative 31-bit seed from any parts (stable across processes and Python versions)."""
    return seed_from_text(json.dumps([str(p) for p in parts]), 31)
