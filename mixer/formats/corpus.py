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
the sampler inserts EOS between documents. Files open with `pyarrow.memory_map`, and
`open_split` hands the list's offsets and values buffers out as NumPy views without copying.

Example `corpus.json` (abridged)::

    {"format_version": 1, "eos_id": 50256, "vocab_size": 50257, "token_dtype": "uint16",
     "tokenizer": {"path": "tokenizer.json", "sha256": "…", "kind": "gpt2"},
     "seed": 0, "rules": {"min_chars": 1000, "cut_chars": 1000, …},
     "domains": {"news": {"kind": "news", "splits": {"train": {"documents": 5000,
                 "tokens": 1100000, "files": ["news/train/part-00000.arrow"]}, …},
                 "report": {"seen": 5400, "kept": 5100, "dropped_short": 250, …}}}}
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mixer.core.atomic import write_json_atomic
from mixer.core.errors import MixerError
from mixer.core.jsonio import read_json_object

FORMAT_VERSION = 1
MANIFEST_NAME = "corpus.json"
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class SplitInfo:
    documents: int
    tokens: int
    files: list[str]  # paths relative to the corpus folder


@dataclass(frozen=True)
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

    @property
    def domain_names(self) -> list[str]:
        return sorted(self.domains)

    def tokens(self, split: str = "train") -> dict[str, int]:
        return {d: self.domains[d].splits[split].tokens for d in self.domain_names}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: str = MANIFEST_NAME) -> "CorpusManifest":
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise MixerError(
                f"{source}: format_version {version!r} is not supported (expected {FORMAT_VERSION}); "
                "re-run `mixer prepare` with this version of mixer"
            )
        try:
            domains = {
                name: DomainInfo(
                    kind=d["kind"],
                    splits={s: SplitInfo(**info) for s, info in d["splits"].items()},
                    report=dict(d.get("report", {})),
                )
                for name, d in obj["domains"].items()
            }
            return cls(
                format_version=version,
                eos_id=int(obj["eos_id"]),
                vocab_size=int(obj["vocab_size"]),
                token_dtype=str(obj["token_dtype"]),
                tokenizer=TokenizerInfo(**obj["tokenizer"]),
                seed=int(obj["seed"]),
                rules=dict(obj["rules"]),
                domains=domains,
            )
        except (KeyError, TypeError) as exc:
            raise MixerError(f"{source}: malformed corpus manifest ({exc!r}); re-run `mixer prepare`") from None


def save_manifest(corpus_dir: str | Path, manifest: CorpusManifest) -> None:
    """Write `corpus.json` (the one writer: `mixer prepare` and the test corpora both use it)."""
    if manifest.format_version != FORMAT_VERSION:
        raise MixerError(f"{corpus_dir}: manifest format_version {manifest.format_version}, this writer is {FORMAT_VERSION}")
    write_json_atomic(Path(corpus_dir) / MANIFEST_NAME, manifest.to_json())


def load_manifest(corpus_dir: str | Path) -> CorpusManifest:
    """Read and validate `corpus.json`; errors name the file and how to fix it."""
    path = Path(corpus_dir) / MANIFEST_NAME
    obj = read_json_object(path, "corpus manifest", "point --corpus at a folder written by `mixer prepare`")
    return CorpusManifest.from_json(obj, source=str(path))


