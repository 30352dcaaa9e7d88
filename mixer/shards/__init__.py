"""Step 2, `mixer build-shards`: the mixture plan (exact per-domain targets, selection without
replacement, interleave), the gather from the memory-mapped corpus, and the shard writer."""
