"""Atomic outputs: every folder or file mixer writes appears complete or not at all.

A job killed half-way leaves only a hidden `.NAME.tmp-*` sibling that nothing reads as a
result; the final name appears by one `os.replace` at the very end. Writing a folder holds
its exclusive lock (`mixer.core.lock.output_lock`): a second writer fails at once, naming the
first, and the next writer to get the lock removes the temporary siblings of a killed one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mixer.core.errors import MixerError
from mixer.core.jsonio import dumps_sorted
from mixer.core.lock import output_lock


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; rename it to `final` only on success. The
    output's lock is held throughout (re-entrant: a caller may already hold it)."""
    final = Path(final)
    with output_lock(final):
        if final.exists() and not overwrite:  # checked under the lock: no two writers both pass it
            raise MixerError(f"{final}: output already exists; choose another path or pass --overwrite")
        tmp = _fresh_dir(final)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():
            # Move the old output aside first so a crash between the two steps never loses both.
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        else:
            os.replace(tmp, final)


def _fresh_dir(final: Path) -> Path:
    """A new empty `.NAME.tmp-*` sibling made by a plain mkdir, so the published folder has the
    mode the user's umask gives (`tempfile.mkdtemp` makes 0700: unreadable by another user or
    container sharing the output)."""
    for _ in range(100):
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue
    raise MixerError(f"{final.parent}: cannot create a temporary folder beside {final.name}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = False, make_parent: bool = False) -> Path:
    """Write a file via a temp sibling (`.NAME.tmp-PID`) + rename: readers see the old file or the
    whole new one, never a part. `fsync`: flush to disk before the rename (a cache entry whose
    presence means "finished" must survive a crash). `make_parent`: create the folder first."""
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # (a full disk, a folder where the file goes, an interrupt: no temporary left)
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON with sorted keys (byte-stable for equal content) via a temp file + rename."""
    write_bytes_atomic(path, (dumps_sorted(obj) + "\n").encode("utf-8"))
