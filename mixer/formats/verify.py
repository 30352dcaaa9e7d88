"""Everything a reader would check, for a whole corpus or shards folder at once (`mixer verify`).

A corpus: the manifest's seal and shape; every file it lists (Arrow parts and tokenizer) by
size, xxh3-64 and sha256; every Arrow part's structure; every split's document and token
counts against the manifest. A shards folder: the index's seal and shape; every shard and
domain sidecar by xxh64 and sha256, decompressed to the size the index says; the sidecars'
domain ids inside the index's domains. The first problem is a `MixerError` naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from mixer.core.errors import MixerError


@dataclass(frozen=True)
class VerifyReport:
    """What was checked: the kind of folder, files and bytes read, and a one-line summary."""

    kind: str  # "corpus" or "shards"
    files: int
    bytes: int
    summary: str


def verify_corpus(corpus_dir: str | Path) -> VerifyReport:
    """Check every file of a corpus written by `mixer prepare` (sha256 included)."""
    from mixer.formats.checksums import verify_file
    from mixer.formats.corpus import MANIFEST_NAME, load_manifest, open_split

    corpus_dir = Path(corpus_dir)
    manifest = load_manifest(corpus_dir)
    for rel, expected in sorted(manifest.files.items()):
        verify_file(corpus_dir / rel, expected, MANIFEST_NAME, "re-run `mixer prepare`", sha256=True)
    docs = toks = 0
    for name in manifest.domain_names:
        for split in manifest.domains[name].splits:
            sp = open_split(corpus_dir, name, split, manifest)
            docs += sp.num_documents
            toks += int(sum(int(p.offsets[-1] - p.offsets[0]) for p in sp.parts))
            for p in sp.parts:
                if len(p.values) and int(p.values.max()) >= manifest.vocab_size:
                    raise MixerError(f"{p.path}: holds token ids >= the vocab size {manifest.vocab_size}; "
                                     "re-run `mixer prepare`")
    nbytes = sum(c.bytes for c in manifest.files.values())
    return VerifyReport("corpus", len(manifest.files), nbytes,
                        f"{len(manifest.domains)} domains, {docs:,} documents, {toks:,} tokens in "
                        f"{len(manifest.files)} files ({nbytes / 1e6:.1f} MB): sizes, xxh3-64, sha256, Arrow "
                        "structure and counts match corpus.json")


def verify_shards_folder(shards_dir: str | Path) -> VerifyReport:
    """Check every shard and sidecar of a folder written by `mixer build-shards`."""
    from mixer.formats.shards import INDEX_NAME, read_index, read_shard_domains, verify_shards

    shards_dir = Path(shards_dir)
    index = read_index(shards_dir)
    n = verify_shards(shards_dir)
    n_domains = index.domain_count
    for e in index.shards:
        side = read_shard_domains(shards_dir / e.file, index)
        if side.size and int(side.max()) >= n_domains:
            raise MixerError(f"{shards_dir / e.domains.file}: domain id {int(side.max())} but "
                             f"{shards_dir / INDEX_NAME} names {n_domains} domains; rebuild the shards")
    files = 2 * len(index.shards)
    nbytes = sum((shards_dir / e.file).stat().st_size + (shards_dir / e.domains.file).stat().st_size
                 for e in index.shards)
    return VerifyReport("shards", files, nbytes,
                        f"{len(index.shards)} shards + sidecars, {n:,} sequences of {index.seq_len} "
                        f"({nbytes / 1e6:.1f} MB): xxh64, sha256, sizes and domain ids match index.json")


def verify_folder(path: str | Path) -> VerifyReport:
    """A corpus (has corpus.json) or a shards folder (has index.json), checked in full."""
    path = Path(path)
    if (path / "corpus.json").exists():
        return verify_corpus(path)
    if (path / "index.json").exists():
        return verify_shards_folder(path)
    if not path.is_dir():
        raise MixerError(f"{path}: no such folder; give a corpus (mixer prepare) or shards (mixer build-shards) folder")
    raise MixerError(f"{path}: neither corpus.json nor index.json here; give a folder written by `mixer prepare` "
                     "or `mixer build-shards`")
