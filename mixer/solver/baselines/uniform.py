"""Uniform mixture: every domain the same weight."""
from __future__ import annotations

from typing import Sequence


def uniform_weights(domains: Sequence[str]) -> dict[str, float]:
    if not domains:
        raise ValueError("no domains given")
    return {d: 1.0 / len(domains) for d in domains}
