"""The model layouts of corpus parts (`mixer.formats.arrow.ipc`), kept between processes.

A layout is learned from the first part of a dtype that pyarrow has read and validated in full;
every later part whose footer and batch metadata match it byte for byte (but for the numbers
a part's size sets) is read straight from its bytes. Learning one takes pyarrow, and importing
pyarrow is about 30 ms of every command that opens a corpus (a tenth of `build-shards` on 12M
tokens of real text). So the learned layout is written to `$MIXER_CACHE/arrow-layouts/`, and a
later process reads its parts without importing pyarrow at all; a part the layout does not fit
still goes through pyarrow, as always.

The file is named by the dtype and a digest of the reader's source (`ipc.py`): a reader
changed in any way learns its layouts again. It carries its own xxh3-64 seal; a file that is
missing, unreadable, damaged or of another shape is ignored (learned again and rewritten). The
cache holds bytes taken from a file pyarrow accepted, never code; nothing is trusted that the
reader's own checks (`ipc._read`, `ipc.read_parts`) do not check again in every part.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import xxhash

from mixer.core.atomic import write_json_atomic
from mixer.core.errors import MixerError
from mixer.core.jsonio import canonical, read_json_object
from mixer.core.urls import cache_root

FOLDER = "arrow-layouts"


def _seal(body: dict[str, Any]) -> str:
    """xxh3-64 of the body's canonical JSON, the value `mixer.formats.schema.seal` stores (this
    folder cannot import `formats.schema`: `formats` imports this folder, and the layer rules
    refuse a cycle between folders; both seal `mixer.core.jsonio.canonical`)."""
    return xxhash.xxh3_64_hexdigest(canonical(body))


def layout_path(dtype_name: str, source_digest: str) -> Path | None:
    """Where the layout of parts of `dtype_name` learned by the reader of `source_digest` is kept;
    None without a cache folder (no `$MIXER_CACHE` and no home directory to put it in)."""
    try:
        return cache_root() / FOLDER / f"{dtype_name}-{source_digest}.json"
    except (RuntimeError, KeyError):  # (Path.home() of a user the system does not know)
        return None


def load_layout(dtype_name: str, source_digest: str) -> dict[str, Any] | None:
    """The fields stored for this dtype and reader (ints, and bytes as hex strings), or None when
    there is no intact file of that name."""
    path = layout_path(dtype_name, source_digest)
    if path is None:
        return None
    try:  # (missing, unreadable, a folder, not JSON: a MixerError, and the layout is learned again)
        obj = read_json_object(path, "cached Arrow layout", "it is learned again")
    except MixerError:
        return None
    body = {k: v for k, v in obj.items() if k != "checksum"}
    if obj.get("checksum") != _seal(body) or obj.get("dtype") != dtype_name or obj.get("source") != source_digest:
        return None
    fields = obj.get("layout")
    return fields if isinstance(fields, dict) else None


def store_layout(dtype_name: str, source_digest: str, fields: dict[str, Any]) -> None:
    """Keep `fields` for the next process (written whole or not at all); a cache that cannot be
    written is no error: the next process learns the layout again."""
    body = {"dtype": dtype_name, "source": source_digest, "layout": fields}
    path = layout_path(dtype_name, source_digest)
    try:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, {**body, "checksum": _seal(body)})
    except OSError:
        pass
