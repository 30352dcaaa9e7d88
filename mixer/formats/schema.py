"""Shape checks for mixer's JSON files, and the self-checksum that seals them.

A damaged `corpus.json` or `index.json` must be named as damaged, never surface as a
`KeyError` deep in a reader or as a checksum failure blamed on an intact data file. Two tools:

- `check(obj, spec)`: the object has the keys and types of `spec` (a small literal language:
  a Python type, a tuple of allowed types, ``{"key": spec}`` for an object whose listed keys are
  required (keys ending in ``?`` optional; others allowed), ``[spec]`` for a list of items,
  ``{str: spec}`` for a mapping of names to items); returns the first problem as text.
- `seal(obj)` / `seal_ok(obj)`: an xxh3-64 of the object's canonical JSON (sorted keys, no
  whitespace) stored under `SEAL_KEY`, so any single changed byte that still parses (a digit, a
  hex character of a checksum, a key name) is caught, while whitespace changes are harmless.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from mixer.core.atomic import write_bytes_atomic
from mixer.core.jsonio import canonical, dumps_sorted, floats_spelled_alike, orjson_sorted

SEAL_KEY = "checksum"  # the field that holds the object's own xxh3-64

Spec = Any


def seal(obj: dict[str, Any], *, floats_alike: bool = False) -> dict[str, Any]:
    """`obj` with its self-checksum (computed without the checksum field) added."""
    body = {k: v for k, v in obj.items() if k != SEAL_KEY}
    return {**body, SEAL_KEY: xxhash.xxh3_64_hexdigest(canonical(body, floats_alike=floats_alike))}


def write_sealed(path: str | Path, obj: dict[str, Any]) -> None:
    """`write_json_atomic(path, seal(obj))`, the same bytes, with the floats' spelling checked
    once for the seal and the file instead of twice (an `index.json` of 10,000 domains: 17 ms
    each)."""
    alike = floats_spelled_alike(obj)
    write_bytes_atomic(path, (dumps_sorted(seal(obj, floats_alike=alike), floats_alike=alike) + "\n").encode("utf-8"))


def seal_ok(obj: dict[str, Any]) -> bool:
    """Whether the object's stored self-checksum matches its content."""
    stored = obj.get(SEAL_KEY)
    return isinstance(stored, str) and seal(obj)[SEAL_KEY] == stored


def canonical_and_seal_ok(obj: dict[str, Any], *, plain_floats: bool = False) -> tuple[bytes, bool]:
    """`(canonical(obj), seal_ok(obj))` with each top-level value encoded once: the two cover the
    same values but for the seal field, so a corpus.json of 10,000 domains (8 MB) is encoded
    once instead of twice. The same bytes and verdict as the two calls, through orjson where that
    gives the same bytes (`mixer.core.jsonio.orjson_sorted`). `plain_floats`: the caller knows
    orjson spells every float of the object as the json module does
    (`mixer.core.jsonio.read_json_document`), so that is not checked again."""
    if (whole := orjson_sorted(obj, indent=False, floats_alike=plain_floats)) is not None:
        stored = obj.get(SEAL_KEY)
        if not isinstance(stored, str):
            return whole, False
        body = orjson_sorted({k: v for k, v in obj.items() if k != SEAL_KEY}, indent=False, floats_alike=True)
        if body is not None:
            return whole, xxhash.xxh3_64_hexdigest(body) == stored
    if not all(type(k) is str for k in obj):  # (never so in parsed JSON)
        return canonical(obj), seal_ok(obj)
    items = {k: json.dumps(k, ensure_ascii=True) + ":" + canonical(v).decode("ascii") for k, v in obj.items()}
    keys = sorted(items)
    whole = ("{" + ",".join(items[k] for k in keys) + "}").encode("ascii")
    stored = obj.get(SEAL_KEY)
    if not isinstance(stored, str):
        return whole, False
    body = "{" + ",".join(items[k] for k in keys if k != SEAL_KEY) + "}"
    return whole, xxhash.xxh3_64_hexdigest(body.encode("ascii")) == stored


def _type_name(spec: Spec) -> str:
    if isinstance(spec, tuple):
        return " or ".join(_type_name(s) for s in spec)
    if spec is type(None):
        return "null"
    return getattr(spec, "__name__", str(spec))


