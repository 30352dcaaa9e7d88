"""Shards written to object storage (`build-shards --out s3://bucket/shards`, any fsspec URL).

Object stores have no rename, so the local promise "the output appears whole or not at all"
is kept by order instead: the shards are built into a local temporary folder exactly as a local
build (the same code, the same bytes), then every shard and sidecar is uploaded, and
`index.json` last. A reader (`MixtureStream`) starts from `index.json`, so until the last PUT
the URL reads as "no index.json: its build has not finished", never as a short stream. A build
killed part-way leaves shard objects without an index; the rerun (after the lock below is
cleared, see there) uploads them again and publishes the index.

One writer per URL: a lock object `URL/.mixer.lock` (holder: host, pid, start time) is created
with a conditional PUT (`If-None-Match: *`, fsspec's `mode="create"`), which the store itself
makes exclusive: a second writer fails at once naming the holder. Where a backend cannot create
conditionally, the fallback is check-then-put, which two writers starting in the same instant
can both pass. A lock object is not released by a killed writer (there is no `flock` on a
bucket): a rerun on the same host takes over a lock whose process is gone; from another host
the message says to delete `URL/.mixer.lock` once that run is known to be dead.

`index.json` of a URL output records no `corpus_path`: a local corpus has no path relative to a
bucket, so readers are given the corpus (`--corpus`). Every shard object is byte-identical to
the local build's file.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mixer.core.errors import MixerError
from mixer.core.urls import filesystem, join

INDEX_NAME = "index.json"
LOCK_NAME = ".mixer.lock"


@contextlib.contextmanager
def remote_lock(fs: Any, root: str, url: str) -> Iterator[None]:
    """Hold `url/.mixer.lock` while writing `url`; a held lock is one `MixerError` naming its holder."""
    path = join(root, LOCK_NAME)
    holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
    if not _create(fs, path, holder, url):
        held = _holder(fs, path)
        if not (held and held.get("host") == socket.gethostname() and not _alive(held.get("pid"))) or \
                not _take_over(fs, path, holder, url):
            who = f"pid {held['pid']} on {held['host']} since {held['since']}" if held else "holder unknown"
            raise MixerError(f"{url}: another build is writing it ({who}); wait for it, or if that run is dead "
                             f"delete {join(url, LOCK_NAME)} and run again")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
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
    except OSError as exc:
        if "PreconditionFailed" in str(exc) or "412" in str(exc):
            return False
        raise MixerError(f"{url}: cannot write the lock object ({exc}); check the URL and credentials") from None
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


def _holder(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        h = json.loads(fs.cat_file(path))
        return h if {"pid", "host", "since"} <= set(h) else None
    except Exception:  # noqa: BLE001 - the holder is only named in a message; any failure says "unknown"
        return None


def build_to_url(url: str, write_local: Callable[[Path], Any], *, overwrite: bool,
                 storage_options: dict[str, Any] | None = None) -> Any:
    """Run `write_local(folder)` (a local build into a fresh temporary folder) and publish that
    folder at `url`: shards first, `index.json` last, under the URL's lock. Returns what
    `write_local` returned."""
    fs, root = filesystem(url, storage_options)
    index = join(root, INDEX_NAME)
    if fs.exists(index) and not overwrite:  # fail before any work
        raise MixerError(f"{url}: output already exists (it has an index.json); choose another URL or pass "
                         "--overwrite")
    with remote_lock(fs, root, url), tempfile.TemporaryDirectory(prefix="mixer-upload-") as tmp:
        folder = Path(tmp) / "shards"
        result = write_local(folder)
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
        if INDEX_NAME not in names:
            raise MixerError(f"{folder}: the local build wrote no {INDEX_NAME}")  # a bug, said plainly
        try:
            if fs.exists(index):  # --overwrite: the old output stops reading as complete first
                fs.rm_file(index)
                for old in fs.find(root):
                    if not old.rstrip("/").endswith(LOCK_NAME):
                        fs.rm_file(old)
            for name in [n for n in names if n != INDEX_NAME] + [INDEX_NAME]:
                fs.pipe_file(join(root, name), (folder / name).read_bytes())
        except OSError as exc:
            raise MixerError(f"{url}: upload failed ({exc}); nothing reads as complete (no {INDEX_NAME}); "
                             "run again") from None
    return result
