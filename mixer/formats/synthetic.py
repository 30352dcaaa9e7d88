"""Synthetic corpora in the real on-disk format, with answers known by construction.

Benchmarks and examples need corpora the bundled text cannot give: hundreds of millions of tokens
(`write_synthetic_corpus`, `lognormal_lengths`: web-like log-normal document lengths), or token
statistics a small model visibly learns, differently per domain (`write_skewed_corpus`,
`write_example_corpus`). They are written through `mixer.formats.corpus`, the format's owner, so
every reader sees a corpus like any other (its rules say `synthetic`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from mixer.core.atomic import atomic_dir
from mixer.formats.corpus import (FORMAT_VERSION, CorpusManifest, DomainInfo, SplitInfo, TokenizerInfo, file_sha256,
                                  save_manifest, token_dtype_for, write_part)


def lognormal_lengths(n_docs: int, mean_tokens: float, sigma: float, seed: int) -> np.ndarray:
    """Document lengths with a realistic heavy right tail (web text is close to log-normal)."""
    rng = np.random.default_rng(seed)
    mu = np.log(mean_tokens) - sigma**2 / 2
    return np.maximum(1, rng.lognormal(mu, sigma, n_docs)).astype(np.int64)


def write_synthetic_corpus(out: str | Path, train_lengths: Mapping[str, Sequence[int] | np.ndarray],
                           heldout_lengths: Mapping[str, Sequence[int] | np.ndarray] | None = None,
                           vocab_size: int = 50257, seed: int = 0,
                           overwrite: bool = False,
                           token_map: Callable[[int, np.ndarray, int], np.ndarray] | None = None,
                           tokenizer: str | Path | None = None) -> CorpusManifest:
    """Write a corpus whose documents have the given token lengths and random token ids.

    Token values encode nothing but are seeded; doc_ids are (domain index << 40) | k so tests
    can read back which document a token range came from. `tokenizer` (a tokenizer.json path)
    is stored and checksummed as the corpus's tokenizer, so samples can be decoded.
    """
    eos_id = vocab_size - 1  # the last id, as GPT-2's <|endoftext|> is
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
        tok_info = TokenizerInfo(path="", sha256="", kind="none")
        if tokenizer is not None:
            (tmp / "tokenizer.json").write_bytes(Path(tokenizer).read_bytes())
            tok_info = TokenizerInfo(path="tokenizer.json", sha256=file_sha256(tmp / "tokenizer.json"), kind="user")
        manifest = CorpusManifest(
            format_version=FORMAT_VERSION, eos_id=eos_id, vocab_size=vocab_size, token_dtype=dtype.name,
            tokenizer=tok_info, seed=seed,
            rules={"synthetic": True}, domains=domains)
        manifest = save_manifest(tmp, manifest)
    return manifest


def write_skewed_corpus(out: str | Path, train_lengths: Mapping[str, Sequence[int]],
                        heldout_lengths: Mapping[str, Sequence[int]] | None = None, vocab_size: int = 256,
                        seed: int = 0) -> Path:
    """A synthetic corpus whose token frequencies are skewed (domain i: id = V·u^(2+i), u uniform),
    so a model that learns unigram statistics shows a clearly falling loss, differently per domain."""
    write_synthetic_corpus(out, train_lengths, heldout_lengths, vocab_size=vocab_size, seed=seed,
                           token_map=_skew)
    return Path(out)


def random_skewed_corpus(out: str | Path, domains, train_docs: int, heldout_docs: int, lengths: tuple[int, int] = (40, 200),
                         rng_seed: int = 0, vocab_size: int = 256) -> Path:
    """`write_skewed_corpus` with document lengths uniform in [lo, hi): every train split drawn
    first, then every held-out split, from `np.random.default_rng(rng_seed)` (the small corpus of
    most trainer and loop tests)."""
    rng = np.random.default_rng(rng_seed)
    train = {d: rng.integers(*lengths, train_docs) for d in domains}
    held = {d: rng.integers(*lengths, heldout_docs) for d in domains}
    return write_skewed_corpus(out, train, held, vocab_size=vocab_size)


def write_ab_corpus(out: str | Path, documents: int, mean_tokens: float, vocab_size: int, seed: int) -> Path:
    """Two domains, "a" and "b", of `documents` log-normal documents each: the small corpus the
    command-line error and lock tests write into and around."""
    write_synthetic_corpus(out, {"a": lognormal_lengths(documents, mean_tokens, 0.5, 1),
                                 "b": lognormal_lengths(documents, mean_tokens, 0.5, 2)},
                           vocab_size=vocab_size, seed=seed)
    return Path(out)


def write_example_corpus(out: str | Path, domains: Sequence[str], vocab_size: int = 512, documents: int = 600,
                         mean_tokens: float = 60.0) -> Path:
    """The examples' corpus: skewed token frequencies (something to learn, differently per domain)
    and log-normal document lengths, `documents` per domain."""
    lengths = {d: lognormal_lengths(documents, mean_tokens, 1.0, i) for i, d in enumerate(domains)}
    return write_skewed_corpus(out, lengths, vocab_size=vocab_size)


def _skew(domain: int, ids: np.ndarray, eos: int) -> np.ndarray:
    u = ids.astype(np.float64) / eos
    return np.minimum(np.floor(eos * u ** (2 + domain)), eos - 1).astype(np.int64)