def check(value: Any, spec: Spec, where: str = "") -> str | None:
    """The first place where `value` does not match `spec`, as ``"field: problem"``, or None.

    The path to the problem is spelled only once one is found: a corpus of 10,000 domains is
    200,000 checks, and formatting each one's path took longer than the checks."""
    if _passes(spec)(value):  # the usual verdict, from a predicate built once per spec
        return None
    found = _find(value, spec)
    if found is None:
        return None
    steps, problem = found
    for step in reversed(steps):
        where = f"{where}[{step}]" if isinstance(step, int) else (f"{where}.{step}" if where else step)
    if isinstance(problem, tuple):  # a required key is missing: the path names it
        return f"{where + '.' if where else ''}{problem[1]}: missing"
    return f"{where or '(top level)'}: {problem}"


_COMPILED: dict[int, tuple[Spec, Callable[[Any], bool]]] = {}


def _passes(spec: Spec) -> Callable[[Any], bool]:
    """A predicate true exactly when `_find(value, spec)` finds nothing, built once per spec:
    closures instead of interpreting the spec at each of a corpus's 200,000 values. A value it
    refuses goes through `_find`, which names the problem."""
    hit = _COMPILED.get(id(spec))
    if hit is None or hit[0] is not spec:
        hit = _COMPILED[id(spec)] = (spec, _compile(spec))
    return hit[1]


def _compile(spec: Spec) -> Callable[[Any], bool]:
    if isinstance(spec, dict):
        if len(spec) == 1 and next(iter(spec)) is str:  # a mapping name -> item
            item = _compile(spec[str])
            return lambda v: isinstance(v, dict) and all(map(item, v.values()))
        fields = [(key.removesuffix("?"), key.endswith("?"), _compile(sub))
                  for key, sub in spec.items()]

        def fields_ok(v: Any) -> bool:
            if not isinstance(v, dict):
                return False
            for name, optional, ok in fields:
                if name in v:
                    if not ok(v[name]):
                        return False
                elif not optional:
                    return False
            return True
        return fields_ok
    if isinstance(spec, list):
        item = _compile(spec[0])
        return lambda v: isinstance(v, list) and all(map(item, v))
    allowed = spec if isinstance(spec, tuple) else (spec,)
    # exact types that pass at once (an int where a float is allowed too); others: `_find`'s rules
    exact = frozenset(allowed) | ({int} if float in allowed else set())
    return lambda v: type(v) in exact or _find(v, spec) is None


def _leaf_types(spec: dict) -> tuple[tuple[str, tuple], ...] | None:
    """For an object spec whose fields are all required plain types (a corpus's 20,000 file
    checksums, a mapping's items): (field, exact types that pass) per field; else None."""
    out = []
    for key, sub in spec.items():
        allowed = sub if isinstance(sub, tuple) else (sub,)
        if key is str or key.endswith("?") or not all(isinstance(t, type) for t in allowed):
            return None
        out.append((key, allowed))
    return tuple(out)


def _leaves_ok(value: dict, leaves: tuple[tuple[str, tuple], ...]) -> bool:
    """Every field present with exactly an allowed type (what `_find` would accept too)."""
    for name, allowed in leaves:
        if name not in value or type(value[name]) not in allowed:
            return False
    return True


def _find(value: Any, spec: Spec) -> tuple[list, Any] | None:
    """None, or (the steps to the problem, innermost first: keys and list indices; the problem:
    a text, or ("missing", key))."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [], "expected an object"
        if len(spec) == 1 and next(iter(spec)) is str:  # a mapping name -> item
            item = spec[str]
            leaves = _leaf_types(item) if isinstance(item, dict) else None
            for k, v in value.items():
                if leaves is not None and type(v) is dict and _leaves_ok(v, leaves):
                    continue  # the common case, without a call per field
                found = _find(v, item)
                if found is not None:
                    found[0].append(k)
                    return found
            return None
        for key, sub in spec.items():
            optional = key.endswith("?")
            name = key[:-1] if optional else key
            if name not in value:
                if optional:
                    continue
                return [], ("missing", name)
            found = _find(value[name], sub)
            if found is not None:
                found[0].append(name)
                return found
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [], "expected a list"
        for i, v in enumerate(value):
            found = _find(v, spec[0])
            if found is not None:
                found[0].append(i)
                return found
        return None
    allowed = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool) and bool not in allowed:  # JSON true is not a count
        return [], f"expected {_type_name(spec)}, found a boolean"
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return None
    if not isinstance(value, allowed):
        return [], f"expected {_type_name(spec)}, found {type(value).__name__}"
    return None
