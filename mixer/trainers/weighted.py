"""A per-domain sampler whose weights can change between steps, for online methods (DoReMi).

    sampler = WeightedDomainSampler("corpus/", {"a": .5, "b": .5}, seq_len=64, batch_size=8, seed=0)
    source = sampler.source(budget_tokens=...)         # a trainers DataSource with set_weights
    sampler.set_weights({"a": .9, "b": .1})            # the next batches follow the new mixture

Why not `mixer.stream.MixtureSampler`: that one plans a whole budget at fixed weights (exact
per-domain token targets, one interleaved order), which is what fixed-mixture training wants and
what a weight that moves every step cannot have. Here every sequence of a batch draws its
domain from the current weights (seeded), then takes that domain's next `seq_len`-token window:
each domain's training documents, in a seeded order reshuffled every epoch, joined with EOS and
cut into windows. A sequence holds one domain. Causal (GPT-2) sequences only. The domains' token
arrays are read into memory, which suits the proxy-sized corpora the loop trains on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import torch

from mixer.core.errors import MixerError
from mixer.formats.corpus import load_manifest, open_split


class WeightedDomainSampler:
    def __init__(self, corpus_dir: str | Path, weights: Mapping[str, float], seq_len: int, batch_size: int,
                 seed: int):
        manifest = load_manifest(corpus_dir)
        self.domains = tuple(manifest.domain_names)
        self.corpus_dir, self.seq_len, self.batch_size = corpus_dir, int(seq_len), int(batch_size)
        self.rng = np.random.default_rng([int(seed), 18])
        self._docs: list[list[np.ndarray]] = []
        for d in self.domains:
            split = open_split(corpus_dir, d, "train", manifest)
            docs = [np.append(split.document(k).astype(np.int64), manifest.eos_id) for k in range(split.num_documents)]
            if sum(len(x) for x in docs) < self.seq_len:
                raise MixerError(f"domain {d!r} of {corpus_dir} has fewer than {self.seq_len} training tokens; "
                                 "lower the preset's seq_len or add documents")
            self._docs.append(docs)
        self._windows: list[np.ndarray | None] = [None] * len(self.domains)
        self._cursor = [0] * len(self.domains)
        self.epochs = [0] * len(self.domains)
        self.weights = np.zeros(len(self.domains))
        self.set_weights(weights)

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """The mixture the next sequences are drawn from (renormalised; unknown domains refused)."""
        unknown = sorted(set(weights) - set(self.domains))
        if unknown:
            raise MixerError(f"weights name domain {unknown[0]!r}, which {self.corpus_dir} does not have")
        w = np.array([float(weights.get(d, 0.0)) for d in self.domains])
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise MixerError(f"weights {dict(weights)}: need finite, non-negative values with a positive sum")
        self.weights = w / w.sum()

    def _epoch(self, j: int) -> np.ndarray:
        """Domain j's documents in a fresh seeded order, joined and cut into windows."""
        docs = self._docs[j]
        order = self.rng.permutation(len(docs))
        flat = np.concatenate([docs[k] for k in order])
        n = len(flat) // self.seq_len
        self.epochs[j] += 1
        return flat[: n * self.seq_len].reshape(n, self.seq_len)

    def _next_window(self, j: int) -> np.ndarray:
        win = self._windows[j]
        if win is None or self._cursor[j] >= len(win):
            win = self._windows[j] = self._epoch(j)
            self._cursor[j] = 0
        self._cursor[j] += 1
        return win[self._cursor[j] - 1]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            picks = self.rng.choice(len(self.domains), size=self.batch_size, p=self.weights)
            ids = np.stack([self._next_window(int(j)) for j in picks])
            doms = np.repeat(picks[:, None].astype(np.int64), self.seq_len, axis=1)
            yield {"input_ids": torch.from_numpy(ids), "domain_ids": torch.from_numpy(doms)}

    def source(self, budget_tokens: int, provenance: Mapping | None = None):
        """A `mixer.trainers.loop.DataSource` over this sampler, with `set_weights` wired."""
        from mixer.trainers.loop import DataSource

        return DataSource(batches=self, corpus_dir=self.corpus_dir,
                          weights=dict(zip(self.domains, map(float, self.weights))), budget_tokens=int(budget_tokens),
                          seq_len=self.seq_len, set_weights=self.set_weights,
                          provenance={"source": {"corpus": str(self.corpus_dir), "sampler": "weighted-domain"},
                                      **(provenance or {})})
