"""A toy mixture stream and skewed synthetic corpora: fixtures for tests, the demo and the bench.

Not the mixer's sampler (that is `mixer.sampler` / `mixer.stream`, with exact per-domain
budgets and no repeats). `ToyStream` follows the same interface so the trainers can be tested
without it: an IterableDataset yielding {"input_ids", "domain_ids"[, "attention_mask"]} int64
[seq_len] tensors, with `state_dict()` / `load_state_dict()` at the exact next sequence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from mixer.corpus import load_manifest, mlm_special_ids, open_split
from mixer.synthetic import write_synthetic_corpus


def write_skewed_corpus(out: str | Path, train_lengths: Mapping[str, Sequence[int]],
                        heldout_lengths: Mapping[str, Sequence[int]] | None = None, vocab_size: int = 256,
                        seed: int = 0) -> Path:
    """A synthetic corpus whose token frequencies are skewed (domain i: id = V·u^(2+i), u uniform),
    so a model that learns unigram statistics shows a clearly falling loss, differently per domain."""
    write_synthetic_corpus(out, train_lengths, heldout_lengths, vocab_size=vocab_size, seed=seed,
                           token_map=_skew)
    return Path(out)


def _skew(domain: int, ids: np.ndarray, eos: int) -> np.ndarray:
    u = ids.astype(np.float64) / eos
    return np.minimum(np.floor(eos * u ** (2 + domain)), eos - 1).astype(np.int64)


class ToyStream(torch.utils.data.IterableDataset):
    """Sequence k comes from a domain drawn with probability `weights` (seeded by (seed, k)).
    Causal: the domain's train documents joined with EOS, read cyclically `seq_len` at a time.
    MLM (`mlm=True`): one document per sequence, [CLS] doc [SEP] + padding."""

    def __init__(self, corpus_dir: str | Path, weights: Mapping[str, float], seq_len: int, seed: int = 0,
                 mlm: bool = False, limit: int | None = None) -> None:
        manifest = load_manifest(corpus_dir)
        self.domains = manifest.domain_names
        self.p = np.array([weights.get(d, 0.0) for d in self.domains], dtype=np.float64)
        self.p /= self.p.sum()
        self.seq_len, self.seed, self.mlm, self.limit = seq_len, seed, mlm, limit
        self.special = mlm_special_ids(manifest) if mlm else None
        self.docs, self.flat = [], []
        for d in self.domains:
            split = open_split(corpus_dir, d, "train", manifest)
            docs = [split.document(k).astype(np.int64) for k in range(split.num_documents)]
            self.docs.append(docs)
            self.flat.append(np.concatenate([np.append(doc, manifest.eos_id) for doc in docs]) if docs else None)
        self.index = 0  # the next sequence
        self.cursor = [0] * len(self.domains)  # per domain: token offset (causal) or document (MLM)

    def state_dict(self) -> dict:
        return {"index": self.index, "cursor": list(self.cursor)}

    def load_state_dict(self, state: dict) -> None:
        self.index, self.cursor = int(state["index"]), list(state["cursor"])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while self.limit is None or self.index < self.limit:
            d = int(np.random.default_rng([self.seed, self.index]).choice(len(self.domains), p=self.p))
            self.index += 1
            yield self._mlm(d) if self.mlm else self._causal(d)

    def _causal(self, d: int) -> dict[str, torch.Tensor]:
        flat, L = self.flat[d], self.seq_len
        take = np.take(flat, np.arange(self.cursor[d], self.cursor[d] + L), mode="wrap")
        self.cursor[d] = (self.cursor[d] + L) % len(flat)
        return {"input_ids": torch.from_numpy(take), "domain_ids": torch.full((L,), d, dtype=torch.int64)}

    def _mlm(self, d: int) -> dict[str, torch.Tensor]:
        sp, L = self.special, self.seq_len
        doc = self.docs[d][self.cursor[d] % len(self.docs[d])][: L - 2]
        self.cursor[d] += 1
        ids = np.concatenate([[sp.cls], doc, [sp.sep], np.full(L - 2 - len(doc), sp.pad)]).astype(np.int64)
        ids = torch.from_numpy(ids)
        return {"input_ids": ids, "domain_ids": torch.full((L,), d, dtype=torch.int64),
                "attention_mask": (ids != sp.pad).long()}
