"""Use a mixture outside mixer: `weights.json` as the configuration another training library reads
(`mixer export`), and shards as another library's on-disk dataset (`mixer export-shards`).

One module per target: `megatron.py` (the `--data-path` blend), `hf.py` (`interleave_datasets`),
`mosaic.py` (`Stream(proportion=…)`), `litdata.py` (`CombinedStreamingDataset(weights=…)`),
`olmo.py` (an OLMo-core `SourceMixtureList`), `torchtitan.py` (a job-config TOML and the dataclass
that extends torchtitan's `JobConfig` with it); `mixture.py` reads `weights.json` once for all of
them. `indexed.py` writes Megatron's indexed dataset (`.bin` + `.idx`) and `shards.py` streams
shards into it. This layer reads formats only; the trainers and the solver never import it.
See docs/export.md.
"""
