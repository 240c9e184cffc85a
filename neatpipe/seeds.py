"""Seed derivation: every seed neatpipe uses is derived from the experiment's seed and a few named
parts, so that the same run draws the same subsets, repeats and racing orders in any process, on any
machine, and after any interruption. This module is a leaf: it imports nothing of neatpipe."""

from __future__ import annotations

import hashlib
import json


def derive_seed(*parts: object) -> int:
    """A non-negative 31-bit seed from any parts (stable across processes and Python versions)."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
