"""One writer per output: an exclusive lock beside every folder mixer writes.

`output_lock(out)` holds an advisory `flock` on `.NAME.lock` in the output's parent folder for
as long as the output is being written. A second writer (another process, or another thread of
this one) fails at once with a `MixerError` naming the holder (pid, host, start time) instead
of silently replacing the first writer's output. The kernel drops a `flock` when its holder
dies, even by `kill -9`, so a dead writer never blocks the next run.

Only a lock holder creates `.NAME.tmp-*` / `.NAME.old-*` siblings (`mixer.core.atomic`), so
whoever acquires the lock knows any such sibling belongs to a writer that died: it removes
them before writing (a killed build leaves up to a whole output's worth of bytes behind),
except an `.old-*` whose writer died between moving it aside and renaming the new output in:
that one is put back as NAME, so a crash never loses both outputs.

Nested use for the same output in one thread is re-entrant (the CLI locks before planning;
the library function it calls locks again). The lock file is removed on release.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from mixer.core.errors import MixerError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; outputs are then unlocked
    fcntl = None

_HELD: dict[str, tuple[int, int, int]] = {}  # lock path -> (fd, owning thread id, depth)
_GUARD = threading.Lock()


def lock_path(final: str | os.PathLike) -> Path:
    final = Path(final)
    return final.parent / f".{final.name}.lock"


def stale_siblings(final: str | os.PathLike) -> list[Path]:
    """Temporary siblings a writer of `final` leaves if killed: `.NAME.tmp-*` and `.NAME.old-*`."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    return sorted(p for p in final.parent.iterdir()
                  if p.name.startswith((f".{final.name}.tmp-", f".{final.name}.old-")))


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}, since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder not yet recorded"


def _acquire(path: Path, final: Path) -> int:
    """Open and flock `path` without waiting; retry if a releasing holder unlinked it meanwhile."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MixerError(f"{final}: another mixer process is writing this output ({_holder(path)}); wait for it "
                             "to finish or choose another --out") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # we locked a file its holder had just unlinked: lock the new one instead


@contextlib.contextmanager
def output_lock(final: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive write lock of output `final` (creating its parent folder), after
    removing temporary siblings left by dead writers."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(final)
    key = str(path.resolve())
    me = threading.get_ident()
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            if held[1] != me:
                raise MixerError(f"{final}: another thread of this process (pid {os.getpid()}) is writing this "
                                 "output; choose another --out")
            _HELD[key] = (held[0], me, held[2] + 1)
    if held is not None:
        try:
            yield
        finally:
            with _GUARD:
                fd, owner, depth = _HELD[key]
                _HELD[key] = (fd, owner, depth - 1)
        return
    if fcntl is None:  # pragma: no cover
        yield
        return
    with _GUARD:
        fd = _acquire(path, final)
        _HELD[key] = (fd, me, 1)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        for stale in stale_siblings(final):
            if stale.name.startswith(f".{final.name}.old-") and not final.exists():
                os.replace(stale, final)  # a writer died between its two renames: the previous output returns
                continue
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        yield
    finally:
        with _GUARD:
            del _HELD[key]
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(fd)  # closing the last descriptor releases the flock
