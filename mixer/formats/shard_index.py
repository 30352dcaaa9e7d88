"""`index.json` as typed, frozen objects: `ShardIndex`, its `ShardEntry`s and `DomainRecord`s.

The index was the one format still read as a raw dict (56 `index[...]` reads in 7 files and a
hand-written schema beside it). Now `mixer.formats.shards.read_index` returns a `ShardIndex`,
checked once here (`ShardIndex.from_dict`: the shape, then the rules that tie fields together),
and `write_index` takes one (`to_dict`), so no reader downstream indexes a dict or re-checks a
field. `to_dict(from_dict(d)) == d` for every index this version writes, so the file's bytes are
unchanged. Keys a newer writer adds are kept in `extra` (the seal still covers them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from mixer.core.kinds import Objective
from mixer.formats.schema import SEAL_KEY, check

_FILE = {"file": str, "xxh64": str, "sha256": str}
INDEX_SPEC = {
    "format_version": int, "objective": str, "seq_len": int, "dtype": str, "eos_id": int,
    "special_tokens": (dict, type(None)), "interleave": str, "weights": {str: float}, "domain_order": [str],
    "seed": int, "tokens_requested": int, "budget_tokens": int, "num_sequences": int,
    "sequences_per_shard": int, "corpus_manifest_sha256": str, "domain_dtype?": str, "corpus_path?": str,
    "domains": {str: {"index": int, "weight": float, "target_tokens": int, "realised_tokens": int,
                      "documents_used": int, "documents_available": int, "tokens_available": int, "epochs": int,
                      "target_sequences?": int, "content_tokens?": int}},
    "shards": [{**_FILE, "sequences": int, "first_sequence": int, "domains": _FILE}],
}
_STAGE = {"first_sequence": int, "sequences": int, "until_tokens": int, "weights": {str: float},
          "target_tokens": {str: int}}
_KNOWN = {k.rstrip("?") for k in INDEX_SPEC} | {SEAL_KEY, "stages"}


class IndexProblem(ValueError):
    """The first way a dict is not a well-formed shard index (the reader names the file)."""


@dataclass(frozen=True)
class FileRef:
    """One compressed file of the folder and the checksums of its bytes."""

    file: str
    xxh64: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "xxh64": self.xxh64, "sha256": self.sha256}


@dataclass(frozen=True)
class ShardEntry:
    """A shard: its token file (`file`, checksums), its domain sidecar (`domains`), and which rows
    of the whole stream it holds (`first_sequence` .. `first_sequence + sequences`)."""

    file: str
    sequences: int
    xxh64: str
    sha256: str
    domains: FileRef
    first_sequence: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sequences": self.sequences, "xxh64": self.xxh64, "sha256": self.sha256,
                "domains": self.domains.to_dict(), "first_sequence": self.first_sequence}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardEntry:
        return cls(file=d["file"], sequences=int(d["sequences"]), xxh64=d["xxh64"], sha256=d["sha256"],
                   domains=FileRef(**{k: d["domains"][k] for k in ("file", "xxh64", "sha256")}),
                   first_sequence=int(d.get("first_sequence", 0)))

    def at(self, first_sequence: int) -> ShardEntry:
        """This entry placed at row `first_sequence` of the stream (known only once shards are ordered)."""
        return ShardEntry(file=self.file, sequences=self.sequences, xxh64=self.xxh64, sha256=self.sha256,
                          domains=self.domains, first_sequence=first_sequence)


@dataclass(frozen=True, slots=True)  # (slots: one per domain, 10,000 in a build)
class DomainRecord:
    """What the build took from one domain. Token counts include EOS separators for causal
    indexes; masked-LM ones also record `target_sequences` and `content_tokens`."""

    index: int
    weight: float
    target_tokens: int
    realised_tokens: int
    documents_used: int
    documents_available: int
    tokens_available: int
    epochs: int
    target_sequences: int | None = None
    content_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"index": self.index, "weight": self.weight, "target_tokens": self.target_tokens,
             "realised_tokens": self.realised_tokens, "documents_used": self.documents_used,
             "documents_available": self.documents_available, "tokens_available": self.tokens_available,
             "epochs": self.epochs}
        if self.target_sequences is not None:
            d["target_sequences"] = self.target_sequences
        if self.content_tokens is not None:
            d["content_tokens"] = self.content_tokens
        return d


@dataclass(frozen=True)
class StageRecord:
    """One stage of a schedule's shards (`mixer build-shards --schedule`): rows `first_sequence` ..
    `first_sequence + sequences` of the stream, trained up to `until_tokens`, with this stage's
    weights and its exact per-domain target (tokens with EOS, or sequences x seq_len for mlm)."""

    first_sequence: int
    sequences: int
    until_tokens: int
    weights: dict[str, float]
    target_tokens: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"first_sequence": self.first_sequence, "sequences": self.sequences, "until_tokens": self.until_tokens,
                "weights": dict(self.weights), "target_tokens": dict(self.target_tokens)}


@dataclass(frozen=True)
class SpecialTokens:
    """The masked-LM ids every reader needs: [CLS], [SEP] and [PAD]."""

    cls: int
    sep: int
    pad: int


@dataclass(frozen=True)
class ShardIndex:
    """The whole `index.json` of a shards folder (documented in `mixer.formats.shards`)."""

    format_version: int
    objective: Objective
    seq_len: int
    dtype: str
    domain_dtype: str
    eos_id: int
    special_tokens: SpecialTokens | None
    interleave: str
    weights: dict[str, float]
    domain_order: tuple[str, ...]
    seed: int
    tokens_requested: int
    budget_tokens: int
    num_sequences: int
    sequences_per_shard: int
    corpus_manifest_sha256: str
    domains: dict[str, DomainRecord]
    shards: tuple[ShardEntry, ...]
    corpus_path: str | None = None
    stages: tuple[StageRecord, ...] = ()  # a schedule's stages (two or more); () for one mixture
    checksum: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `write_index` seals and writes (without `checksum`)."""
        special = None if self.special_tokens is None else {
            "cls": self.special_tokens.cls, "sep": self.special_tokens.sep, "pad": self.special_tokens.pad}
        d = {"format_version": self.format_version, "objective": self.objective.value, "seq_len": self.seq_len,
             "dtype": self.dtype, "domain_dtype": self.domain_dtype, "eos_id": self.eos_id,
             "special_tokens": special, "interleave": self.interleave, "weights": dict(self.weights),
             "domain_order": list(self.domain_order), "seed": self.seed, "tokens_requested": self.tokens_requested,
             "budget_tokens": self.budget_tokens, "num_sequences": self.num_sequences,
             "sequences_per_shard": self.sequences_per_shard, "corpus_manifest_sha256": self.corpus_manifest_sha256,
             "domains": {name: rec.to_dict() for name, rec in self.domains.items()},
             "shards": [e.to_dict() for e in self.shards], **self.extra}
        if self.corpus_path is not None:
            d["corpus_path"] = self.corpus_path
        if self.stages:
            d["stages"] = [st.to_dict() for st in self.stages]
        return d

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> ShardIndex:
        """Check `obj`'s shape and the rules that tie its fields together, then type it; the
        first problem raises `IndexProblem` with the field it is in."""
        problem = check(obj, INDEX_SPEC)
        if problem:
            raise IndexProblem(problem)
        if obj["objective"] not in tuple(Objective):
            raise IndexProblem(f"objective {obj['objective']!r} is not causal or mlm")
        objective = Objective(obj["objective"])
        special = _special(obj, objective)
        _check_totals(obj)
        shards = tuple(ShardEntry.from_dict(e) for e in obj["shards"])
        _check_shards(shards, obj["num_sequences"])
        stages = _stages(obj)
        return cls(
            format_version=obj["format_version"], objective=objective, seq_len=obj["seq_len"], dtype=obj["dtype"],
            domain_dtype=obj.get("domain_dtype", ""), eos_id=obj["eos_id"], special_tokens=special,
            interleave=obj["interleave"], weights=dict(obj["weights"]), domain_order=tuple(obj["domain_order"]),
            seed=obj["seed"], tokens_requested=obj["tokens_requested"], budget_tokens=obj["budget_tokens"],
            num_sequences=obj["num_sequences"], sequences_per_shard=obj["sequences_per_shard"],
            corpus_manifest_sha256=obj["corpus_manifest_sha256"],
            domains={name: _record(rec) for name, rec in obj["domains"].items()},
            shards=shards, corpus_path=obj.get("corpus_path"), stages=stages, checksum=obj.get(SEAL_KEY),
            extra={k: v for k, v in obj.items() if k not in _KNOWN})

    @property
    def domain_count(self) -> int:
        return len(self.domain_order)

    def shard_named(self, name: str) -> ShardEntry | None:
        """The entry whose token file is `name`, or None."""
        return next((e for e in self.shards if e.file == name), None)


