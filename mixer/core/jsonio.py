"""Reading mixer's JSON files (manifests, indexes, weights, runs, maps) with one-line errors."""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

import orjson

from mixer.core.errors import MixerError


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of two equal keys without a word (`{"a": 0.5, "a": 0.3}`
    would mean a=0.3): refuse them instead."""
    obj = dict(pairs)
    if len(obj) != len(pairs):  # (a loop per pair is a tenth of a second of a corpus.json of 10,000 domains)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _keys_unique(raw: bytes, obj: Any) -> bool:
    """Whether `raw`, the text `obj` was parsed from without `_unique_keys` (a third of the parse
    of a corpus.json of 10,000 domains), is certainly free of keys given twice: true when it is
    byte for byte what mixer writes for `obj` (sorted keys, indent 2, a newline), which names
    each key of an object once. A file written otherwise (by hand, by another tool, with a key
    twice) is False: the caller parses it again with the check."""
    try:
        ours = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    except (orjson.JSONEncodeError, TypeError):  # (an int beyond 64 bits: orjson refuses it)
        return False
    return len(raw) == len(ours) + 1 and raw.endswith(b"\n") and raw.startswith(ours)  # (no copy of 8 MB)


def read_json_object(path: str | Path, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in `path`; a missing, unreadable or non-object file, or one with a key
    given twice in one object, raises a MixerError naming the file, `what` it should be (e.g.
    "shard index") and the `fix`."""
    return _load(path, what, fix, None)


def read_json_document(path: str | Path, what: str, fix: str) -> tuple[dict[str, Any], bool]:
    """`read_json_object`'s object, and whether orjson spells each of its floats as the json
    module does (true of most: 0.05, 123.456; not of 1e-05, which orjson writes 0.00001, nor of
    NaN): then `mixer.formats.schema.canonical_and_seal_ok` may encode it with orjson unchecked."""
    odd: list[str] = []

    def a_float(text: str) -> float:
        value = float(text)
        if not floats_spelled_alike(value):  # (a number orjson spells otherwise: 1e-05, NaN)
            odd.append(text)
        return value
    return _load(path, what, fix, a_float), not odd


def _load(path: str | Path, what: str, fix: str, a_float: Callable[[str], float] | None) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
        obj = json.loads(text, parse_float=a_float, parse_constant=a_float)
        if not _keys_unique(raw, obj):  # then parsed again, each object's keys checked as it is built
            obj = json.loads(text, object_pairs_hook=_unique_keys, parse_float=a_float, parse_constant=a_float)
    except _DuplicateKey as exc:
        raise MixerError(f"{path}: key {exc.args[0]!r} is given twice in one object of the {what}; {fix}") from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MixerError(f"{path}: no {what} here; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MixerError(f"{path}: unreadable {what} ({exc}); {fix}") from None
    if not isinstance(obj, dict):
        raise MixerError(f"{path}: the {what} is not a JSON object; {fix}")
    return obj


class _Unusual(Exception):
    """A value `dumps_sorted` leaves to the json module (not a plain dict, list, str, number)."""


_LITERALS = {None: "null", True: "true", False: "false"}
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})
_CONTAINERS = frozenset({dict, list, tuple})
_FLAT: dict[str, Any] = {}  # the C encoder, by the indent of a container's items


def _not_json(o: Any) -> Any:
    raise _Unusual


def _flat(o: Any, inner: str) -> str:
    """A container of scalars through the json module's C encoder (what `json.dumps` without
    an indent runs): its items separated by `,` + `inner`; the brackets are re-spaced by the caller."""
    enc = _FLAT.get(inner)
    if enc is None:
        enc = _FLAT[inner] = c_make_encoder(None, _not_json, encode_basestring_ascii, None, ": ", "," + inner,
                                            True, False, True)  # sort_keys, not skipkeys, allow_nan
    return "".join(enc(o, 0))


