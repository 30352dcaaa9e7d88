"""`build`: the one library call behind `mixer build-shards` (corpus + mixture + budget -> shards).

The command line, the demo, Ray tasks, the benchmarks and the tests all call this, so the steps
(open the corpus once, plan, write one machine's way or as Ray tasks, index.json last) are spelled
out in one place instead of `write_shards(plan, corpus, ...)` at every site.

    from mixer.shards import build
    stats = build("corpus/", {"code": 0.3, "news": 0.7}, "shards/", plan=PlanConfig(tokens=30_000_000))
    stats.index.num_sequences, stats.wall_s
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

from mixer.core.cluster import ClusterConfig
from mixer.core.errors import MixerError
from mixer.core.urls import is_remote, require_local
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.formats.schedule import MixtureSchedule
from mixer.shards.plan import MixturePlan, PlanConfig, build_plan, build_schedule_plan
from mixer.shards.write import BuildStats, ShardConfig, write_shards


@dataclass(frozen=True)
class BuildProgress:
    """What a build reports while it runs: `on_plan(plan)` once the stream is decided, before any
    shard is written (the CLI reports the rounded budget there); `on_shard(done, total)` as
    sequences are written."""

    on_plan: Callable[[MixturePlan], None] | None = None
    on_shard: Callable[[int, int], None] | None = None


def build(corpus: Corpus | str | Path, weights: Mapping[str, float] | MixtureSchedule, out: str | Path, *,
          plan: PlanConfig, shards: ShardConfig = ShardConfig(), cluster: ClusterConfig | None = None,
          weights_source: str = "weights", progress: BuildProgress = BuildProgress()) -> BuildStats:
    """Sample `weights` of `corpus` at `plan.tokens` into shards under `out`; the returned stats
    hold the written `ShardIndex` (`stats.index`) and where the time went. `weights` may be a
    `MixtureSchedule` (`mixer.formats.schedule`): the shards then follow its stages and the index
    records them.

    `out` may be an fsspec URL (`s3://bucket/shards`): built locally, then uploaded with
    `index.json` last under a lock object (`mixer.shards.remote`); its index records no corpus_path.

    `cluster`: one Ray task per shard (`mixer.shards.distributed`; the same bytes, resumable);
    None: this process. `progress`: callbacks as the build goes (`BuildProgress`).
    """
    if is_remote(out):  # object storage: built locally, uploaded shards first and index.json last
        if cluster is not None and cluster.shared_fs:  # tasks return their bytes; the driver uploads them
            raise MixerError(f"--out {out}: --shared-fs does not apply to an output on object storage; drop it")
        from mixer.shards.remote import build_to_url  # (here: a local build never imports it)

        local = replace(shards, overwrite=False, record_corpus_path=False)
        return build_to_url(str(out), lambda folder: build(corpus, weights, folder, plan=plan, shards=local,
                                                           cluster=cluster, weights_source=weights_source,
                                                           progress=progress), overwrite=shards.overwrite)
    out = require_local(out, "--out")
    corpus = as_corpus(corpus)
    if isinstance(weights, MixtureSchedule):
        mixture_plan = build_schedule_plan(corpus, weights, plan)
    else:
        mixture_plan = build_plan(corpus, weights, plan, weights_source=weights_source)
    if progress.on_plan is not None:
        progress.on_plan(mixture_plan)
    if cluster is None:
        return write_shards(mixture_plan, corpus, out, shards, on_shard=progress.on_shard)
    from mixer.shards.distributed import write_shards_on_cluster  # (here: a local build never imports it)

    return write_shards_on_cluster(mixture_plan, corpus, out, shards, progress.on_shard, cluster=cluster)
