"""Natural mixture: weights proportional to the tokens each domain has."""
from __future__ import annotations

import math
from typing import Mapping


def natural_weights(available_tokens: Mapping[str, float]) -> dict[str, float]:
    if not available_tokens:
        raise ValueError("no domains given")
    for d, n in available_tokens.items():
        if not (math.isfinite(n) and n >= 0):
            raise ValueError(f"domain {d!r}: available tokens {n!r} must be finite and >= 0")
    total = math.fsum(available_tokens.values())
    if total <= 0:
        raise ValueError("every domain has 0 tokens")
    return {d: n / total for d, n in available_tokens.items()}