def _encode(o: Any, nl: str) -> str:
    t = type(o)
    if t is dict or t is list or t is tuple:
        if not o:
            return "{}" if t is dict else "[]"
        inner = nl + "  "
        if c_make_encoder is not None and _SCALARS.issuperset(map(type, o.values() if t is dict else o)):
            body = _flat(o, inner)
            return body[0] + inner + body[1:-1] + nl + body[-1]
        if t is not dict:
            return "[" + inner + ("," + inner).join([_encode(v, inner) for v in o]) + nl + "]"
        if not _STR.issuperset(map(type, o)):
            raise _Unusual
        return "{" + inner + ("," + inner).join([encode_basestring_ascii(k) + ": " + _encode(v, inner)
                                                 for k, v in sorted(o.items())]) + nl + "}"
    if t is str:
        return encode_basestring_ascii(o)
    if t is int:
        return int.__repr__(o)
    if t is float:
        if not math.isfinite(o):  # NaN, Infinity: the json module's own spelling
            raise _Unusual
        return float.__repr__(o)
    if o is None or t is bool:
        return _LITERALS[o]
    raise _Unusual


def floats_spelled_alike(obj: Any) -> bool:
    """Whether orjson spells every float in `obj` as the json module does (most: 0.05, 123.456;
    not 1e-05, which orjson writes 0.00001, nor NaN): all floats compared in one call. `obj` is
    one orjson has encoded, so it holds no cycle."""
    t = type(obj)
    if t is not dict and t is not list and t is not tuple:
        return t is not float or floats_spelled_alike([obj])
    floats, stack = [], [obj]
    while stack:  # container after container; each one's item types taken in one call
        x = stack.pop()
        items = x.values() if type(x) is dict else x
        kinds = set(map(type, items))
        if float in kinds:
            floats += [v for v in items if type(v) is float]
        if not _CONTAINERS.isdisjoint(kinds):
            stack += [v for v in items if type(v) in _CONTAINERS]
    return not floats or orjson.dumps(floats) == ("[" + ",".join(map(float.__repr__, floats)) + "]").encode()


def canonical(obj: Any, *, floats_alike: bool = False) -> bytes:
    """The bytes a JSON object hashes to: sorted keys, no whitespace, exact float repr (the json
    module's spelling: through orjson when that gives the same bytes). `floats_alike`: the caller
    has checked `floats_spelled_alike(obj)`. Every seal in mixer is the xxh3-64 of these bytes
    (`mixer.formats.schema.seal`, the Arrow layout cache's)."""
    fast = orjson_sorted(obj, indent=False, floats_alike=floats_alike)
    if fast is not None:
        return fast
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def orjson_sorted(obj: Any, *, indent: bool, floats_alike: bool = False) -> bytes | None:
    """`json.dumps(obj, sort_keys=True, ...)` through orjson, 10-15x faster: `indent` for
    `indent=2`, else compact (`separators=(",", ":")`); or None where the two could differ.
    Once every float is spelled alike (`floats_alike`: the caller knows, as `read_json_document`
    does; else checked here), the two differ only in strings: orjson escapes less (DEL and
    non-ASCII characters pass as they are), so output that is ASCII without DEL and without a
    backslash had no character either would escape and is the json module's byte for byte.
    Anything else, or a value orjson refuses (an int beyond 64 bits, a numpy scalar, a cycle,
    a key that is not a string), is None."""
    try:
        out = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if indent else 0))
    except (orjson.JSONEncodeError, TypeError):
        return None
    if not out.isascii() or b"\\" in out or b"\x7f" in out or not (floats_alike or floats_spelled_alike(obj)):
        return None
    return out


def dumps_sorted(obj: Any, *, floats_alike: bool = False) -> str:
    """`json.dumps(obj, indent=2, sort_keys=True)`, byte for byte, several times faster: with an
    indent the json module encodes in Python, one generator per value (a tenth of a second of
    an `index.json` of 10,000 domains); here containers of scalars go through its C encoder.
    Anything but plain dicts with string keys, lists, tuples, strings, floats, ints, booleans
    and None (or a cycle) goes to the json module itself. Most objects go through orjson
    (`orjson_sorted`), the same bytes again, 15x faster than the json module's C encoder.
    `floats_alike`: the caller has checked `floats_spelled_alike(obj)`."""
    fast = orjson_sorted(obj, indent=True, floats_alike=floats_alike)
    if fast is not None:
        return fast.decode("ascii")
    try:
        return _encode(obj, "\n")
    except (_Unusual, RecursionError):
        pass
    return json.dumps(obj, indent=2, sort_keys=True)  # (outside the except: its errors stand alone)
