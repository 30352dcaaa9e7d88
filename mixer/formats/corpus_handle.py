"""`Corpus`: a prepared corpus opened once, passed down instead of its folder.

Each floor used to take the folder and read `corpus.json` again (one training run entered the
corpus module 7 times: the manifest for the plan, again for its sha256, again for the sources,
the held-out sets, the vocabulary ...). A `Corpus` holds the folder, the checked manifest and the
manifest's sha256, read from one set of bytes, so every floor below sees the same corpus even if
the file changes underneath, and the file is parsed once per command. The Arrow parts' checksums
are verified once per process when a split is first opened (`mixer.formats.checksums`).

Functions that take a corpus accept a `Corpus` or a folder (`as_corpus`): a folder is opened on
the spot, for scripts and tests; commands open the handle once and pass it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mixer.core.errors import MixerError
from mixer.core.jsonio import read_json_object
from mixer.core.urls import (
    as_typed,
    cache_root,
    download_folder,
    filesystem,
    is_remote,
    join,
    read_object,
    require_local,
)
from mixer.formats.corpus import (
    MANIFEST_NAME,
    CorpusManifest,
    DomainSplit,
    MLMSpecialIds,
    mlm_special_ids,
    open_split,
    tokenizer_file,
)
from mixer.formats.schema import canonical


@dataclass(frozen=True)
class Corpus:
    """An opened corpus: `folder`, its checked `manifest`, and `sha256` of the manifest's
    canonical JSON (what shards, runs and streams record to name the exact corpus)."""

    folder: Path
    manifest: CorpusManifest
    sha256: str
    url: str | None = None  # where it was opened from, when a URL (`folder` is then its cached copy)

    @classmethod
    def open(cls, folder: str | Path, *, expect_sha256: str | None = None,
             mismatch: Callable[[Path], MixerError] | None = None) -> Corpus:
        """Read and check `folder/corpus.json` once; errors name the file and the fix. With
        `expect_sha256`, a manifest of other content raises `mismatch(folder)` before it is
        checked: "another corpus" is the finding, whatever else is wrong with it."""
        url = as_typed(folder) if is_remote(folder) else None
        folder = fetch_corpus(url) if url is not None else require_local(folder, "corpus")
        path = folder / MANIFEST_NAME
        obj = read_json_object(path, "corpus manifest", "point --corpus at a folder written by `mixer prepare`")
        sha = hashlib.sha256(canonical(obj)).hexdigest()
        if expect_sha256 is not None and sha != expect_sha256:
            raise (mismatch(folder) if mismatch is not None else
                   MixerError(f"{path}: not the corpus expected (sha256 {sha[:12]}… vs {expect_sha256[:12]}…)"))
        return cls(folder=folder, manifest=CorpusManifest.from_json(obj, source=str(path)), sha256=sha, url=url)

    @property
    def domain_names(self) -> list[str]:
        return self.manifest.domain_names

    def split(self, domain: str, split: str = "train") -> DomainSplit:
        """One domain's split, memory-mapped and checked against the manifest."""
        return open_split(self.folder, domain, split, self.manifest)

    def tokenizer_file(self) -> Path:
        """`tokenizer.json`, its checksum verified."""
        return tokenizer_file(self.folder, self.manifest)

    def mlm_special_ids(self) -> MLMSpecialIds:
        return mlm_special_ids(self.manifest)

    def __str__(self) -> str:  # messages name the folder, as they did when a folder was passed
        return str(self.folder)

    def __fspath__(self) -> str:
        return str(self.folder)


def fetch_corpus(url: str) -> Path:
    """A corpus on object storage (`s3://bucket/corpus`), downloaded once into
    `$MIXER_CACHE/corpora/<sha256 of its corpus.json>/` and opened from there: the manifest's
    content names the copy, so a changed corpus is fetched again and an unchanged one never is.
    The Arrow parts' checksums are verified when they are opened, as for any corpus."""
    fs, root = filesystem(url)
    try:
        manifest = read_object(fs, join(root, MANIFEST_NAME), join(url, MANIFEST_NAME))
    except FileNotFoundError:
        raise MixerError(f"{join(url, MANIFEST_NAME)}: not found; point --corpus at a folder written by "
                         "`mixer prepare` (uploaded whole)") from None
    dest = download_folder(url, cache_root() / "corpora" / hashlib.sha256(manifest).hexdigest()[:32])
    if (dest / MANIFEST_NAME).read_bytes() != manifest:
        raise MixerError(f"{url}: its {MANIFEST_NAME} changed during the download; run again")
    return dest


def as_corpus(corpus: Corpus | str | Path) -> Corpus:
    """`corpus` itself when already opened, else the folder opened now."""
    return corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