def _record(rec: dict[str, Any]) -> DomainRecord:
    return DomainRecord(**{k: rec[k] for k in DomainRecord.__dataclass_fields__ if k in rec})


def _special(obj: dict[str, Any], objective: Objective) -> SpecialTokens | None:
    special = obj["special_tokens"]
    if objective is Objective.MLM and (special is None or check(special, {"cls": int, "sep": int, "pad": int})):
        raise IndexProblem("special_tokens must hold integer cls, sep and pad for an mlm index")
    if special is None:
        return None
    problem = check(special, {"cls": int, "sep": int, "pad": int})
    if problem:
        raise IndexProblem(f"special_tokens.{problem}")
    return SpecialTokens(cls=special["cls"], sep=special["sep"], pad=special["pad"])


def _check_totals(obj: dict[str, Any]) -> None:
    if obj["dtype"] not in ("uint16", "uint32"):
        raise IndexProblem(f"dtype {obj['dtype']!r} is not uint16 or uint32")
    if obj["seq_len"] < 1 or obj["num_sequences"] < 0 or obj["num_sequences"] * obj["seq_len"] != obj["budget_tokens"]:
        raise IndexProblem("seq_len, num_sequences and budget_tokens disagree")
    if obj["domain_order"] != sorted(obj["domains"]) or set(obj["weights"]) != set(obj["domains"]):
        raise IndexProblem("domain_order, domains and weights do not name the same sorted domains")


