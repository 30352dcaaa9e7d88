"""The file formats, one module each with its reader, writer and version: corpus (`corpus.json` +
Arrow parts), shards (`index.json` + zstd shards), `weights.json`, `run.json`."""
