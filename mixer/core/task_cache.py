"""Finished tasks of an interrupted command, kept so that running it again redoes only the rest.

    cache = TaskCache.open(out)            # .OUT.work/ beside the output (caller holds its lock)
    key = task_key({"task": ..., "config": ...})
    data = cache.get(key)                  # None: not finished (or damaged: then redone)
    cache.put(key, pack({"tokens": b"..."}, meta={...}))
    cache.remove()                         # after the output was committed

An entry is one file `<key>.task`, written under a temporary name and renamed, so a task killed
while writing leaves no entry that looks finished; its payload carries an xxh64 that `get` checks,
so a damaged entry is redone, never trusted. The key is a sha256 of everything that decides the
task's result (its inputs: paths, sizes, modification times; the command's settings; a version),
so a changed input or option misses the cache instead of reusing a stale result. The folder is
named `.OUT.work`, not `.OUT.tmp-*`, because the output lock removes `.tmp-*` siblings of dead
writers, and these must outlive one. The command removes it once the output is committed.

`pack` / `unpack` hold several named byte strings and a small JSON record in one entry (or one
Ray task result): a 4-byte header length, the JSON header, the strings back to back.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any, Mapping

import xxhash

from mixer.core.atomic import write_bytes_atomic

CACHE_SUFFIX = ".task"


def task_key(obj: Any) -> str:
    """sha256 of the canonical JSON of everything that decides a task's result."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def pack(blobs: Mapping[str, bytes], meta: Mapping[str, Any] | None = None) -> bytes:
    """Named byte strings + a JSON record -> one byte string, checksummed."""
    names = list(blobs)
    header = json.dumps({"meta": dict(meta or {}), "names": names, "sizes": [len(blobs[n]) for n in names],
                         "xxh64": [xxhash.xxh64_hexdigest(blobs[n]) for n in names]},
                        sort_keys=True).encode("utf-8")
    return b"".join([struct.pack("<I", len(header)), header, *(bytes(blobs[n]) for n in names)])


def unpack(data: bytes) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Inverse of `pack`; raises ValueError if the bytes are not a whole, undamaged pack."""
    view = memoryview(data)
    if len(view) < 4:
        raise ValueError("truncated task result")
    (n,) = struct.unpack("<I", view[:4])
    try:
        header = json.loads(bytes(view[4 : 4 + n]))
        names, sizes, sums = header["names"], header["sizes"], header["xxh64"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"damaged task result header ({exc})") from None
    pos, blobs = 4 + n, {}
    for name, size, digest in zip(names, sizes, sums):
        blob = bytes(view[pos : pos + size])
        if len(blob) != size or xxhash.xxh64_hexdigest(blob) != digest:
            raise ValueError(f"damaged task result: {name}")
        blobs[name] = blob
        pos += size
    if pos != len(view):
        raise ValueError("task result has trailing bytes")
    return blobs, header["meta"]


def write_entry(folder: str | os.PathLike, key: str, data: bytes) -> Path:
    """Write one finished entry atomically (also callable on a worker that sees `folder`)."""
    return write_bytes_atomic(Path(folder) / f"{key}{CACHE_SUFFIX}", data, fsync=True)


class TaskCache:
    """The per-task result cache of one output (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def open(cls, final: str | os.PathLike) -> "TaskCache":
        """The cache folder of output `final`, created if missing, with the temporary files of a
        killed writer removed (the caller holds the output's lock, so no live writer has any)."""
        final = Path(final)
        folder = final.parent / f".{final.name}.work"
        folder.mkdir(parents=True, exist_ok=True)
        for p in folder.iterdir():
            if p.name.startswith(".") and ".tmp-" in p.name:
                p.unlink(missing_ok=True)
        return cls(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{CACHE_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """The finished entry, or None if absent or damaged (a damaged one is deleted)."""
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        try:
            unpack(data)
        except ValueError:
            self.path(key).unlink(missing_ok=True)
            return None
        return data

    def put(self, key: str, data: bytes) -> Path:
        return write_entry(self.folder, key, data)

    def keys(self) -> set[str]:
        return {p.name[: -len(CACHE_SUFFIX)] for p in self.folder.glob(f"*{CACHE_SUFFIX}")}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def remove_if_empty(self) -> None:
        """After a failure: keep finished tasks for the next run, but no empty folder."""
        if not self.keys():
            self.remove()
