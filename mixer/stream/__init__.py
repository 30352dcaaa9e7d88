"""Step 3, feeding a torch loop: `MixtureStream` (over shards) and `MixtureSampler` (over the corpus),
with the rank/worker split, read-ahead and exact resume."""
