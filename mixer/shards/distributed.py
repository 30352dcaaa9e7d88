"""`mixer build-shards --ray`: one task per shard on a Ray cluster, committed by the driver.

    stats = write_shards_on_cluster(plan, corpus, out, ShardConfig(), ClusterConfig("local"))

The driver builds the plan (48 bytes per document taken) and sends each task the slice of it
that its shard reads (`window_plan`; a masked-LM plan goes whole, once, via the object store);
each task gathers its shard's rows from the memory-mapped corpus (`gather_sequences`, one
thread), compresses and checksums them (`encode_shard`) and hands them back. Every shard is an
independent zstd frame and its place in the stream is fixed by the plan, so the folder is
byte-identical to `write_shards` whatever the number of workers or the order tasks finish in.

Where the bytes go: workers read the corpus at the same absolute path as the driver (a shared
or replicated corpus folder), or, for a corpus opened from a URL (`--corpus s3://...`), each
worker opens the URL itself (fetched once per node into its `$MIXER_CACHE`). With `shared_fs=False` (default) a task returns its compressed
shard (about `shard_tokens` x token bytes / compression ratio) and the driver writes it; with
`shared_fs=True` the output's parent folder is visible on every node and the task writes the
files there itself, returning only their checksums. Memory per task: the shard's tokens and
sidecar uncompressed (`shard_tokens` x (token bytes + 1 or 2)), its compressed copy, and its
slice of the plan (48 bytes per document in the shard); 32Mi-token shards of uint16 take about
0.25 GB.

Resuming: each finished shard is kept in `.OUT.work/` (`mixer.core.task_cache`) under a key
hashing the plan, the shard's rows and the zstd level; running the same command again reuses
those (after checking their xxh64) and runs only the others. The output folder appears at the
end by one rename (`atomic_dir`), shards hard-linked from the cache, index.json last; the cache
is removed after that.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import xxhash

from mixer.core.atomic import atomic_dir, write_bytes_atomic
from mixer.core.cluster import ClusterConfig, connected, run_tasks, stop_for_tests
from mixer.core.errors import MixerError
from mixer.core.lock import output_lock
from mixer.core.task_cache import TaskCache, pack, task_key, unpack, write_entry
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.formats.shard_index import ShardEntry
from mixer.formats.shards import (
    corpus_reference,
    encode_shard,
    shard_name,
    sidecar_name,
    write_index,
)
from mixer.shards.gather import _segments_for, gather_sequences, open_sources
from mixer.shards.plan import MixturePlan
from mixer.shards.write import BuildStats, ShardConfig, make_index, shard_layout

TASK_VERSION = 1  # bump when a change makes cached shards of an older mixer wrong


@dataclass
class ClusterBuildStats(BuildStats):
    """`BuildStats` plus which shards ran now and which came from an interrupted run's cache."""

    ran: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)


def plan_fingerprint(plan: MixturePlan) -> str:
    """xxh3-128 of everything in the plan that decides the stream's bytes."""
    h = xxhash.xxh3_128()
    scalars = (plan.corpus_sha256, plan.domains, plan.weights, plan.objective.value, plan.seq_len, plan.seed,
               plan.budget_tokens, plan.num_sequences, plan.dtype, plan.eos_id, plan.special, plan.parts,
               plan.interleave)
    h.update(repr(scalars).encode("utf-8"))
    for a in (plan.seg_domain, plan.seg_count, plan.seg_part, plan.seg_src, plan.seg_dst):
        h.update(np.ascontiguousarray(a).view(np.uint8))
    return h.hexdigest()


def window_plan(plan: MixturePlan, first: int, count: int) -> MixturePlan:
    """The plan cut to the segments that touch rows first..first+count (causal; stream positions
    stay absolute), so a task receives a few bytes per document of its own shard instead of the
    whole plan. Good only for gathering those rows. A masked-LM plan indexes its segments by row
    inside the kernels, so it is sent whole (once, through the object store)."""
    if not plan.objective.packs_documents:
        return plan


    _, _, j0, j1 = _segments_for(plan, first, count)
    cut = {name: getattr(plan, name)[j0:j1] for name in
           ("seg_domain", "seg_doc", "seg_start", "seg_count", "seg_part", "seg_src", "seg_dst")}
    return replace(plan, **cut)


def _cached_files(folder: Path, key: str) -> tuple[Path, Path]:
    return folder / f"{key}.zst", folder / f"{key}.domains.zst"


def shard_task(plan: MixturePlan, source: str, k: int, first: int, count: int, level: int,
               key: str, cache_dir: str | None) -> bytes:
    """One shard, gathered and compressed on a worker. `source`: the corpus folder, or the URL it
    was opened from (the worker then opens its own cached copy). With `cache_dir` (a folder
    every node sees) the task writes the shard into the cache itself and returns only its index entry."""

    t0 = time.perf_counter()
    tokens, domains = gather_sequences(plan, open_sources(source, plan), first, count, threads=1)
    t1 = time.perf_counter()
    entry, data, side, secs = encode_shard(k, tokens, domains, level)
    meta = {"entry": entry.to_dict(), "gather_s": t1 - t0, **secs, "bytes": len(data) + len(side)}
    if cache_dir is None:
        return pack({"data": data, "side": side}, meta)
    _commit_files(Path(cache_dir), key, data, side, meta)
    return pack({}, meta)


