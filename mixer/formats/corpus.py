"""The prepared corpus on disk: `corpus.json` plus tokenized Arrow domains.

Layout (written by `mixer prepare`, read by the sampler, trainers and solver)::

    CORPUS/
      corpus.json                 # the manifest below
      tokenizer.json              # the tokenizer the tokens came from (sha256 in the manifest)
      DOMAIN/train/part-00000.arrow
      DOMAIN/heldout/part-00000.arrow

Each Arrow IPC *file* holds one record batch with columns ``doc_id: uint64`` (xxh64 of the
source document's full text, stable across runs and machines) and ``tokens:
large_list<uint16|uint32>`` (uint16 whenever the vocab fits). Tokens are stored without EOS;
the sampler inserts EOS between documents. Files open as read-only memory maps (small ones are
read whole), and `open_split` hands the list's offsets and values buffers out as NumPy views
without copying.

Example `corpus.json` (abridged)::

    {"format_version": 2, "eos_id": 50256, "vocab_size": 50257, "token_dtype": "uint16",
     "tokenizer": {"path": "tokenizer.json", "sha256": "…", "kind": "gpt2"},
     "seed": 0, "rules": {"min_chars": 1000, "cut_chars": 1000, …},
     "domains": {"news": {"kind": "news", "splits": {"train": {"documents": 5000,
                 "tokens": 1100000, "files": ["news/train/part-00000.arrow"]}, …},
                 "report": {"seen": 5400, "kept": 5100, "dropped_short": 250, …}}},
     "files": {"news/train/part-00000.arrow": {"bytes": 2200440, "xxh3_64": "…", "sha256": "…"},
               "tokenizer.json": {…}, …},
     "checksum": "5d0c…"}

Integrity (format 2): `files` holds the size, xxh3-64 and sha256 of every Arrow part and of
the tokenizer (`mixer.formats.checksums`); every reader checks a file's xxh3-64 the first time
it opens it, then validates its Arrow structure (types, offsets monotone and inside the values
buffer) before any buffer reaches a kernel. `checksum` is the xxh3-64 of the manifest's own
canonical JSON (`mixer.formats.schema.seal`), so a damaged `corpus.json` is named as such.
A format-1 corpus (no checksums) is refused with a one-line request to re-run `mixer prepare`.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mixer.core.errors import MixerError, listed
from mixer.core.jsonio import read_json_object
from mixer.formats.arrow.ipc import learn_layout, read_part, write_part  # noqa: F401 (write_part: importable here as ever)
from mixer.formats.arrow.pyarrow_views import arrow_errors, pyarrow_views
from mixer.formats.checksums import FileChecksum, file_checksum, file_sha256, verify_file  # noqa: F401 (file_sha256: importable here)
from mixer.formats.schema import SEAL_KEY, check, seal_ok, write_sealed

FORMAT_VERSION = 2
MANIFEST_NAME = "corpus.json"
SPLITS = ("train", "heldout")


@dataclass(frozen=True, slots=True)  # (slots: 10,000 domains build 50,000 of these)
class SplitInfo:
    documents: int
    tokens: int
    files: list[str]  # paths relative to the corpus folder


@dataclass(frozen=True, slots=True)
class DomainInfo:
    kind: str
    splits: dict[str, SplitInfo]
    report: dict[str, int] = field(default_factory=dict)  # seen, kept, dropped_<rule>, ...


@dataclass(frozen=True)
class TokenizerInfo:
    path: str  # relative to the corpus folder
    sha256: str
    kind: str  # "gpt2", "trained-bpe" or "user"


@dataclass(frozen=True)
class CorpusManifest:
    format_version: int
    eos_id: int
    vocab_size: int
    token_dtype: str
    tokenizer: TokenizerInfo
    seed: int
    rules: dict[str, Any]
    domains: dict[str, DomainInfo]
    files: dict[str, FileChecksum] = field(default_factory=dict)  # filled in by `save_manifest`

    @property
    def domain_names(self) -> list[str]:
        return sorted(self.domains)

    def tokens(self, split: str = "train") -> dict[str, int]:
        return {d: self.domains[d].splits[split].tokens for d in self.domain_names}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: str = MANIFEST_NAME, sealed: bool | None = None) -> CorpusManifest:
        """Check the manifest's version, seal and shape; every problem names `source`. `sealed`:
        the seal's verdict when the caller has it (`Corpus.open`), else checked here."""
        fix = "re-run `mixer prepare` to write it again"
        version = obj.get("format_version")
        if version == 1:
            raise MixerError(f"{source}: corpus format_version 1 (no per-file checksums) is no longer read; "
                             "re-run `mixer prepare` with this version of mixer")
        if not (seal_ok(obj) if sealed is None else sealed):
            raise MixerError(f"{source}: damaged corpus manifest (its checksum does not match its content); {fix}")
        if version != FORMAT_VERSION:
            raise MixerError(f"{source}: format_version {version!r} is not supported (expected {FORMAT_VERSION}); "
                             "re-run `mixer prepare` with this version of mixer")
        problem = check(obj, _MANIFEST_SPEC) or _consistency(obj)
        if problem:
            raise MixerError(f"{source}: malformed corpus manifest ({problem}); {fix}")
        # (the known fields only: a field a later writer adds is not a crash here; positional
        # arguments: a third faster than keywords, and 10,000 domains make 50,000 of these)
        domains = {name: DomainInfo(d["kind"], {s: SplitInfo(i["documents"], i["tokens"], i["files"])
                                                for s, i in d["splits"].items()}, dict(d.get("report", {})))
                   for name, d in obj["domains"].items()}
        tok = obj["tokenizer"]
        return cls(format_version=version, eos_id=obj["eos_id"], vocab_size=obj["vocab_size"],
                   token_dtype=obj["token_dtype"], tokenizer=TokenizerInfo(path=tok["path"], sha256=tok["sha256"],
                                                                           kind=tok["kind"]), seed=obj["seed"],
                   rules=dict(obj["rules"]), domains=domains,
                   files={k: FileChecksum(v["bytes"], v["xxh3_64"], v["sha256"]) for k, v in obj["files"].items()})


