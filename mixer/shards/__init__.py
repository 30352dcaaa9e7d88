"""Step 2, `mixer build-shards`: the mixture plan (exact per-domain targets, selection without
replacement, interleave), the gather from the memory-mapped corpus, and the shard writer.

`build(corpus, weights, out, plan=PlanConfig(...))` is the one call that does the whole step.
"""
from mixer.shards.builder import build

__all__ = ["build"]
