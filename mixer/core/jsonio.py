"""Reading mixer's JSON files (manifests, indexes, weights, runs, maps) with one-line errors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mixer.core.errors import MixerError


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of two equal keys without a word (`{"a": 0.5, "a": 0.3}`
    would mean a=0.3): refuse them instead."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def read_json_object(path: str | Path, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in `path`; a missing, unreadable or non-object file, or one with a key
    given twice in one object, raises a MixerError naming the file, `what` it should be (e.g.
    "shard index") and the `fix`."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise MixerError(f"{path}: key {exc.args[0]!r} is given twice in one object of the {what}; {fix}") from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MixerError(f"{path}: no {what} here; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MixerError(f"{path}: unreadable {what} ({exc}); {fix}") from None
    if not isinstance(obj, dict):
        raise MixerError(f"{path}: the {what} is not a JSON object; {fix}")
    return obj
