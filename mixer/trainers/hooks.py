"""The trainer's per-step hook: what an online method (DoReMi's Group DRO, any curriculum) sees
after every optimiser step, and how it changes the mixture without the trainer knowing why.

    def hook(s: StepLosses) -> dict[str, float] | None:
        ...                      # s.token_loss [N], s.token_domain [N], s.counted [N], s.batches
        return new_weights       # or None: keep sampling as before

`train(..., step_hooks=[hook])` calls each hook once per step with the per-token losses of all
the step's micro-batches (detached, on the training device) and the micro-batches themselves,
so a hook can score the same tokens with another model. Weights a hook returns go to the data
source's `set_weights` for the next batches (a source without one is refused by name); a
`StepUpdate` may instead (or also) set per-domain **loss weights**: from the next step the
training loss is `Σ_t w[d_t] ℓ_t / Σ_t w[d_t]` over the scored tokens (`weighted_mean_loss`),
the way DoReMi's official code trains its proxy on batches sampled at fixed weights.

## The weighted sampler such a hook drives

A per-domain sampler whose weights can change between steps, for online methods (DoReMi).

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

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch

from mixer.core.errors import MixerError
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.trainers.config import DataSource


@dataclass(frozen=True)
class StepLosses:
    step: int  # optimiser steps done (1 after the first)
    domains: tuple[str, ...]  # token_domain indexes this tuple (the corpus's sorted domain names)
    token_loss: torch.Tensor  # [N] float32 per-token training loss of the step, N = micro-steps x B x L
    token_domain: torch.Tensor  # [N] int64 domain index of each token (0 where not counted)
    counted: torch.Tensor  # [N] float 1.0 where the token is scored (a next token / a masked position)
    batches: tuple[dict[str, torch.Tensor], ...]  # the micro-batches as the model saw them

    def per_domain_mean(self) -> dict[str, float]:
        """Mean loss of every domain that had scored tokens in the step."""
        n = len(self.domains)
        sums = torch.zeros(n, dtype=torch.float64, device=self.token_loss.device)
        cnt = torch.zeros_like(sums)
        sums.index_add_(0, self.token_domain, (self.token_loss * self.counted).double())
        cnt.index_add_(0, self.token_domain, self.counted.double())
        return {d: float(s / c) for d, s, c in zip(self.domains, sums.tolist(), cnt.tolist()) if c > 0}


@dataclass(frozen=True)
class StepUpdate:
    """What a hook may change: the sampling weights, the per-domain loss weights, or both."""
    weights: Mapping[str, float] | None = None
    loss_weights: Mapping[str, float] | None = None


StepHook = Callable[[StepLosses], "Mapping[str, float] | StepUpdate | None"]


def weighted_mean_loss(loss: torch.Tensor, domain: torch.Tensor, counted: torch.Tensor,
                       domain_weights: torch.Tensor | None) -> torch.Tensor:
    """The step's training loss: the mean over scored tokens, or with `domain_weights` [m] the
    mean weighted by each token's domain weight."""
    if domain_weights is None:
        return (loss * counted).sum() / counted.sum().clamp(min=1)
    w = domain_weights[domain] * counted
    return (loss * w).sum() / w.sum().clamp(min=1e-12)


def run_step_hooks(step_hooks, step: int, domains: tuple[str, ...], seen: list[tuple], source,
                   loss_weights: list, device) -> None:
    """Call every hook with the step's per-token losses; new sampling weights go to the source's
    `set_weights`, new loss weights into `loss_weights[0]` (read by the next step's loss)."""
    info = StepLosses(step=step, domains=domains, token_loss=torch.cat([s[0] for s in seen]),
                      token_domain=torch.cat([s[1] for s in seen]), counted=torch.cat([s[2] for s in seen]),
                      batches=tuple(s[3] for s in seen))
    for hook in step_hooks:
        new = hook(info)
        if new is None:
            continue
        update = new if isinstance(new, StepUpdate) else StepUpdate(weights=new)
        if update.weights is not None:
            if source.set_weights is None:
                raise MixerError(f"a step hook returned new weights at step {step} but the data source cannot change "
                                 "them; use a source with set_weights (mixer.trainers.hooks.WeightedDomainSampler)")
            source.set_weights(dict(update.weights))
        if update.loss_weights is not None:
            unknown = sorted(set(update.loss_weights) - set(domains))
            if unknown:
                raise MixerError(f"a step hook returned a loss weight for {unknown[0]!r}, not a domain of the corpus")
            loss_weights[0] = torch.tensor([float(update.loss_weights.get(d, 0.0)) for d in domains],
                                           dtype=torch.float32, device=device)


class WeightedDomainSampler:
    def __init__(self, corpus: Corpus | str | Path, weights: Mapping[str, float], seq_len: int, batch_size: int,
                 seed: int):
        self.corpus = as_corpus(corpus)
        manifest, corpus_dir = self.corpus.manifest, self.corpus.folder
        self.domains = tuple(manifest.domain_names)
        self.corpus_dir, self.seq_len, self.batch_size = corpus_dir, int(seq_len), int(batch_size)
        self.rng = np.random.default_rng([int(seed), 18])
        self._docs: list[list[np.ndarray]] = []
        for d in self.domains:
            split = self.corpus.split(d, "train")
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
        """A `DataSource` over this sampler, with `set_weights` wired."""
        return DataSource(batches=self, corpus=self.corpus,
                          weights=dict(zip(self.domains, map(float, self.weights))), budget_tokens=int(budget_tokens),
                          seq_len=self.seq_len, set_weights=self.set_weights,
                          provenance={"source": {"corpus": str(self.corpus_dir), "sampler": "weighted-domain"},
                                      **(provenance or {})})
