"""The held-out split of `mixer prepare`: how many documents each domain holds out, which ones,
and the rule in words for the report and `corpus.json`.

The count is a fraction of each domain (5 % by default) with a floor for a usable evaluation and
a cap (the paper held out 10k documents per domain), not one fixed number that is a third of a
small domain and a rounding error of a large one. Which documents: the k smallest seeded hashes
of their ids, so the split does not depend on reading order, worker count or scheduling.
`heldout_split` applies both to one domain; the single-machine pipeline and `prepare --ray` call it.
"""
from __future__ import annotations

import warnings
from typing import Protocol, Sequence

import numpy as np
import xxhash

from mixer.core.errors import MixerError, MixerNote
from mixer.prepare.config import DomainSource, PrepareConfig


class HeldoutSettings(Protocol):
    heldout_docs: int | None
    heldout_fraction: float
    heldout_max: int
    heldout_min: int


def heldout_mask(doc_ids: Sequence[int], k: int, seed: int) -> np.ndarray:
    """The k documents with the smallest seeded hash of their ids: stable under reordering."""
    keys = np.array([xxhash.xxh64_intdigest(d.to_bytes(8, "little"), seed=seed) for d in doc_ids], dtype=np.uint64)
    mask = np.zeros(len(doc_ids), dtype=bool)
    mask[np.argsort(keys, kind="stable")[:k]] = True
    return mask


def heldout_count(kept: int, config: HeldoutSettings) -> int:
    """How many of a domain's `kept` documents are held out: `heldout_docs` when fixed, else
    `heldout_fraction` of them, raised to `heldout_min` (but never above a quarter of the
    domain, so a small domain keeps most of its text for training) and capped at `heldout_max`.
    E.g. 5 %: 300 documents -> 50, 119 -> 29, 5,383 -> 269, 1,000,000 -> 10,000."""
    if config.heldout_docs is not None:
        return config.heldout_docs
    k = round(config.heldout_fraction * kept)
    k = max(k, min(config.heldout_min, kept // 4))
    return min(k, config.heldout_max)


def heldout_split(src: DomainSource, ids: Sequence[int], config: PrepareConfig) -> np.ndarray:
    """The held-out mask of one domain's kept documents (in kept order), or the error saying
    the domain is too small for it. `prepare --ray` calls the same function."""
    k = heldout_count(len(ids), config)
    if len(ids) <= k or not ids:
        held = f"--heldout-docs {k}" if config.heldout_docs is not None else f"the {k} held out"
        raise MixerError(f"domain {src.name!r}: only {len(ids)} documents survive the rules, not more than "
                         f"{held}; lower --heldout-docs or add documents")
    if k == 0 and config.heldout_docs is None:  # the rule held none out: found now, not at the first evaluation
        survive = "1 document survives" if len(ids) == 1 else f"{len(ids)} documents survive"
        warnings.warn(f"domain {src.name!r}: {survive} the rules, so the "
                      f"held-out rule (a quarter at most) holds out none and its held-out loss cannot be measured "
                      "(training and the loops refuse to evaluate it); split its long files into several documents, "
                      "or hold documents out with --heldout-docs N", MixerNote, stacklevel=2)
    return heldout_mask(ids, k, config.seed)


def heldout_rule(config: HeldoutSettings) -> str:
    """The held-out rule in words, for the prepare report."""
    if config.heldout_docs is not None:
        return f"held out: {config.heldout_docs} documents per domain (--heldout-docs)"
    return (f"held out: {config.heldout_fraction:.4g} of each domain's kept documents, at least "
            f"{config.heldout_min} (never over a quarter), at most {config.heldout_max:,}")


def heldout_json(config: HeldoutSettings) -> dict:
    """The rule as `corpus.json` records it (under `rules`)."""
    if config.heldout_docs is not None:
        return {"heldout_docs": config.heldout_docs}
    return {"heldout_fraction": config.heldout_fraction, "heldout_min": config.heldout_min,
            "heldout_max": config.heldout_max}
