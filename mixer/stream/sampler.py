"""`MixtureSampler`: the mixture stream straight from the prepared corpus, without shards.

    from mixer import MixtureSampler

    sampler = MixtureSampler("corpus/", {"code": 0.3, "news": 0.7}, tokens=30_000_000,
                             seq_len=1024, seed=0, batch_size=8)
    for batch in torch.utils.data.DataLoader(sampler, batch_size=8):
        ...

It yields exactly the sequences `mixer build-shards` would write for the same corpus,
weights, budget, seq_len and seed, in the same order (a test checks them one by one): it
builds the same `MixturePlan` (`mixer.shards.plan.build_plan`, a few bytes per document, no token
read) and gathers each range of sequences from the memory-mapped Arrow files
(`mixer.shards.gather.gather_sequences`) on a background thread, ahead of the loop. Rank / worker
split and resumption are `MixtureStream`'s (`mixer.stream.feed`); a position saved by one resumes the
other.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixer.core.errors import MixerError
from mixer.core.units import parse_count
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.formats.schedule import MixtureSchedule
from mixer.formats.shards import sidecar_dtype
from mixer.shards.gather import gather_sequences, open_sources
from mixer.shards.plan import PlanConfig, build_plan, build_schedule_plan
from mixer.stream.feed import MixtureFeed, stream_fingerprint

UNIT_TOKENS = 1 << 20  # tokens per read unit: the granularity of the read-ahead


class PlanSource:
    """Sequences of a `MixturePlan`, gathered from the corpus. The memory maps are opened
    lazily in each process that reads (a DataLoader worker reopens them; nothing is pickled
    but the plan)."""

    def __init__(self, corpus: Corpus, plan) -> None:
        self.corpus = corpus
        self.plan = plan
        self.seq_len = plan.seq_len
        self.num_sequences = plan.num_sequences
        self.pad_id = None if plan.special is None else plan.special[2]
        self.dtypes = (np.dtype(plan.dtype), sidecar_dtype(len(plan.domains)))  # of read()'s (tokens, domains)
        self.fingerprint = stream_fingerprint(plan.corpus_sha256, plan.objective, plan.seq_len, plan.seed,
                                              dict(zip(plan.domains, plan.weights)), plan.num_sequences,
                                              [(s.first_sequence, s.sequences, s.weights) for s in plan.stages])
        unit = max(1, UNIT_TOKENS // plan.seq_len)
        self.bounds = np.append(np.arange(0, plan.num_sequences, unit, dtype=np.int64), plan.num_sequences)
        self._sources = None
        self.with_domains = True  # gather the per-token domain ids

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_sources": None}

    def read(self, unit: int, runs: np.ndarray):

        if self._sources is None:
            self._sources = open_sources(self.corpus, self.plan)
        # In DataLoader workers the workers are the parallelism: one gather thread each.
        threads = 2 if torch.utils.data.get_worker_info() is None else 1
        return [gather_sequences(self.plan, self._sources, a, c, threads=threads, domains=self.with_domains)
                for a, c in runs.tolist()]


class MixtureSampler(MixtureFeed):
    """The mixture as an IterableDataset of {"input_ids", "domain_ids"[, "attention_mask"]},
    sampled on the fly from a corpus written by `mixer prepare`.

    Arguments: as `mixer build-shards` (`weights` a {domain: weight} mapping, or a
    `MixtureSchedule` (`mixer.formats.schedule.load_schedule`) whose stages the stream follows;
    `tokens` the budget, rounded down to whole sequences (None with a schedule: its last stage's end); `objective` "causal" or "mlm"; `max_epochs` (the
    most passes over any domain, `--max-epochs`: 1 samples without replacement, math.inf: no cap);
    `interleave` "auto", "midpoint" or "edf"),
    then as `MixtureStream` (`rank`, `world_size`, `batch_size`, `drop_remainder`, `read_ahead`,
    `batched`, `domain_ids`).
    """

    def __init__(self, corpus: Corpus | str | Path, weights: Mapping[str, float] | MixtureSchedule,
                 tokens: int | str | None, seq_len: int, seed: int = 0, *, objective: str = "causal",
                 max_epochs: float = 1.0, interleave: str = "auto", **feed: Any) -> None:
        # `feed`: MixtureStream's own keywords (rank, world_size, batch_size, drop_remainder,
        # read_ahead, batched, domain_ids), passed to `MixtureFeed` unchanged and checked there.

        schedule = weights if isinstance(weights, MixtureSchedule) else None
        if tokens is None and schedule is None:
            raise MixerError("MixtureSampler: give tokens= (the budget); only a schedule carries its own")
        tokens = schedule.budget_tokens if tokens is None else parse_count(tokens, "tokens")
        config = PlanConfig(tokens=tokens, seq_len=seq_len, seed=seed, objective=objective,
                            max_epochs=max_epochs, interleave=interleave)
        corpus = as_corpus(corpus)
        plan = build_plan(corpus, weights, config) if schedule is None else \
            build_schedule_plan(corpus, schedule, config)
        super().__init__(PlanSource(corpus, plan), **feed)
        self.plan = plan
        self.corpus = corpus
        self.corpus_dir = corpus.folder
        self.domains = plan.domains
        self.weights = dict(zip(plan.domains, plan.weights))
