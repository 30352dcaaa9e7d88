"""Reading mixer's JSON files (manifests, indexes, weights, runs, maps) with one-line errors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mixer.core.errors import MixerError


def read_json_object(path: str | Path, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in `path`; a missing, unreadable or non-object file raises a MixerError
    naming the file, `what` it should be (e.g. "shard index") and the `fix`."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MixerError(f"{path}: no {what} here; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MixerError(f"{path}: unreadable {what} ({exc}); {fix}") from None
    if not isinstance(obj, dict):
        raise MixerError(f"{path}: the {what} is not a JSON object; {fix}")
    return obj