_SPLIT_SPEC = {"documents": int, "tokens": int, "files": [str]}
_CHECKSUM_SPEC = {"bytes": int, "xxh3_64": str, "sha256": str}
_MANIFEST_SPEC = {
    "format_version": int, "eos_id": int, "vocab_size": int, "token_dtype": str, "seed": int, "rules": dict,
    "tokenizer": {"path": str, "sha256": str, "kind": str},
    "domains": {str: {"kind": str, "splits": {str: _SPLIT_SPEC}, "report?": {str: int}}},  # ("train": below)
    "files": {str: _CHECKSUM_SPEC}, SEAL_KEY: str,
}


def _consistency(obj: dict[str, Any]) -> str | None:
    """What the types cannot say: known dtype, ids in range, every data file checksummed,
    paths inside the corpus."""
    if obj["token_dtype"] not in ("uint16", "uint32"):
        return f"token_dtype {obj['token_dtype']!r} is not uint16 or uint32"
    if not 0 <= obj["eos_id"] < obj["vocab_size"]:
        return f"eos_id {obj['eos_id']} is outside the vocab of {obj['vocab_size']}"
    data_files = [f for d in obj["domains"].values() for sp in d["splits"].values() for f in sp["files"]]
    if obj["tokenizer"]["path"]:
        data_files.append(obj["tokenizer"]["path"])
    for f in data_files:
        if f not in obj["files"]:
            return f"{f} has no checksum in 'files'"
        if f.startswith("/") or (".." in f and ".." in f.split("/")):  # (strings: no Path per file)
            return f"{f} is not a path inside the corpus"
    for name, d in obj["domains"].items():
        if "train" not in d["splits"]:
            return f"domains.{name}.splits.train: missing"
        for split, sp in d["splits"].items():
            if sp["documents"] < 0 or sp["tokens"] < 0:
                return f"domains.{name}.splits.{split}: negative counts"
    return None


def save_manifest(corpus_dir: str | Path, manifest: CorpusManifest) -> CorpusManifest:
    """Write `corpus.json` (the one writer: `mixer prepare` and the test corpora both use it),
    with the size, xxh3-64 and sha256 of every Arrow part and the tokenizer, and its own seal.
    Returns the manifest with `files` filled in."""

    if manifest.format_version != FORMAT_VERSION:
        raise MixerError(f"{corpus_dir}: manifest format_version {manifest.format_version}, this writer is {FORMAT_VERSION}")
    corpus_dir = Path(corpus_dir)
    data_files = [f for d in manifest.domains.values() for sp in d.splits.values() for f in sp.files]
    if manifest.tokenizer.path:
        data_files.append(manifest.tokenizer.path)
    manifest = replace(manifest, files={f: file_checksum(corpus_dir / f) for f in sorted(data_files)})
    write_sealed(corpus_dir / MANIFEST_NAME, manifest.to_json())
    return manifest


