"""Synthetic token corpora in the real on-disk format, for tests and benchmarks only.

The sampler, reader and trainers are tested on corpora whose answer is known (document
lengths, counts) and benchmarked at sizes the bundled corpus cannot reach (hundreds of
millions of tokens). Never used for the bundled default corpus, which is real text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from mixer.atomic import atomic_dir, write_json_atomic
from mixer.corpus import (FORMAT_VERSION, MANIFEST_NAME, CorpusManifest, DomainInfo, SplitInfo,
                          TokenizerInfo, token_dtype_for, write_part)


def lognormal_lengths(n_docs: int, mean_tokens: float, sigma: float, seed: int) -> np.ndarray:
    """Document lengths with a realistic heavy right tail (web text is close to log-normal)."""
    rng = np.random.default_rng(seed)
    mu = np.log(mean_tokens) - sigma**2 / 2
    return np.maximum(1, rng.lognormal(mu, sigma, n_docs)).astype(np.int64)


def write_synthetic_corpus(out: str | Path, train_lengths: Mapping[str, Sequence[int] | np.ndarray],
                           heldout_lengths: Mapping[str, Sequence[int] | np.ndarray] | None = None,
                           vocab_size: int = 50257, eos_id: int | None = None, seed: int = 0,
                           overwrite: bool = False,
                           token_map: Callable[[int, np.ndarray, int], np.ndarray] | None = None) -> CorpusManifest:
    """Write a corpus whose documents have the given token lengths and random token ids.

    Token values encode nothing but are seeded; doc_ids are (domain index << 40) | k so tests
    can read back which document a token range came from.
    """
    eos_id = vocab_size - 1 if eos_id is None else eos_id
    dtype = token_dtype_for(vocab_size)
    heldout_lengths = heldout_lengths or {d: [] for d in train_lengths}
    rng = np.random.default_rng(seed)
    domains: dict[str, DomainInfo] = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for di, name in enumerate(sorted(train_lengths)):
            splits = {}
            for split, lengths in (("train", train_lengths[name]), ("heldout", heldout_lengths.get(name, []))):
                lengths = np.asarray(lengths, dtype=np.int64)
                offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
                np.cumsum(lengths, out=offsets[1:])
                # eos_id never appears inside a document, as with a real tokenizer.
                values = rng.integers(0, eos_id, int(offsets[-1]), dtype=np.int64)
                if token_map is not None:  # reshape the uniform ids per domain (e.g. skewed frequencies)
                    values = token_map(di, values, eos_id)
                values = values.astype(dtype)
                base = (di << 40) | (1 << 39 if split == "heldout" else 0)
                doc_ids = (base + np.arange(len(lengths))).astype(np.uint64)
                rel = f"{name}/{split}/part-00000.arrow"
                (tmp / name / split).mkdir(parents=True)
                write_part(tmp / rel, doc_ids, offsets, values)
                splits[split] = SplitInfo(documents=len(lengths), tokens=int(offsets[-1]), files=[rel])
            domains[name] = DomainInfo(kind="synthetic", splits=splits, report={})
        manifest = CorpusManifest(
            format_version=FORMAT_VERSION, eos_id=eos_id, vocab_size=vocab_size, token_dtype=dtype.name,
            tokenizer=TokenizerInfo(path="", sha256="", kind="none"), seed=seed,
            rules={"synthetic": True}, domains=domains)
        write_json_atomic(tmp / MANIFEST_NAME, manifest.to_json())
    return manifest
