"""`mixer build-shards`: the plan's whole stream gathered and written as zstd shards, atomically.

The files and `index.json` are the shard format's (`mixer.formats.shards`, which documents them);
this module drives the writing: gather a shard's sequences from the memory-mapped corpus, hand
them to a bounded pool of compression threads, commit the folder with index.json last, whose
content `make_index` makes from the plan (here, not in the format's module: formats sit below the plan).
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mixer.core.errors import MixerError
from mixer.formats.corpus_handle import Corpus
from mixer.formats.shard_index import DomainRecord, ShardEntry, ShardIndex, SpecialTokens, StageRecord
from mixer.formats.shards import FORMAT_VERSION, corpus_reference, sidecar_dtype, write_index, write_shard_files
from mixer.shards.plan import MixturePlan
from mixer.core.atomic import atomic_dir
from mixer.core.paths import refuse_nested
from mixer.shards.gather import fresh_buffer, gather_sequences, open_sources

@dataclass(frozen=True)
class ShardConfig:
    """How to write the stream; none of these change the tokens, only files and speed."""

    shard_tokens: int = 1 << 25  # tokens per shard (rounded down to whole sequences, at least one)
    zstd_level: int = 1  # 1 (fast) .. 22 (small). On Zipf token ids level 1 is 2.9x faster than 3 (417 vs
    # 144 MB/s per core) at the same ratio (1.42 vs 1.41): `python -m bench.sampler`
    workers: int = 2  # compression threads; output bytes do not depend on it
    overwrite: bool = False  # replace an existing output folder
    # index.json's `corpus_path` (the corpus relative to the output); False for an output that is
    # uploaded to object storage, where a local corpus has no relative path (mixer.shards.remote)
    record_corpus_path: bool = True


@dataclass
class BuildStats:
    """Where the time went, for the benchmark and the progress report."""

    shards: int = 0
    tokens: int = 0
    compressed_bytes: int = 0
    gather_s: float = 0.0  # wall time in gather_sequences (main thread)
    compress_s: float = 0.0  # zstd, summed over compression threads
    hash_s: float = 0.0  # xxh64 + sha256 of the compressed bytes, summed over threads
    write_s: float = 0.0  # file writes, summed over threads
    wall_s: float = 0.0
    index: ShardIndex | None = None  # the written index.json


def shard_layout(plan: MixturePlan, out: str | Path, corpus_dir: str | Path, config: ShardConfig) -> tuple[int, int]:
    """Check the output place and the shard settings; (sequences per shard, number of shards).
    One machine and the Ray path (`mixer.shards.distributed`) lay shards out the same way."""

    refuse_nested(out, corpus_dir, "the corpus")
    if not 1 <= config.zstd_level <= 22:
        raise MixerError(f"--zstd-level {config.zstd_level}: choose 1..22")
    if config.shard_tokens <= 0:
        raise MixerError(f"--shard-tokens {config.shard_tokens}: must be positive")
    per_shard = max(1, config.shard_tokens // plan.seq_len)
    return per_shard, -(-plan.num_sequences // per_shard)


def write_shards(plan: MixturePlan, corpus: Corpus | str | Path, out: str | Path, config: ShardConfig = ShardConfig(),
                 on_shard: Callable[[int, int], None] | None = None) -> BuildStats:
    """Write the plan's whole stream as shards under `out`, atomically (temp folder + rename,
    index.json last), from `corpus` (the one the plan was built from, checked).
    `on_shard(sequences_done, num_sequences)` reports progress."""

    sources = open_sources(corpus, plan)

    if config.workers < 1:
        raise MixerError(f"--threads {config.workers}: need at least 1")
    per_shard, n_shards = shard_layout(plan, out, sources.corpus_dir, config)
    stats = BuildStats()
    t_start = time.perf_counter()
    entries: list[ShardEntry | None] = [None] * n_shards
    free: list[tuple[np.ndarray, np.ndarray]] = []  # shard buffers back from compression, reused
    side = sidecar_dtype(len(plan.domains))
    with atomic_dir(out, overwrite=config.overwrite) as tmp, \
            ThreadPoolExecutor(config.workers, thread_name_prefix="mixer-zstd") as pool:
        pending: deque = deque()

        def finish_one() -> None:
            k, first, fut, bufs = pending.popleft()
            entry, secs, nbytes = fut.result()
            free.append(bufs)  # compressed: its buffers can take the next shard
            entries[k] = entry.at(first)
            stats.compress_s += secs["compress_s"]
            stats.hash_s += secs["hash_s"]
            stats.write_s += secs["write_s"]
            stats.compressed_bytes += nbytes
            if on_shard is not None:
                on_shard(first + entry.sequences, plan.num_sequences)

        for k in range(n_shards):
            first = k * per_shard
            count = min(per_shard, plan.num_sequences - first)
            t0 = time.perf_counter()
            # Reused buffers: a fresh one per shard would page-fault every byte in again (that
            # costs more than the copy); at most workers + 2 exist.
            bufs = free.pop() if free else (fresh_buffer((per_shard, plan.seq_len), plan.dtype),
                                            fresh_buffer((per_shard, plan.seq_len), side))
            tokens, domains = gather_sequences(plan, sources, first, count, out=bufs[0][:count],
                                               domains_out=bufs[1][:count])
            stats.gather_s += time.perf_counter() - t0
            pending.append((k, first, pool.submit(write_shard_files, tmp, k, tokens, domains, config.zstd_level), bufs))
            while len(pending) > config.workers:  # bounded memory: at most workers + 1 shards in flight
                finish_one()
        while pending:
            finish_one()
        stats.index = make_index(plan, entries, per_shard, corpus_reference(out, sources.corpus_dir)
                                 if config.record_corpus_path else None)
        write_index(tmp, stats.index)
    stats.shards, stats.tokens = n_shards, plan.budget_tokens
    stats.wall_s = time.perf_counter() - t_start
    return stats


def make_index(plan: MixturePlan, shards: list[ShardEntry], sequences_per_shard: int,
               corpus_path: str | None = None) -> ShardIndex:
    """The index of a finished build: the plan's settings, what each domain gave, every shard."""
    # Python ints from whole arrays at once (one NumPy scalar per field is 10,000 x 7 of them)
    realised, used, targets = plan.realised().tolist(), plan.documents_used().tolist(), plan.targets.tolist()
    docs, toks, epochs = (a.tolist() for a in (plan.available_documents, plan.available_tokens, plan.epochs))
    unit = 1 if plan.objective.packs_documents else plan.seq_len
    content = None if plan.objective.packs_documents else plan.content_tokens().tolist()
    domains = {
        name: DomainRecord(
            index=i, weight=plan.weights[i], target_tokens=int(targets[i]) * unit,
            realised_tokens=int(realised[i]) * unit, documents_used=int(used[i]),
            documents_available=int(docs[i]), tokens_available=int(toks[i]), epochs=int(epochs[i]),
            target_sequences=None if content is None else int(targets[i]),
            content_tokens=None if content is None else int(content[i]))
        for i, name in enumerate(plan.domains)}
    special = None if plan.special is None else SpecialTokens(*map(int, plan.special))
    stages = tuple(StageRecord(first_sequence=st.first_sequence, sequences=st.sequences, until_tokens=st.until_tokens,
                               weights=dict(zip(plan.domains, st.weights)),
                               target_tokens={d: int(t) * unit for d, t in zip(plan.domains, st.targets)})
                   for st in plan.stages)
    return ShardIndex(
        format_version=FORMAT_VERSION, objective=plan.objective, seq_len=plan.seq_len, dtype=plan.dtype,
        domain_dtype=sidecar_dtype(len(plan.domains)).name, eos_id=plan.eos_id, special_tokens=special,
        interleave=plan.interleave, weights=dict(zip(plan.domains, plan.weights)), domain_order=tuple(plan.domains),
        seed=plan.seed, tokens_requested=plan.tokens_requested, budget_tokens=plan.budget_tokens,
        num_sequences=plan.num_sequences, sequences_per_shard=sequences_per_shard,
        corpus_manifest_sha256=plan.corpus_sha256, domains=domains, shards=tuple(shards), corpus_path=corpus_path,
        stages=stages)