def manifest_sha256(corpus_dir: str | Path) -> str:
    """Hash of the manifest bytes: ties shards and runs to the exact corpus they came from."""
    return hashlib.sha256((Path(corpus_dir) / MANIFEST_NAME).read_bytes()).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def token_dtype_for(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32; larger vocabularies cannot be stored."""
    if vocab_size <= 0:
        raise MixerError(f"tokenizer vocab size {vocab_size} is not positive; check the tokenizer file")
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    if vocab_size <= 1 << 32:
        return np.dtype(np.uint32)
    raise MixerError(f"tokenizer vocab size {vocab_size} exceeds uint32; use a tokenizer with at most 2**32 ids")


def arrow_schema(dtype: np.dtype) -> pa.Schema:
    return pa.schema([("doc_id", pa.uint64()), ("tokens", pa.large_list(pa.from_numpy_dtype(dtype)))])


def write_part(path: str | Path, doc_ids: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
    """Write one Arrow IPC file holding a single record batch (contiguous buffers for the kernels)."""
    tokens = pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64)), pa.array(values))
    batch = pa.record_batch([pa.array(doc_ids.astype(np.uint64)), tokens], schema=arrow_schema(values.dtype))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)


@dataclass(frozen=True)
class ArrowPart:
    """Zero-copy views of one Arrow file: document i is ``values[offsets[i]:offsets[i+1]]``."""

    path: Path
    doc_ids: np.ndarray  # uint64[n]
    offsets: np.ndarray  # int64[n + 1]
    values: np.ndarray  # uint16|uint32[offsets[-1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def open_part(path: str | Path, dtype: np.dtype | str | None = None) -> ArrowPart:
    """Memory-map one part; a corrupt, truncated or mistyped file is named in the error."""
    path = Path(path)
    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
        if reader.num_record_batches != 1:
            raise MixerError(f"{path}: expected one record batch, found {reader.num_record_batches}; re-run `mixer prepare`")
        batch = reader.get_batch(0)
        batch.validate(full=False)
    except FileNotFoundError:
        raise MixerError(f"{path}: Arrow file missing from the corpus; re-run `mixer prepare`") from None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise MixerError(f"{path}: corrupt or truncated Arrow file ({exc}); re-run `mixer prepare`") from None
    if batch.schema.names != ["doc_id", "tokens"] or not pa.types.is_large_list(batch.schema.field("tokens").type):
        raise MixerError(f"{path}: columns {batch.schema} are not (doc_id: uint64, tokens: large_list); re-run `mixer prepare`")
    tokens = batch.column(1)
    offsets = tokens.offsets.to_numpy(zero_copy_only=True)
    values = tokens.values.to_numpy(zero_copy_only=True)
    if dtype is not None and values.dtype != np.dtype(dtype):
        raise MixerError(f"{path}: tokens are {values.dtype} but the manifest says {np.dtype(dtype)}; re-run `mixer prepare`")
    if len(offsets) and (offsets[0] < 0 or offsets[-1] > len(values)):
        raise MixerError(f"{path}: token offsets point outside the values buffer (truncated file); re-run `mixer prepare`")
    doc_ids = batch.column(0).to_numpy(zero_copy_only=True)
    return ArrowPart(path=path, doc_ids=doc_ids, offsets=offsets, values=values)


@dataclass(frozen=True)
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
        return np.concatenate([p.lengths for p in self.parts]).astype(np.int64, copy=False)

    def document(self, k: int) -> np.ndarray:
        for p in self.parts:
            n = len(p.doc_ids)
            if k < n:
                return p.values[p.offsets[k] : p.offsets[k + 1]]
            k -= n
        raise IndexError(k)


def open_split(corpus_dir: str | Path, domain: str, split: str = "train",
               manifest: CorpusManifest | None = None) -> DomainSplit:
    """Memory-map every part of one domain's split and check it against the manifest."""
    corpus_dir = Path(corpus_dir)
    manifest = manifest or load_manifest(corpus_dir)
    if domain not in manifest.domains:
        raise MixerError(f"domain {domain!r} is not in {corpus_dir / MANIFEST_NAME}; known domains: {', '.join(manifest.domain_names)}")
    info = manifest.domains[domain].splits.get(split)
    if info is None:
        raise MixerError(f"domain {domain!r} has no {split!r} split in {corpus_dir / MANIFEST_NAME}")
    parts = [open_part(corpus_dir / f, manifest.token_dtype) for f in info.files]
    split_obj = DomainSplit(domain=domain, split=split, parts=parts)
    n_docs = split_obj.num_documents
    n_tok = int(sum(int(p.offsets[-1] - p.offsets[0]) for p in parts))
    if n_docs != info.documents or n_tok != info.tokens:
        raise MixerError(
            f"{corpus_dir / domain / split}: holds {n_docs} documents / {n_tok} tokens but corpus.json says "
            f"{info.documents} / {info.tokens} (manifest mismatch); re-run `mixer prepare`"
        )
    return split_obj


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
