"""The corpus's Arrow parts, one domain at a time (the last stage of `mixer prepare`).

`mixer prepare` on one machine and `mixer prepare --ray` both end here, with a domain's kept
documents in source order, their tokens and the held-out mask, so both write the same bytes,
and both record the folder in `corpus.json` with `save_corpus_manifest`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixer.formats.corpus import (FORMAT_VERSION, CorpusManifest, DomainInfo, SplitInfo, TokenizerInfo, file_sha256,
                                  save_manifest, write_part)
from mixer.prepare.config import DomainReport, DomainSource, PrepareConfig
from mixer.prepare.heldout import heldout_json


def write_split(root: Path, domain: str, split: str, doc_ids: np.ndarray, lengths: np.ndarray,
                values: np.ndarray, dtype: np.dtype, part_tokens: int) -> SplitInfo:
    (root / domain / split).mkdir(parents=True, exist_ok=True)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    files, start, part = [], 0, 0
    while start < len(lengths) or part == 0:
        stop = start + 1
        limit = offsets[start] + part_tokens
        stop = max(stop, int(np.searchsorted(offsets, limit, side="right")) - 1)
        stop = min(stop, len(lengths))
        rel = f"{domain}/{split}/part-{part:05d}.arrow"
        write_part(root / rel, doc_ids[start:stop], offsets[start : stop + 1] - offsets[start],
                   values[offsets[start] : offsets[stop]].astype(dtype))
        files.append(rel)
        start, part = stop, part + 1
    return SplitInfo(documents=len(lengths), tokens=int(offsets[-1]), files=files)


@dataclass(frozen=True)
class KeptDocuments:
    """One domain's kept documents, in order: their ids, token counts, tokens (concatenated) and
    which of them are held out."""

    ids: np.ndarray
    lengths: np.ndarray
    values: np.ndarray
    held: np.ndarray


def write_domain(root: Path, src: DomainSource, rep: DomainReport, docs: KeptDocuments, dtype: np.dtype,
                 part_tokens: int) -> DomainInfo:
    """Write one domain's train and held-out parts (documents in kept order); fill `rep`'s counts."""
    ids, lengths, values, held = docs.ids, docs.lengths, docs.values, docs.held
    info = {}
    for split, mask in (("train", ~held), ("heldout", held)):
        idx = np.flatnonzero(mask)
        seg_values = values[np.repeat(mask, lengths)]  # the tokens of the split's documents, in order
        info[split] = write_split(root, src.name, split, ids[idx], lengths[idx], seg_values, dtype, part_tokens)
    rep.train_docs, rep.train_tokens = info["train"].documents, info["train"].tokens
    rep.heldout_docs, rep.heldout_tokens = info["heldout"].documents, info["heldout"].tokens
    report = {"seen": rep.seen, "kept": rep.kept, "skipped_binary": rep.skipped_binary,
              **{f"dropped_{k}": v for k, v in rep.dropped.items()}}
    return DomainInfo(kind=src.kind, splits=info, report=report)


def save_corpus_manifest(root: Path, tok, dtype: np.dtype, config: PrepareConfig,
                         domains: dict[str, DomainInfo]) -> CorpusManifest:
    """corpus.json for the folder `root` (its tokenizer.json already written)."""
    manifest = CorpusManifest(
        format_version=FORMAT_VERSION, eos_id=tok.eos_id, vocab_size=tok.vocab_size, token_dtype=dtype.name,
        tokenizer=TokenizerInfo(path="tokenizer.json", sha256=file_sha256(root / "tokenizer.json"), kind=tok.kind),
        seed=config.seed, rules={**config.rules.to_json(), **heldout_json(config), "max_docs": config.max_docs},
        domains=domains)
    return save_manifest(root, manifest)
