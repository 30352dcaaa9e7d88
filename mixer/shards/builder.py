"""`build`: the one library call behind `mixer build-shards` (corpus + mixture + budget -> shards).

The command line, the demo, Ray tasks, the benchmarks and the tests all call this, so the steps
(open the corpus once, plan, write one machine's way or as Ray tasks, index.json last) are spelled
out in one place instead of `write_shards(plan, corpus, ...)` at every site.

    from mixer.shards import build
    stats = build("corpus/", {"code": 0.3, "news": 0.7}, "shards/", plan=PlanConfig(tokens=30_000_000))
    stats.index.num_sequences, stats.wall_s
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from mixer.core.cluster import ClusterConfig
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.shards.plan import MixturePlan, PlanConfig, build_plan
from mixer.shards.write import BuildStats, ShardConfig, write_shards


def build(corpus: Corpus | str | Path, weights: Mapping[str, float], out: str | Path, *, plan: PlanConfig,
          shards: ShardConfig = ShardConfig(), cluster: ClusterConfig | None = None,
          weights_source: str = "weights", on_plan: Callable[[MixturePlan], None] | None = None,
          on_shard: Callable[[int, int], None] | None = None) -> BuildStats:
    """Sample `weights` of `corpus` at `plan.tokens` into shards under `out`; the returned stats
    hold the written `ShardIndex` (`stats.index`) and where the time went.

    `cluster`: one Ray task per shard (`mixer.shards.distributed`; the same bytes, resumable);
    None: this process. `on_plan(plan)` is called once the stream is decided, before any shard is
    written (the CLI reports the rounded budget there); `on_shard(done, total)` reports progress.
    """
    corpus = as_corpus(corpus)
    mixture_plan = build_plan(corpus, weights, plan, weights_source=weights_source)
    if on_plan is not None:
        on_plan(mixture_plan)
    if cluster is None:
        return write_shards(mixture_plan, corpus, out, shards, on_shard=on_shard)
    from mixer.shards.distributed import write_shards_on_cluster  # imports Ray's glue only when asked

    return write_shards_on_cluster(mixture_plan, corpus, out, shards, on_shard, cluster=cluster)