def _stages(obj: dict[str, Any]) -> tuple[StageRecord, ...]:
    """The optional `stages` of a schedule's shards: contiguous, covering every sequence."""
    if "stages" not in obj:
        return ()
    problem = check(obj["stages"], [_STAGE])
    if problem:
        raise IndexProblem(f"stages: {problem}")
    first = 0
    for k, st in enumerate(obj["stages"]):
        if st["first_sequence"] != first or st["sequences"] < 1 or set(st["weights"]) != set(obj["domains"]):
            raise IndexProblem(f"stages[{k}]: does not follow the previous stage or names other domains")
        first += st["sequences"]
    if first != obj["num_sequences"]:
        raise IndexProblem(f"stages cover {first} sequences, num_sequences says {obj['num_sequences']}")
    return tuple(StageRecord(**{k: st[k] for k in _STAGE}) for st in obj["stages"])


def _plain_name(name: str) -> bool:
    p = PurePosixPath(name)
    return len(p.parts) == 1 and name not in (".", "..") and "\\" not in name


def _check_shards(shards: tuple[ShardEntry, ...], num_sequences: int) -> None:
    first = 0
    for k, e in enumerate(shards):
        if not (_plain_name(e.file) and _plain_name(e.domains.file)):
            raise IndexProblem(f"shards[{k}]: file names must be plain names inside the folder")
        if e.sequences < 1 or e.first_sequence != first:
            raise IndexProblem(f"shards[{k}]: sequences / first_sequence do not follow the previous shard")
        first += e.sequences
    if first != num_sequences:
        raise IndexProblem(f"shards hold {first} sequences, num_sequences says {num_sequences}")
