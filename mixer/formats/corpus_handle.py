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
from dataclasses import dataclass, field
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
from mixer.formats.schema import canonical_and_seal_ok


@dataclass(frozen=True)
class Corpus:
    """An opened corpus: `folder`, its checked `manifest`, and `sha256` of the manifest's
    canonical JSON (what shards, runs and streams record to name the exact corpus)."""

    folder: Path
    manifest: CorpusManifest
    sha256: str
    url: str | None = None  # where it was opened from, when a URL (`folder` is then its cached copy)
    # (domain, split) -> its opened parts: a command that plans and then gathers opens and
    # validates each Arrow part once (10,000 domains are 10,000 parts, not 20,000). Not pickled:
    # memory maps belong to one process, and a copy would carry their bytes.
    _splits: dict = field(default_factory=dict, init=False, compare=False, repr=False)

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
        whole, sealed = canonical_and_seal_ok(obj)  # one encoding for the sha256 and the seal
        sha = hashlib.sha256(whole).hexdigest()
        if expect_sha256 is not None and sha != expect_sha256:
            raise (mismatch(folder) if mismatch is not None else
                   MixerError(f"{path}: not the corpus expected (sha256 {sha[:12]}… vs {expect_sha256[:12]}…)"))
        return cls(folder=folder, manifest=CorpusManifest.from_json(obj, source=str(path), sealed=sealed), sha256=sha,
                   url=url)

    @property
    def domain_names(self) -> list[str]:
        return self.manifest.domain_names

    def split(self, domain: str, split: str = "train") -> DomainSplit:
        """One domain's split, memory-mapped and checked against the manifest (once per handle)."""
        key = (domain, split)
        found = self._splits.get(key)
        if found is None:
            found = self._splits.setdefault(key, open_split(self.folder, domain, split, self.manifest))
        return found

    def __getstate__(self) -> dict:
        return {"folder": self.folder, "manifest": self.manifest, "sha256": self.sha256}

    def __setstate__(self, state: dict) -> None:
        for name, value in {**state, "_splits": {}}.items():
            object.__setattr__(self, name, value)

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