def _commit_files(folder: Path, key: str, data: bytes, side: bytes, meta: dict) -> None:
    """Shard, sidecar, then the entry that says both are complete (written last)."""
    for path, blob in zip(_cached_files(folder, key), (data, side)):
        write_bytes_atomic(path, blob)
    write_entry(folder, key, pack({}, meta))


def _reusable(cache: TaskCache, key: str) -> dict | None:
    """The cached shard's metadata if its entry and both files are whole, else None."""
    data = cache.get(key)
    if data is None:
        return None
    _, meta = unpack(data)
    entry = ShardEntry.from_dict(meta["entry"])
    for path, want in zip(_cached_files(cache.folder, key), (entry.xxh64, entry.domains.xxh64)):
        try:
            if xxhash.xxh64_hexdigest(path.read_bytes()) != want:
                return None
        except FileNotFoundError:
            return None
    return meta


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # no copy: the cache and the output share the bytes until the cache is removed
    except OSError:
        shutil.copyfile(src, dst)


def _assemble(plan: MixturePlan, out: Path, config: ShardConfig, cache: TaskCache, done: list[tuple[str, dict]],
              per_shard: int, stats: ClusterBuildStats, corpus_dir: str | Path) -> None:
    """The output folder, atomically: every shard (`done`: its cache key and metadata, in shard
    order) hard-linked from the cache, index.json last."""

    entries = []
    with atomic_dir(out, overwrite=config.overwrite) as tmp:
        t0 = time.perf_counter()
        for k, (key, meta) in enumerate(done):
            entry = ShardEntry.from_dict(meta["entry"]).at(k * per_shard)
            data_path, side_path = _cached_files(cache.folder, key)
            _link(data_path, tmp / shard_name(k))
            _link(side_path, tmp / sidecar_name(k))
            stats.compressed_bytes += meta["bytes"]
            entries.append(entry)
        stats.index = make_index(plan, entries, per_shard, corpus_reference(out, corpus_dir))
        write_index(tmp, stats.index)
        stats.write_s = time.perf_counter() - t0


def write_shards_on_cluster(plan: MixturePlan, corpus: Corpus | str | Path, out: str | Path,
                            config: ShardConfig = ShardConfig(),
                            on_shard: Callable[[int, int], None] | None = None, *,
                            cluster: ClusterConfig | None = ClusterConfig()) -> ClusterBuildStats:
    """Write the plan's stream as shards under `out`, one task per shard (`cluster=None`: the same
    tasks in this process). Same folder, byte for byte, as `write_shards`. `on_shard(done, total)`
    reports sequences done, whether a shard ran now or came from the cache."""

    corpus = as_corpus(corpus)
    if corpus.sha256 != plan.corpus_sha256:
        raise MixerError(f"{corpus.folder}/corpus.json differs from the corpus this plan was built from "
                         f"(sha256 {plan.corpus_sha256[:12]}…); rebuild the plan for this corpus")
    out = Path(out)
    per_shard, n_shards = shard_layout(plan, out, corpus.folder, config)
    stats = ClusterBuildStats()
    t_start = time.perf_counter()
    with output_lock(out):
        if out.exists() and not config.overwrite:
            raise MixerError(f"{out}: output already exists; choose another path or pass --overwrite")
        cache = TaskCache.open(out)
        try:
            fp = plan_fingerprint(plan)
            keys, metas, todo = [], [None] * n_shards, []
            done_seq = 0
            for k in range(n_shards):
                first, count = k * per_shard, min(per_shard, plan.num_sequences - k * per_shard)
                keys.append(task_key({"v": TASK_VERSION, "plan": fp, "k": k, "first": first, "count": count,
                                      "level": config.zstd_level}))
                metas[k] = _reusable(cache, keys[k])
                if metas[k] is None:
                    todo.append((k, first, count))
                else:
                    stats.reused.append(k)
                    done_seq += count
            if on_shard is not None and stats.reused:
                on_shard(done_seq, plan.num_sequences)
            shared = cluster is not None and cluster.shared_fs
            source = corpus.url if corpus.url is not None else str(corpus.folder.resolve())
            with connected(cluster if todo else None) as ray:  # nothing left to run: no cluster to start
                whole = ray.put(plan) if ray is not None and not plan.objective.packs_documents else plan
                cache_dir = str(cache.folder.resolve()) if shared else None
                args = [(window_plan(plan, first, count) if plan.objective.packs_documents else whole, source, k, first,
                         count, config.zstd_level, keys[k], cache_dir) for k, first, count in todo]
                for i, result in run_tasks(shard_task, args, cluster):
                    k = todo[i][0]
                    blobs, meta = unpack(result)
                    if not shared:
                        _commit_files(cache.folder, keys[k], blobs["data"], blobs["side"], meta)
                    metas[k] = meta
                    stats.ran.append(k)
                    stats.gather_s += meta["gather_s"]
                    stats.compress_s += meta["compress_s"]
                    stats.hash_s += meta["hash_s"]
                    done_seq += meta["entry"]["sequences"]
                    if on_shard is not None:
                        on_shard(done_seq, plan.num_sequences)
                    stop_for_tests(len(stats.ran))
            _assemble(plan, out, config, cache, list(zip(keys, metas)), per_shard, stats, corpus.folder)
            cache.remove()
        finally:
            cache.remove_if_empty()  # a failure before any shard finished leaves no folder behind
    stats.shards, stats.tokens = n_shards, plan.budget_tokens
    stats.wall_s = time.perf_counter() - t_start
    return stats
