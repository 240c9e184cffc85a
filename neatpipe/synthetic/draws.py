"""Randomness that is a function of its inputs: every draw the synthetic coder makes comes from here.

An answer must depend only on what the request says (preset, problem, role, seed, temperature, text), never
on the order of a batch, on other requests or on a global random state; otherwise a genome scored alone
and the same genome scored with its generation would see different answers, and caches keyed on the
request would lie. So each draw is seeded by SHA-256 of the named parts it depends on.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()


def uniform(*parts: object) -> float:
    """A number in (0, 1) that depends only on ``parts``."""
    return (int.from_bytes(_digest(*parts)[:8], "big") + 0.5) / 2.0**64


def rng(*parts: object) -> random.Random:
    """A random generator whose whole stream depends only on ``parts``."""
    return random.Random(int.from_bytes(_digest(*parts)[:16], "big"))


def weighted_order(weights: Mapping[str, float], draws: random.Random) -> list[str]:
    """Kinds in a random order where heavier kinds tend to come first (weighted sampling without
    replacement); kinds of weight 0 come last, in a fixed order."""
    keyed = [(-math.log(draws.random() + 1e-300) / w, k) for k, w in weights.items() if w > 0]
    rest = [k for k, w in weights.items() if w <= 0]
    return [k for _, k in sorted(keyed)] + rest
