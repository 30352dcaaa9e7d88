"""The shard format: `index.json` and `shard-NNNNN[.domains].zst`, their one writer and one reader.

Written by `mixer build-shards` (`mixer.shards.write` drives it), read by `MixtureStream`, the
trainers and `mixer inspect`. `FORMAT_VERSION` is bumped on any change a reader must know about.

Layout::

    SHARDS/
      index.json                   # written last; its presence means the folder is complete
      shard-00000.zst              # one zstd frame: n_seq x seq_len tokens of `dtype`, row-major
      shard-00000.domains.zst      # one zstd frame: n_seq x seq_len `domain_dtype`, the domain index of every token
      shard-00001.zst
      ...

Every shard holds `sequences_per_shard` rows (the last one fewer) and is one independent
zstd frame compressed on its own, so the bytes do not depend on how many threads wrote them.
The domain sidecar gives every position the index (into `domains`) of the document it came
from; EOS takes its document's domain, and [CLS]/[SEP]/[PAD] their row's. Runs of one value
compress to almost nothing. `domain_dtype` is uint8 for up to 255 domains and uint16 for up to
65,535 (the widest corpus the format holds). Measured on 32M tokens of 300-token documents: on
disk the uint16 sidecar is no larger (0.32 % of the token bytes vs 0.53 % for uint8 at 7
domains; 1.1 % at 1,000), but a reader decompresses and converts twice the bytes, so uint16 is
used only when needed. Checksums (xxh64 and sha256) are of the compressed bytes.

`stages` (only in shards built from a schedule of two or more stages, `build-shards --schedule`):
one entry per stage, in order, with its `first_sequence`, `sequences`, the schedule's
`until_tokens`, its `weights` and exact per-domain `target_tokens`; the top-level `weights` are then
the whole run's shares. A reader that reads the shards in order gets the schedule; older readers
ignore the key.

`corpus_path` is the corpus the shards were built from, relative to the shards folder (so the
bytes depend only on where the two folders are relative to each other); readers that need the
corpus (held-out sets, the tokenizer) default to it and check `corpus_manifest_sha256` against
it (`corpus_of`). Indexes written before it existed lack it; then `--corpus` is required.

Example `index.json` (abridged: two domains, two shards)::

    {
      "budget_tokens": 4096,
      "corpus_manifest_sha256": "9f2c…",
      "corpus_path": "../corpus",
      "domains": {
        "code": {"documents_available": 900, "documents_used": 61, "epochs": 1, "index": 0,
                 "realised_tokens": 1229, "target_tokens": 1229, "tokens_available": 81000,
                 "weight": 0.3},
        "news": {"documents_available": 500, "documents_used": 40, "epochs": 1, "index": 1,
                 "realised_tokens": 2867, "target_tokens": 2867, "tokens_available": 36000,
                 "weight": 0.7}
      },
      "domain_dtype": "uint8",
      "domain_order": ["code", "news"],
      "dtype": "uint16",
      "eos_id": 50256,
      "format_version": 3,
      "interleave": "midpoint",
      "num_sequences": 32,
      "objective": "causal",
      "seed": 0,
      "seq_len": 128,
      "sequences_per_shard": 16,
      "shards": [
        {"domains": {"file": "shard-00000.domains.zst", "sha256": "…", "xxh64": "…"},
         "file": "shard-00000.zst", "first_sequence": 0, "sequences": 16,
         "sha256": "…", "xxh64": "3c1d5e0b7a29f4e1"},
        {"domains": {"file": "shard-00001.domains.zst", "sha256": "…", "xxh64": "…"},
         "file": "shard-00001.zst", "first_sequence": 16, "sequences": 16,
         "sha256": "…", "xxh64": "…"}
      ],
      "special_tokens": null,
      "tokens_requested": 4100,
      "weights": {"code": 0.3, "news": 0.7},
      "checksum": "77e1…"
    }

Causal targets count tokens with their EOS separators; for `"objective": "mlm"` they count
sequences (one document each) and `special_tokens` is `{"cls": …, "sep": …, "pad": …}`.
There are no timestamps or host names: the same inputs give a byte-identical folder.
`checksum` is the xxh3-64 of the index's canonical JSON without it (`mixer.formats.schema.seal`);
`read_index` checks it and then the index's shape (`ShardIndex.from_dict`), so a damaged index is
named as damaged. Readers get a typed, frozen `ShardIndex` (`mixer.formats.shard_index`); this
module holds its one writer (`write_index`; the shards layer's `mixer.shards.write.make_index` makes
the index from a plan) and its one reader (`read_index`).
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import xxhash
import zstandard

from mixer.core.errors import MixerError
from mixer.core.jsonio import read_json_object
from mixer.core.urls import is_remote, require_local
from mixer.formats.corpus_handle import Corpus
from mixer.formats.schema import seal_ok, write_sealed
from mixer.formats.shard_index import (
    FileRef,
    IndexProblem,
    ShardEntry,
    ShardIndex,
)

FORMAT_VERSION = 3  # 2: index.json sealed with its own checksum; 3: `domain_dtype` (uint16 past 255 domains)
MAX_DOMAINS = 65535  # domain indices fit the widest sidecar dtype, uint16
INDEX_NAME = "index.json"
SIDECAR_LEVEL = 1  # zstd level of the domain sidecars (fixed: their bytes never depend on options); level 1
# compresses them better than 3 (ratio 132 vs 84 on a 32M-token shard) at the same speed


def sidecar_dtype(n_domains: int) -> np.dtype:
    """The narrowest sidecar dtype that holds indices 0..n_domains-1: uint8 up to 255 domains, else uint16."""
    if not 1 <= n_domains <= MAX_DOMAINS:
        raise MixerError(f"{n_domains} domains: the shard format holds 1 to {MAX_DOMAINS}")
    return np.dtype(np.uint8 if n_domains <= 255 else np.uint16)


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.zst"


_DIGEST_STEP = 1 << 18  # bytes hashed by both digests in turn: a piece stays in the core's cache


def _digest(data: bytes) -> tuple[str, str]:
    """(xxh64, sha256) of `data`, the same digests as hashing it whole with each, in one pass
    over 256 KiB pieces: the second hash reads each piece from the cache instead of the whole
    shard again from memory (a 51 MB shard: 54 -> 46 ms)."""
    xx, sha = xxhash.xxh64(), hashlib.sha256()
    view = memoryview(data)
    for at in range(0, len(view), _DIGEST_STEP):
        piece = view[at:at + _DIGEST_STEP]
        sha.update(piece)
        xx.update(piece)
    return xx.hexdigest(), sha.hexdigest()


def encode_shard(k: int, tokens: np.ndarray, domains: np.ndarray,
                 level: int) -> tuple[ShardEntry, bytes, bytes, dict[str, float]]:
    """Compress and checksum shard `k` and its sidecar without writing them: (index entry,
    shard bytes, sidecar bytes, seconds in compress_s / hash_s). A Ray task that shares no
    folder with the driver returns these bytes; `write_shard_files` writes them here."""
    t0 = time.perf_counter()
    data = zstandard.ZstdCompressor(level=level).compress(memoryview(tokens).cast("B"))
    side = zstandard.ZstdCompressor(level=SIDECAR_LEVEL).compress(memoryview(domains).cast("B"))
    t1 = time.perf_counter()
    xx, sha = _digest(data)
    sxx, ssha = _digest(side)
    t2 = time.perf_counter()
    name = shard_name(k)
    entry = ShardEntry(file=name, sequences=int(tokens.shape[0]), xxh64=xx, sha256=sha,
                       domains=FileRef(file=sidecar_name(k), xxh64=sxx, sha256=ssha))
    return entry, data, side, {"compress_s": t1 - t0, "hash_s": t2 - t1}


def sidecar_name(k: int) -> str:
    return shard_name(k).replace(".zst", ".domains.zst")


def write_shard_files(folder: Path, k: int, tokens: np.ndarray, domains: np.ndarray,
                      level: int) -> tuple[ShardEntry, dict[str, float], int]:
    """Compress, checksum and write shard `k` and its sidecar; (index entry, seconds spent in
    each stage: compress_s / hash_s / write_s, compressed bytes). The stages are timed apart
    because they cost very differently and only compression depends on the level."""
    entry, data, side, secs = encode_shard(k, tokens, domains, level)
    t2 = time.perf_counter()
    (folder / entry.file).write_bytes(data)
    (folder / entry.domains.file).write_bytes(side)
    secs["write_s"] = time.perf_counter() - t2
    return entry, secs, len(data) + len(side)


def corpus_reference(shards_dir: str | Path, corpus_dir: str | Path) -> str:
    """The corpus's path as `index.json` records it: relative to the shards folder (POSIX), so a
    tree that holds both can be moved or copied whole and the shards still find their corpus,
    and two builds at the same relative place give the same bytes."""
    rel = os.path.relpath(Path(corpus_dir).resolve(), Path(shards_dir).resolve())
    return Path(rel).as_posix()


def corpus_of(shards_dir: str | Path, index: ShardIndex, corpus_dir: str | Path | None = None) -> Corpus:
    """The corpus the shards were built from, opened: `corpus_dir` when given, else the path the
    index records (`corpus_path`, relative to the shards). Either way its `corpus.json` must be the
    one the shards were built from (`corpus_manifest_sha256`); a moved or rebuilt corpus is one
    line naming both folders and the fix."""

    if corpus_dir is None and is_remote(shards_dir):
        raise MixerError(f"--shards {shards_dir}: shards on object storage record no corpus path; pass --corpus DIR, "
                         "the local corpus they were built from (its held-out sets and tokenizer)")
    shards_dir = Path(shards_dir) if corpus_dir is None else shards_dir
    if corpus_dir is None:
        recorded = index.corpus_path
        if not recorded:
            raise MixerError(f"{shards_dir / INDEX_NAME} does not record its corpus (built before shards recorded "
                             "it); pass --corpus DIR, the corpus the shards were built from")
        corpus = Path(os.path.normpath(shards_dir / recorded))
        if not (corpus / "corpus.json").is_file():
            raise MixerError(f"{shards_dir}: the corpus it was built from is not at {corpus} (recorded as "
                             f"{recorded!r} relative to the shards); it was moved: pass --corpus DIR")
        how = f"recorded in {shards_dir / INDEX_NAME}"
    else:
        corpus, how = Path(corpus_dir), "given"
    return Corpus.open(corpus, expect_sha256=index.corpus_manifest_sha256, mismatch=lambda folder: MixerError(
        f"{shards_dir} was built from another corpus than {folder} ({how}; corpus.json sha256 differs); pass the "
        "matching --corpus DIR or rebuild the shards"))


def write_index(folder: str | Path, index: ShardIndex) -> None:
    """Write `index.json`, last of a build: its presence is what marks the folder complete.
    The index is sealed with its own xxh3-64 (`checksum`) so a damaged index names itself."""
    write_sealed(Path(folder) / INDEX_NAME, index.to_dict())


READ_URLS = ("read it with MixtureStream(url, cache_dir=...) or `mixer train --shards URL`, which download the "
             "shards into a local cache, or copy it to a local folder first")


def read_index(folder: str | Path) -> ShardIndex:
    """Read and check `index.json`; a missing index means an incomplete or foreign folder."""
    path = require_local(folder, "shards folder", instead=READ_URLS) / INDEX_NAME
    obj = read_json_object(path, "shard index (an unfinished build or not a shards folder)",
                           "rebuild with `mixer build-shards`")
    version = obj.get("format_version")
    if version != FORMAT_VERSION and isinstance(version, int) and version < FORMAT_VERSION:
        raise MixerError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION}); "
                         "rebuild with this version of `mixer build-shards`")
    if not seal_ok(obj):
        raise MixerError(f"{path}: damaged shard index (its checksum does not match its content); "
                         "rebuild with `mixer build-shards`")
    if version != FORMAT_VERSION:
        raise MixerError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION}); "
                         "rebuild with this version of `mixer build-shards`")
    try:
        return ShardIndex.from_dict(obj)
    except IndexProblem as exc:
        raise MixerError(f"{path}: malformed shard index ({exc}); rebuild with `mixer build-shards`") from None


def _entry(path: Path, index: ShardIndex) -> ShardEntry:
    e = index.shard_named(path.name)
    if e is not None:
        return e
    raise MixerError(f"{path}: not listed in {path.parent / INDEX_NAME}; rebuild with `mixer build-shards`")


def _read_verified(path: Path, xxh64: str, sha256: str | None, expected_bytes: int) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MixerError(f"{path}: cannot read shard ({exc}); rebuild with `mixer build-shards`") from None
    if (xxhash.xxh64_hexdigest(data) != xxh64 if sha256 is None else _digest(data) != (xxh64, sha256)):
        raise MixerError(f"{path}: checksum mismatch, the shard is corrupt; rebuild with `mixer build-shards`")
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=expected_bytes)
    except zstandard.ZstdError as exc:
        raise MixerError(f"{path}: not a valid zstd frame ({exc}); rebuild with `mixer build-shards`") from None
    if len(raw) != expected_bytes:
        raise MixerError(f"{path}: holds {len(raw)} bytes, index.json expects {expected_bytes}; rebuild the shards")
    return raw


def read_shard(path: str | Path, index: ShardIndex | None = None, *, sha256: bool = False) -> np.ndarray:
    """Decompress one shard to a `[sequences, seq_len]` array after verifying its xxh64 (and
    sha256 with `sha256=True`) against index.json (read from the shard's folder unless given)."""
    path = Path(path)
    index = read_index(path.parent) if index is None else index
    e = _entry(path, index)
    dtype, seq_len = np.dtype(index.dtype), index.seq_len
    raw = _read_verified(path, e.xxh64, e.sha256 if sha256 else None, e.sequences * seq_len * dtype.itemsize)
    return np.frombuffer(raw, dtype=dtype).reshape(e.sequences, seq_len)


def read_shard_domains(path: str | Path, index: ShardIndex | None = None, *, sha256: bool = False) -> np.ndarray:
    """The `[sequences, seq_len]` domain sidecar (index `domain_dtype`) of shard `path` (the .zst token file), verified."""
    path = Path(path)
    index = read_index(path.parent) if index is None else index
    e = _entry(path, index)
    side = e.domains
    dtype = sidecar_dtype(index.domain_count)
    if index.domain_dtype != dtype.name:
        raise MixerError(f"{path.parent / INDEX_NAME}: domain_dtype {index.domain_dtype or None!r} does not fit "
                         f"{index.domain_count} domains (expected {dtype.name}); rebuild the shards")
    raw = _read_verified(path.parent / side.file, side.xxh64, side.sha256 if sha256 else None,
                         e.sequences * index.seq_len * dtype.itemsize)
    return np.frombuffer(raw, dtype=dtype).reshape(e.sequences, index.seq_len)


def verify_shards(folder: str | Path) -> int:
    """Check every shard and sidecar (xxh64 and sha256) of a folder; returns the sequences seen."""
    folder = Path(folder)
    index = read_index(folder)
    n = 0
    for e in index.shards:
        n += read_shard(folder / e.file, index, sha256=True).shape[0]
        read_shard_domains(folder / e.file, index, sha256=True)
    if n != index.num_sequences:
        raise MixerError(f"{folder / INDEX_NAME}: shards hold {n} sequences, the index says {index.num_sequences}")
    return n
