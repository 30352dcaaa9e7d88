"""Glue from CLI arguments to a `DataSource`: built shards or the corpus-side sampler.

    source_from_shards("shards/", corpus_dir="corpus/", batch_size=8, rank=r, world_size=w)
    source_from_corpus("corpus/", weights, PlanConfig(tokens=30_000_000, seq_len=1024, seed=0), model="gpt2", ...)

Both wrap a `mixer.stream.stream.MixtureStream` / `mixer.stream.sampler.MixtureSampler` (an IterableDataset
with state_dict/load_state_dict yielding one sequence dict at a time) in a DataLoader with
`num_workers=0`: the stream decompresses ahead on its own threads, and the dataset object in
this process is then the exact stream position a checkpoint must record. Each rank opens its
own part of the stream (rank, world_size).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from mixer.core.errors import MixerError
from mixer.core.urls import is_remote
from mixer.core.kinds import ModelKind
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.formats.schedule import MixtureSchedule
from mixer.formats.weights import validate_weights
from mixer.shards.plan import PlanConfig
from mixer.stream.sampler import MixtureSampler
from mixer.stream.stream import MixtureStream
from mixer.trainers.config import DataSource
from mixer.formats.shards import INDEX_NAME, corpus_of


def _loader(dataset: Any, batch_size: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=0,
                                       pin_memory=torch.cuda.is_available())


def source_from_shards(shards_dir: str | Path, batch_size: int, corpus_dir: str | Path | None = None,
                       rank: int = 0, world_size: int = 1, model: str | None = None) -> DataSource:
    """Stream built shards; the corpus they were built from (`corpus_dir`, by default the one
    index.json records) supplies the held-out splits."""
    shards_dir = shards_dir if is_remote(shards_dir) else Path(shards_dir)
    index_path = f"{shards_dir}/{INDEX_NAME}"
    stream = MixtureStream(shards_dir, rank=rank, world_size=world_size, batch_size=batch_size)
    index = stream.index  # index.json, read once by the stream
    corpus = corpus_of(shards_dir, index, corpus_dir)  # default: the corpus index.json records
    objective = index.objective
    want = None if model is None else ModelKind.parse(model).objective
    if want is not None and objective is not want:
        raise MixerError(f"{shards_dir} holds {objective} sequences but --model {model} trains on "
                         f"{want} ones; rebuild the shards with --objective {want}")
    budget = getattr(stream, "budget_tokens", None) or index.budget_tokens
    weights = validate_weights(index.weights, corpus.domain_names,
                               source=str(index_path))
    return DataSource(batches=_loader(stream, batch_size), corpus=corpus, weights=weights,
                      budget_tokens=int(budget) if budget else None, state=stream, seq_len=index.seq_len,
                      provenance={"source": {"shards": str(shards_dir), "seq_len": index.seq_len}})


def source_from_corpus(corpus_dir: Corpus | str | Path, mixture: Mapping[str, float] | MixtureSchedule,
                       plan: PlanConfig, *, model: str, batch_size: int, rank: int = 0,
                       world_size: int = 1) -> DataSource:
    """Sample the mixture (weights, or a `mixer.formats.schedule.MixtureSchedule` whose stages
    the stream follows up to `plan.tokens`) straight from the memory-mapped corpus: the same
    sequences build-shards writes with `plan`. The model decides the objective. With a schedule
    the run records the whole run's shares as its weights."""
    corpus = as_corpus(corpus_dir)
    schedule = mixture if isinstance(mixture, MixtureSchedule) else None
    weights = None if schedule is not None else validate_weights(mixture, corpus.domain_names, source="--weights")
    tokens, seq_len, seed = plan.tokens, plan.seq_len, plan.seed
    sampler = MixtureSampler(corpus, weights if schedule is None else schedule, tokens, seq_len, seed,
                             objective=ModelKind.parse(model).objective, max_epochs=plan.max_epochs,
                             interleave=plan.interleave, rank=rank, world_size=world_size, batch_size=batch_size)
    prov: dict[str, Any] = {"corpus": str(corpus.folder), "seq_len": seq_len, "data_seed": seed}
    if schedule is not None:
        weights = dict(sampler.weights)
        prov["schedule"] = [{"until_tokens": s.until_tokens, "weights": dict(s.weights)} for s in schedule.stages]
    return DataSource(batches=_loader(sampler, batch_size), corpus=corpus, weights=weights,
                      budget_tokens=tokens, state=sampler, seq_len=seq_len, provenance={"source": prov})
