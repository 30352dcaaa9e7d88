"""`MixtureStream`: built shards as a PyTorch IterableDataset for any training loop.

    from mixer import MixtureStream

    stream = MixtureStream("shards/", batch_size=8)            # rank / world size from torchrun
    for batch in stream.loader(num_workers=2):                 # = DataLoader(stream, batch_size=8), faster
        batch["input_ids"], batch["domain_ids"]                # int64 [8, seq_len] each
        # masked-LM shards add batch["attention_mask"]

Each rank reads a contiguous 1/world_size of the sequences. `stream.loader()`
(`mixer.stream.loader`) deals whole shards to its workers and hands batches over in stream
order; a plain DataLoader's workers take `batch_size` blocks round-robin, so its batches are
the same for any number of workers too (pass the DataLoader's batch_size). `state_dict()` /
`load_state_dict()` resume at the exact next sequence, also through the loader at any number
of workers, and per worker under `torchdata`'s `StatefulDataLoader`. Shards are decompressed
ahead of the loop on a background thread, and every shard's xxh64 is checked when it is
opened: a corrupt or truncated shard raises `MixerError` naming the file. See docs/reader.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mixer.core.errors import MixerError
from mixer.core.urls import is_remote
from mixer.formats.shard_index import ShardIndex
from mixer.formats.shards import (
    read_index,
    read_shard,
    read_shard_domains,
    sidecar_dtype,
)
from mixer.stream.feed import MixtureFeed, stream_fingerprint
from mixer.stream.shard_cache import ShardCache


class ShardSource:
    """The sequences of a shards folder, read shard by shard (a shard is a read unit). With a
    `ShardCache` (a URL), each shard is made local and verified before it is read, the next
    ones prefetched, and consumed ones evicted over the cache's limit."""

    def __init__(self, shards_dir: str | Path | ShardCache, cache: ShardCache | None = None) -> None:
        self.cache = cache
        self.folder = cache.folder if cache is not None else Path(shards_dir)
        self.with_domains = True  # read the per-token domain sidecar
        self.index: ShardIndex = cache.index if cache is not None else read_index(self.folder)  # checked whole
        ix = self.index
        self.seq_len = ix.seq_len
        self.num_sequences = ix.num_sequences
        self.objective = ix.objective
        self.domains = ix.domain_order
        self.pad_id = None if ix.special_tokens is None else ix.special_tokens.pad
        self.dtypes = (np.dtype(ix.dtype), sidecar_dtype(ix.domain_count))  # of read()'s (tokens, domains)
        self.fingerprint = stream_fingerprint(ix.corpus_manifest_sha256, ix.objective, ix.seq_len, ix.seed,
                                              ix.weights, ix.num_sequences,
                                              [(st.first_sequence, st.sequences, [st.weights[d] for d in ix.domain_order])
                                               for st in ix.stages])
        self.bounds = np.zeros(len(ix.shards) + 1, dtype=np.int64)
        np.cumsum([e.sequences for e in ix.shards], out=self.bounds[1:])

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.index.weights)

    def shard_path(self, unit: int) -> Path:
        return self.folder / self.index.shards[unit].file

    def read_order(self, units: list[int]) -> None:
        """The order this process will read shards in (the cache prefetches along it)."""
        if self.cache is not None:
            self.cache.read_order(units)

    def read(self, unit: int, runs: np.ndarray):
        """(tokens, domains) of each global (first, count) run inside shard `unit`; the shard's
        and its domain sidecar's xxh64 are verified first."""
        if self.cache is None:
            tokens, domains = self._load(unit)
        else:
            for attempt in range(3):  # another process sharing the cache may evict it in between
                self.cache.fetch(unit)
                try:
                    tokens, domains = self._load(unit)
                    break
                except MixerError:
                    if attempt == 2 or self.shard_path(unit).exists():
                        raise
            self.cache.consumed(unit)
        base = int(self.bounds[unit])
        return [(tokens[a - base:a - base + c], None if domains is None else domains[a - base:a - base + c])
                for a, c in runs.tolist()]

    def _load(self, unit: int) -> tuple[np.ndarray, np.ndarray | None]:
        path = self.shard_path(unit)
        tokens = read_shard(path, self.index)
        return tokens, read_shard_domains(path, self.index) if self.with_domains else None


class MixtureStream(MixtureFeed):
    """Built shards as an IterableDataset of {"input_ids", "domain_ids"[, "attention_mask"]}.

    Arguments: `shards_dir` (written by `mixer build-shards`); `rank` / `world_size` (default:
    torch.distributed, else RANK / WORLD_SIZE, else 0 / 1); `batch_size` (the DataLoader's:
    makes the order independent of num_workers); `drop_remainder` (default True: trim to a
    multiple of world_size so every rank gets the same count and DDP cannot hang on an uneven
    last step; the sequences left out are said once, in a `MixerNote`, and counted in `dropped`); `read_ahead` (shards decoded ahead on a thread; 0: none, all on the consumer's thread);
    `batched` (yield whole [batch_size, seq_len] batches instead of sequences, for
    ``DataLoader(stream, batch_size=None)``: the same batches without per-sequence collation,
    several times faster); `domain_ids` (False: no "domain_ids", the sidecar is not read).

    `shards_dir` may be an fsspec URL (`s3://bucket/shards`; `pip install 'mixer-toolkit[s3]'`),
    or a `ShardCache` of one that says where and how (`mixer.stream.shard_cache`):

        MixtureStream(ShardCache("s3://bucket/shards", cache_dir="/scratch/c", cache_limit=20 << 30))

    The shards are downloaded into the cache folder (a plain URL: `$MIXER_CACHE`, default
    `~/.cache/mixer/shards/...`), verified on download, prefetched, and consumed ones evicted
    while the cache holds more than its limit (none for a plain URL). Credentials come from the
    backend's usual environment / profile, or the cache's `storage_options`. The sequences are
    the same as from the folder on disk.
    """

    def __init__(self, shards_dir: str | Path | ShardCache, rank: int | None = None, world_size: int | None = None,
                 *, batch_size: int = 1, drop_remainder: bool = True, read_ahead: int = 2,
                 batched: bool = False, domain_ids: bool = True) -> None:
        cache = shards_dir if isinstance(shards_dir, ShardCache) else None
        if cache is None and is_remote(shards_dir):
            cache = ShardCache(str(shards_dir))
        super().__init__(ShardSource(shards_dir, cache), rank=rank, world_size=world_size, batch_size=batch_size,
                         drop_remainder=drop_remainder, read_ahead=read_ahead, batched=batched,
                         domain_ids=domain_ids)
        self.shards_dir = cache.url if cache is not None else Path(shards_dir)
        self.index = self.source.index
        self.domains = self.source.domains
        self.weights = self.source.weights


def shards_index(shards: str | Path, cache_dir: str | Path | None = None) -> ShardIndex:
    """The checked `index.json` of a shards folder or URL (a URL's is fetched into its cache)."""
    if is_remote(shards):
        return ShardCache(str(shards), cache_dir).index
    return read_index(shards)
