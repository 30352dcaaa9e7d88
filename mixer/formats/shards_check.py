"""The shape `index.json` must have, checked before any reader looks inside.

`mixer.formats.shards.read_index` calls `index_problem` after the index's seal (its own
xxh3-64, `mixer.formats.schema.seal`) matched, so a damaged index is named as damaged and never
shows up as a `KeyError` in a summary table or a checksum failure blamed on an intact shard.
Keys a newer writer adds are allowed (the seal still covers them); keys listed here are
required with these types.
"""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from mixer.formats.schema import SEAL_KEY, check

_FILE = {"file": str, "xxh64": str, "sha256": str}
INDEX_SPEC = {
    "format_version": int, "objective": str, "seq_len": int, "dtype": str, "eos_id": int,
    "special_tokens": (dict, type(None)), "interleave": str, "weights": {str: float}, "domain_order": [str],
    "seed": int, "tokens_requested": int, "budget_tokens": int, "num_sequences": int,
    "sequences_per_shard": int, "corpus_manifest_sha256": str,
    "domains": {str: {"index": int, "weight": float, "target_tokens": int, "realised_tokens": int,
                      "documents_used": int, "documents_available": int, "tokens_available": int, "epochs": int}},
    "shards": [{**_FILE, "sequences": int, "first_sequence": int, "domains": _FILE}],
    SEAL_KEY: str,
}


def _plain_name(name: str) -> bool:
    p = PurePosixPath(name)
    return len(p.parts) == 1 and name not in (".", "..") and "\\" not in name


def index_problem(ix: dict[str, Any]) -> str | None:
    """The first way `ix` is not a well-formed shard index, or None."""
    problem = check(ix, INDEX_SPEC)
    if problem:
        return problem
    if not isinstance(ix.get("corpus_path", ""), str):
        return "corpus_path is not a string"
    if ix["objective"] not in ("causal", "mlm"):
        return f"objective {ix['objective']!r} is not causal or mlm"
    if ix["dtype"] not in ("uint16", "uint32"):
        return f"dtype {ix['dtype']!r} is not uint16 or uint32"
    if ix["seq_len"] < 1 or ix["num_sequences"] < 0 or ix["num_sequences"] * ix["seq_len"] != ix["budget_tokens"]:
        return "seq_len, num_sequences and budget_tokens disagree"
    if ix["objective"] == "mlm":
        special = ix["special_tokens"]
        if special is None or check(special, {"cls": int, "sep": int, "pad": int}):
            return "special_tokens must hold integer cls, sep and pad for an mlm index"
    if ix["domain_order"] != sorted(ix["domains"]) or set(ix["weights"]) != set(ix["domains"]):
        return "domain_order, domains and weights do not name the same sorted domains"
    first = 0
    for k, e in enumerate(ix["shards"]):
        if not (_plain_name(e["file"]) and _plain_name(e["domains"]["file"])):
            return f"shards[{k}]: file names must be plain names inside the folder"
        if e["sequences"] < 1 or e["first_sequence"] != first:
            return f"shards[{k}]: sequences / first_sequence do not follow the previous shard"
        first += e["sequences"]
    if first != ix["num_sequences"]:
        return f"shards hold {first} sequences, num_sequences says {ix['num_sequences']}"
    return _stages_problem(ix)


_STAGE = {"first_sequence": int, "sequences": int, "until_tokens": int, "weights": {str: float},
          "target_tokens": {str: int}}


def _stages_problem(ix: dict[str, Any]) -> str | None:
    """The optional `stages` of a schedule's shards: contiguous, covering every sequence."""
    if "stages" not in ix:
        return None
    problem = check(ix["stages"], [_STAGE])
    if problem:
        return f"stages: {problem}"
    first = 0
    for k, st in enumerate(ix["stages"]):
        if st["first_sequence"] != first or st["sequences"] < 1 or set(st["weights"]) != set(ix["domains"]):
            return f"stages[{k}]: does not follow the previous stage or names other domains"
        first += st["sequences"]
    if first != ix["num_sequences"]:
        return f"stages cover {first} sequences, num_sequences says {ix['num_sequences']}"
    return None
