"""Per-file checksums of a corpus: computed once by the writer, verified by every reader.

`corpus.json` records, for every Arrow part and for `tokenizer.json`, the file's size, its
xxh3-64 (fast: tens of GB/s, what readers check) and its sha256 (for the record, and for
`mixer verify`). A reader verifies a file the first time this process opens it, before a byte
of it is parsed, so a damaged file is one line naming it instead of wrong tokens or a crash
in a kernel. The verdict is remembered per process for the file's (device, inode, size,
mtime): a plan that opens a part twice, or a DataLoader worker forked after the check, pays
once.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import xxhash

from mixer.core.errors import MixerError

_BLOCK = 1 << 22  # bytes per read when hashing with both algorithms


@dataclass(frozen=True, slots=True)
class FileChecksum:
    """What a file's bytes must be: size, xxh3-64 and sha256 (hex)."""

    bytes: int
    xxh3_64: str
    sha256: str


def file_checksum(path: str | Path) -> FileChecksum:
    """Size, xxh3-64 and sha256 of a file, in one pass (what the writer records)."""
    xx, sha, n = xxhash.xxh3_64(), hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            xx.update(block)
            sha.update(block)
            n += len(block)
    return FileChecksum(bytes=n, xxh3_64=xx.hexdigest(), sha256=sha.hexdigest())


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _xxh3(data) -> str:
    """xxh3-64 of a buffer (the one place readers hash, so a test can count the calls)."""
    return xxhash.xxh3_64_hexdigest(data)


def _xxh3_of_file(path: str | Path, size: int) -> str:
    """xxh3-64 of a file through a read-only memory map (no copy; pages stay cached for the
    reader that maps the same file next)."""
    if size == 0:
        return _xxh3(b"")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return _xxh3(m)


_VERIFIED: set[tuple] = set()
_LOCK = threading.Lock()


def _memory_key(st: os.stat_result, expected: FileChecksum) -> tuple:
    """What the per-process memory of verified files holds for one: (device, inode) name the file
    whatever the path to it (no realpath: 0.1 ms a part), size and mtime its version."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, expected.xxh3_64


def verify_file(path: str | Path, expected: FileChecksum, record: str, fix: str, *, sha256: bool = False,
                data=None, stat: os.stat_result | None = None) -> None:
    """Raise `MixerError` naming `path` unless its size and xxh3-64 (and sha256 with
    `sha256=True`) are those `record` (e.g. "corpus.json") holds; `fix` says what to do.
    `data`: the file's bytes already mapped by the caller (a buffer), hashed in place so its
    pages are faulted in once, for the hash and the reader together; `stat`: the file's stat
    when the caller has it (from the descriptor it read `data` through)."""
    try:  # (`path` as given: messages only, and a Path per part cost 5 us at 10,000 parts)
        st = os.stat(path) if stat is None else stat
    except FileNotFoundError:
        raise MixerError(f"{path}: file listed in {record} is missing; {fix}") from None
    except OSError as exc:
        raise MixerError(f"{path}: cannot read ({exc.strerror}); {fix}") from None
    key = _memory_key(st, expected)
    if not sha256:
        with _LOCK:
            if key in _VERIFIED:
                return
    if st.st_size != expected.bytes:
        raise MixerError(f"{path}: {st.st_size} bytes but {record} records {expected.bytes} (truncated or "
                         f"replaced); {fix}")
    try:
        got = _xxh3_of_file(path, st.st_size) if data is None or len(data) != st.st_size \
            else _xxh3(data)
        if got != expected.xxh3_64:
            raise MixerError(f"{path}: checksum mismatch (xxh3-64 {got}, {record} records {expected.xxh3_64}): "
                             f"the file is damaged; {fix}")
        if sha256 and file_checksum(path).sha256 != expected.sha256:
            raise MixerError(f"{path}: sha256 mismatch with {record}: the file is damaged; {fix}")
    except OSError as exc:
        raise MixerError(f"{path}: cannot read ({exc}); {fix}") from None
    with _LOCK:
        _VERIFIED.add(key)


def verify_read(files: list[tuple[str, FileChecksum, object, os.stat_result]]) -> list[bool]:
    """Whether each (path, expected, data, stat) passes `verify_file(path, expected, ...,
    data=data, stat=stat)`, with the per-process memory of verified files taken and updated once
    for all of them (10,000 parts: a lock and a tuple per file cost more than their hash). Nothing
    is raised: a file that fails is for `verify_file` to name, in its turn."""
    keys = [_memory_key(st, expected) for _, expected, _, st in files]
    with _LOCK:
        passed = [key in _VERIFIED for key in keys]
    for i, (_, expected, data, st) in enumerate(files):
        if not passed[i]:
            passed[i] = st.st_size == expected.bytes == len(data) and _xxh3(data) == expected.xxh3_64
    with _LOCK:
        _VERIFIED.update(key for key, ok in zip(keys, passed) if ok)
    return passed
