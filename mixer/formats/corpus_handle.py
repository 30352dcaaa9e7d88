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

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixer.core.errors import MixerError
from mixer.core.jsonio import read_json_document
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
from mixer.formats.arrow.ipc import knows_layout, read_parts
from mixer.formats.checksums import FileChecksum, verify_read
from mixer.formats.corpus import (
    MANIFEST_NAME,
    SMALL_PART,
    ArrowPart,
    CorpusManifest,
    DomainSplit,
    MLMSpecialIds,
    checked_split,
    mlm_special_ids,
    open_part,
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
        obj, plain = read_json_document(path, "corpus manifest", "point --corpus at a folder written by "
                                        "`mixer prepare`")
        whole, sealed = canonical_and_seal_ok(obj, plain_floats=plain)  # one encoding: sha256 and seal
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

    def splits(self, domains: Sequence[str], split: str = "train") -> dict[str, DomainSplit]:
        """`split` of each domain, the ones not yet opened opened together (`open_splits`)."""
        todo = [d for d in dict.fromkeys(domains) if (d, split) not in self._splits]
        if todo:
            for d, found in open_splits(self.folder, self.manifest, todo, split).items():
                self._splits.setdefault((d, split), found)
        return {d: self._splits[(d, split)] for d in domains}

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


def open_splits(folder: Path, manifest: CorpusManifest, domains: Sequence[str], split: str = "train"
                ) -> dict[str, DomainSplit]:
    """`open_split` of each domain in turn, with its checks, its errors and their order, at a
    third of the cost per part (10,000 one-part domains: 0.6 s -> 0.2 s). The small parts (those
    `open_part` reads whole) are read into one buffer, their checksums verified in one batch, and
    their Arrow layout and offsets checked in array operations (`_read_small_parts`). Then domain
    after domain, as `open_split` goes: a part that pass did not accept, and every larger part,
    goes through `open_part` itself, which accepts it as before or raises the error it always
    raised; then the manifest's counts are checked."""
    dtype = np.dtype(manifest.token_dtype)
    known = [d in manifest.domains and split in manifest.domains[d].splits for d in domains]
    names = [manifest.domains[d].splits[split].files if ok else () for d, ok in zip(domains, known)]
    paths = [f"{folder}/{f}" for fs in names for f in fs]  # (strings: a Path per part costs 5 us)
    checksums = [manifest.files[f] for fs in names for f in fs]
    opened = _read_small_parts(paths, checksums, dtype)
    out, k = {}, 0
    for d, ok, fs in zip(domains, known, names):
        if not ok:
            open_split(folder, d, split, manifest)  # (raises: an unknown domain or split)
        parts, n_docs, n_tok = [], 0, 0
        first, k = k, k + len(fs)  # (this domain's files: first .. k)
        for j in range(first, k):
            found = opened.get(j)
            if found is None:
                part = open_part(paths[j], dtype, checksums[j])
                found = part, (len(part.doc_ids), int(part.offsets[-1] - part.offsets[0]))
            parts.append(found[0])
            n_docs, n_tok = n_docs + found[1][0], n_tok + found[1][1]
        out[d] = checked_split(folder, d, split, parts, manifest.domains[d].splits[split], (n_docs, n_tok))
    return out


def _read_small_parts(paths: list[str], checksums: list[FileChecksum], dtype: np.dtype
                      ) -> dict[int, tuple[ArrowPart, tuple[int, int]]]:
    """{file index: (part, (documents, tokens))} of the files among `paths` that `open_part`
    would read whole and accept, read into one buffer (four system calls each), verified
    against `checksums` in one batch (`verify_read`), their layout checked by
    `arrow.ipc.read_parts` and their offsets all at once. A file left out (missing, changed,
    damaged, another layout) is for `open_part` to accept or name."""
    small = [k for k, c in enumerate(checksums) if c.bytes <= SMALL_PART]
    if small and not knows_layout(dtype):  # the first part, opened alone, is the model of the rest
        with contextlib.suppress(MixerError):  # (its error, if any, comes in its turn)
            open_part(paths[small[0]], dtype, checksums[small[0]])
    sizes = [checksums[k].bytes for k in small]
    starts = np.zeros(len(small) + 1, np.int64)
    np.cumsum([-(-n // 64) * 64 for n in sizes], out=starts[1:])  # (64-aligned: the views are aligned)
    buf = np.zeros(int(starts[-1]) + 1024, np.uint8)  # (a margin for reads of parts' numbers that are not theirs)
    view, got = memoryview(buf), []  # got: (index in small, bytes, stat) of each part read whole
    for j, k, a, n in zip(range(len(small)), small, starts.tolist(), sizes):
        try:
            fd = os.open(paths[k], os.O_RDONLY)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if st.st_size == n and os.readv(fd, [data := view[a:a + n]]) == n:
                got.append((j, data, st))
        finally:
            os.close(fd)
    passed = verify_read([(paths[small[j]], checksums[small[j]], data, st) for j, data, st in got])
    read = np.zeros(len(small), bool)
    read[[j for (j, _, _), ok in zip(got, passed) if ok]] = True
    buf.setflags(write=False)  # (the views are read-only, as those of a part read alone)
    found = read_parts(buf, starts[:-1], np.array(sizes, np.int64), dtype)
    if found is None or not (good := np.flatnonzero(read & found.ok)).size:
        return {}
    numbers = zip(*(x[good].tolist() for x in (found.rows, found.n_values, found.ids_at, found.offsets_at,
                                                 found.values_at)))
    u64, i64, tok, w = buf.view(np.uint64), buf.view(np.int64), buf.view(dtype), dtype.itemsize
    views = [(u64[a // 8:a // 8 + r], i64[b // 8:b // 8 + r + 1], tok[c // w:c // w + v])  # (slices: 1/4 the cost)
             for r, v, a, b, c in numbers]
    fine, tokens = _offsets_fine([v[1] for v in views], found.n_values[good])
    return {small[j]: (ArrowPart(path=paths[small[j]], doc_ids=ids, offsets=offs, values=values), (len(ids), t))
            for j, (ids, offs, values), ok, t in zip(good.tolist(), views, fine.tolist(), tokens.tolist()) if ok}


def _offsets_fine(offsets: list[np.ndarray], n_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which parts' offsets `open_part` accepts (the first >= 0, the last inside the values, none
    falling), all parts' offsets checked at once; and each part's tokens (last - first offset)."""
    lens = np.array([len(o) for o in offsets], np.int64)
    ends = np.cumsum(lens)
    whole = np.concatenate(offsets)
    fine = (whole[ends - lens] >= 0) & (whole[ends - 1] <= n_values)
    falls = np.flatnonzero(whole[1:] < whole[:-1]) + 1  # where an offset is below the one before it
    falls = falls[~np.isin(falls, ends[:-1])]  # (not a part's first offset: that follows another part)
    fine[np.searchsorted(ends, falls, side="right")] = False
    return fine, whole[ends - 1] - whole[ends - lens]
