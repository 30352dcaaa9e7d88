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

An output on object storage (`s3://bucket/shards`) has no `flock`: `remote_lock` creates the
object `URL/.mixer.lock` (holder: host, pid, start time) with a conditional PUT (`If-None-Match:
*`, fsspec's `mode="create"`), which the store itself makes exclusive: a second writer fails at
once naming the holder. Where a backend cannot create conditionally, the fallback is
check-then-put, which two writers starting in the same instant can both pass. A killed writer
leaves its lock object behind: a rerun on the same host takes over a lock whose process is gone;
from another host the message names the holder and says to delete the object once that run is
known to be dead.
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
from typing import Any, Iterator

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


REMOTE_LOCK_NAME = ".mixer.lock"


@contextlib.contextmanager
def remote_lock(fs: Any, root: str, url: str) -> Iterator[None]:
    """Hold `url/.mixer.lock` while writing `url` (`fs`, `root`: its fsspec filesystem and path);
    a held lock is one `MixerError` naming its holder and how to clear it."""
    path = f"{root.rstrip('/')}/{REMOTE_LOCK_NAME}"
    holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
    if not _create(fs, path, holder, url):
        held = _remote_holder(fs, path)
        dead_here = bool(held) and held.get("host") == socket.gethostname() and not _alive(held.get("pid"))
        if not (dead_here and _take_over(fs, path, holder, url)):
            who = f"pid {held['pid']} on {held['host']} since {held['since']}" if held else "holder unknown"
            lock = f"{url.rstrip('/')}/{REMOTE_LOCK_NAME}"
            raise MixerError(f"{url}: another mixer process is writing it ({who}); wait for it, or if that run is "
                             f"dead delete {lock} (e.g. `aws s3 rm {lock}`) and run again")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # the store gone: the lock stays, and names this process
            fs.rm_file(path)


def _create(fs: Any, path: str, data: bytes, url: str) -> bool:
    """Create the lock object only if absent (conditional PUT); False if it exists."""
    try:
        try:
            fs.pipe_file(path, data, mode="create")
        except (TypeError, NotImplementedError):  # a backend without conditional create: check, then put
            if fs.exists(path):
                return False
            fs.pipe_file(path, data)
    except FileExistsError:
        return False
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
        if "PreconditionFailed" in str(exc) or "412" in str(exc):
            return False
        raise MixerError(f"{url}: cannot write its lock object ({type(exc).__name__}: {exc}); check the URL, "
                         "the storage endpoint and credentials") from None
    return True


def _take_over(fs: Any, path: str, data: bytes, url: str) -> bool:
    """The holder was a process of this host that is gone (killed): remove its lock, create ours.
    Two reruns racing here: the store lets one create win."""
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)
    return _create(fs, path, data, url)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # someone else's process, or an unreadable pid: assume it holds the lock
    return True


def _remote_holder(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        h = json.loads(fs.cat_file(path))
        return h if {"pid", "host", "since"} <= set(h) else None
    except Exception:  # noqa: BLE001 - the holder is only named in a message; any failure says "unknown"
        return None