def load_manifest(corpus_dir: str | Path) -> CorpusManifest:
    """Read and validate `corpus.json`; errors name the file and how to fix it."""
    path = Path(corpus_dir) / MANIFEST_NAME
    obj = read_json_object(path, "corpus manifest", "point --corpus at a folder written by `mixer prepare`")
    return CorpusManifest.from_json(obj, source=str(path))


def tokenizer_file(corpus_dir: str | Path, manifest: CorpusManifest) -> Path:
    """The corpus's `tokenizer.json`, its checksum verified (None-like corpora raise)."""
    corpus_dir = Path(corpus_dir)
    if not manifest.tokenizer.path:
        raise MixerError(f"{corpus_dir / MANIFEST_NAME}: this corpus records no tokenizer (synthetic?); "
                         "nothing to decode with")
    path = corpus_dir / manifest.tokenizer.path
    verify_file(path, manifest.files[manifest.tokenizer.path], MANIFEST_NAME, "re-run `mixer prepare`")
    return path


def token_dtype_for(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32; larger vocabularies cannot be stored."""
    if vocab_size <= 0:
        raise MixerError(f"tokenizer vocab size {vocab_size} is not positive; check the tokenizer file")
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    if vocab_size <= 1 << 32:
        return np.dtype(np.uint32)
    raise MixerError(f"tokenizer vocab size {vocab_size} exceeds uint32; use a tokenizer with at most 2**32 ids")


@dataclass(frozen=True, slots=True)
class ArrowPart:
    """Zero-copy views of one Arrow file: document i is ``values[offsets[i]:offsets[i+1]]``."""

    path: str  # the file, for messages (a Path per part costs 5 us: 10,000 one-part domains)
    doc_ids: np.ndarray  # uint64[n]
    offsets: np.ndarray  # int64[n + 1]
    values: np.ndarray  # uint16|uint32[offsets[-1]]

    @property
    def lengths(self) -> np.ndarray:
        return self.offsets[1:] - self.offsets[:-1]  # np.diff's values, without its overhead (10,000 parts)


SMALL_PART = 1 << 16  # parts up to this size are read whole: one read costs less than setting up a map


def _mapped(fd: int) -> mmap.mmap:
    """The file mapped read-only (its views refuse writes, as pyarrow's did), the kernel told it
    will be read (`MADV_WILLNEED`, as pyarrow's `memory_map` tells it)."""
    m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    if hasattr(mmap, "MADV_WILLNEED"):
        m.madvise(mmap.MADV_WILLNEED)
    return m


def _part_bytes(path: Path) -> tuple[bytes | mmap.mmap, os.stat_result]:
    """The file's bytes and its stat: a small part read whole (a corpus of 10,000 domains is
    10,000 small parts, and mapping one costs more than reading it), a larger one memory-mapped
    read-only (zero-copy: the pages the kernels read are the page cache's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if st.st_size <= SMALL_PART:
            return os.read(fd, st.st_size), st  # (a short read fails the checksum)
        return _mapped(fd), st
    finally:
        os.close(fd)


def open_part(path: str | Path, dtype: np.dtype | str | None = None,
              checksum: FileChecksum | None = None) -> ArrowPart:
    """Map (or, when small, read) one part. With `checksum` (from corpus.json) the file's bytes
    are verified first; then its structure is validated (one batch, the format's types, no
    nulls, offsets monotone and inside the values buffer), so no buffer handed to a kernel can
    point outside the file: the writer's exact layout by `arrow.ipc.read_part`, any other file
    by pyarrow. Any failure is a `MixerError` naming the file."""
    path = path if isinstance(path, Path) else Path(path)  # (re-making a Path costs 10 us a part)
    fix = "re-run `mixer prepare`"
    try:
        data, st = _part_bytes(path)
        if checksum is not None:  # before a byte of it is parsed
            verify_file(path, checksum, MANIFEST_NAME, fix, data=data, stat=st)
        # the layout of a part pyarrow has validated, read from the bytes (`arrow.ipc`); else pyarrow
        found = None if dtype is None else read_part(data, np.dtype(dtype))
        doc_ids, offsets, values = found if found is not None else pyarrow_views(path, data, dtype, fix)
    except FileNotFoundError:
        raise MixerError(f"{path}: Arrow file missing from the corpus; {fix}") from None
    except (*arrow_errors(), OSError, ValueError, IndexError) as exc:
        raise MixerError(f"{path}: corrupt or truncated Arrow file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                         f"{fix}") from None
    if dtype is not None and values.dtype != np.dtype(dtype):
        raise MixerError(f"{path}: tokens are {values.dtype} but the manifest says {np.dtype(dtype)}; {fix}")
    # Belt and braces over Arrow's own validation: these are the invariants the kernels index by.
    if len(offsets) != len(doc_ids) + 1 or (len(offsets) and (offsets[0] < 0 or offsets[-1] > len(values))) \
            or (offsets[1:] < offsets[:-1]).any():
        raise MixerError(f"{path}: token offsets are not monotone inside the values buffer; {fix}")
    if found is None and dtype is not None:  # valid: a model for the next parts of its layout
        learn_layout(data, np.dtype(dtype), (doc_ids, offsets, values))
    return ArrowPart(path=str(path), doc_ids=doc_ids, offsets=offsets, values=values)


@dataclass(frozen=True, slots=True)
class DomainSplit:
    """One domain's split: its Arrow parts, in order. Document k of the split is the k-th
    document when the parts are read one after another."""

    domain: str
    split: str
    parts: list[ArrowPart]

    @property
    def num_documents(self) -> int:
        return sum(len(p.doc_ids) for p in self.parts)

    def lengths(self) -> np.ndarray:
        """Token count of every document (int64), concatenated over parts."""
        if not self.parts:
            return np.zeros(0, dtype=np.int64)
        if len(self.parts) == 1:  # (no concatenation: 10,000 one-part domains)
            return self.parts[0].lengths.astype(np.int64, copy=False)
        return np.concatenate([p.lengths for p in self.parts]).astype(np.int64, copy=False)

    def document(self, k: int) -> np.ndarray:
        for p in self.parts:
            if k < len(p.doc_ids):
                return p.values[p.offsets[k] : p.offsets[k + 1]]
            k -= len(p.doc_ids)
        raise IndexError(k)


def open_split(corpus_dir: str | Path, domain: str, split: str = "train",
               manifest: CorpusManifest | None = None) -> DomainSplit:
    """Memory-map every part of one domain's split and check it against the manifest."""
    corpus_dir = corpus_dir if isinstance(corpus_dir, Path) else Path(corpus_dir)
    manifest = manifest or load_manifest(corpus_dir)
    if domain not in manifest.domains:
        raise MixerError(f"domain {domain!r} is not in {corpus_dir / MANIFEST_NAME}; known domains: {listed(manifest.domain_names)}")
    info = manifest.domains[domain].splits.get(split)
    if info is None:
        raise MixerError(f"domain {domain!r} has no {split!r} split in {corpus_dir / MANIFEST_NAME}")
    parts = [open_part(corpus_dir / f, manifest.token_dtype, manifest.files[f]) for f in info.files]
    return checked_split(corpus_dir, domain, split, parts, info)


def checked_split(corpus_dir: Path, domain: str, split: str, parts: list[ArrowPart], info: SplitInfo,
                  counts: tuple[int, int] | None = None) -> DomainSplit:
    """The split of `parts` once their documents and tokens (`counts`, when known) are the manifest's."""
    n_docs, n_tok = counts or (sum(len(p.doc_ids) for p in parts), sum(int(p.offsets[-1] - p.offsets[0]) for p in parts))
    if n_docs != info.documents or n_tok != info.tokens:
        raise MixerError(f"{corpus_dir / domain / split}: holds {n_docs} documents / {n_tok} tokens but corpus.json "
                         f"says {info.documents} / {info.tokens} (manifest mismatch); re-run `mixer prepare`")
    return DomainSplit(domain=domain, split=split, parts=parts)


@dataclass(frozen=True)
class MLMSpecialIds:
    """Masked-LM specials. A byte-level BPE (the default GPT-2 one) has no [CLS]/[SEP]/[MASK]/
    [PAD], so mixer appends them after the corpus vocab: BERT models use `model_vocab_size`."""

    pad: int
    cls: int
    sep: int
    mask: int

    @property
    def model_vocab_size(self) -> int:
        return max(self.pad, self.cls, self.sep, self.mask) + 1


def mlm_special_ids(manifest: CorpusManifest) -> MLMSpecialIds:
    v = manifest.vocab_size
    special = MLMSpecialIds(pad=v, cls=v + 1, sep=v + 2, mask=v + 3)
    if special.model_vocab_size > np.iinfo(np.dtype(manifest.token_dtype)).max + 1:
        raise MixerError(f"vocab size {v} leaves no room for MLM special ids in {manifest.token_dtype}; "
                         "use a tokenizer with fewer ids for --objective mlm")
    return special
