"""Paths a user gives may be URLs (`s3://bucket/shards`): recognised here, in one place, so
that no path is ever silently reinterpreted.

`pathlib.Path("s3://bucket/shards")` is `s3:/bucket/shards`, a *local* relative folder named
`s3:`; before this module `mixer build-shards --out s3://bucket/shards` wrote exactly that and
exited 0. Every place a path enters mixer (the CLI's path options, `Corpus.open`, `read_index`,
`mixer.shards.build`, `prepare`) asks `is_url` first and then either supports the URL or refuses
it with one line naming the URL and what to do (`require_local`).

What takes a URL is listed in docs/storage.md; everything else is local only and says so.
Outputs on a URL (`build-shards --out`, `prepare --out`, the loops' `--out`) are written by
`publish_folder` (below): a local build, then an upload that publishes its marker last.

fsspec is imported lazily here and only here (`filesystem`): a local run never imports it, and
a backend that is not installed (s3fs for `s3://`, gcsfs, adlfs) is one line naming the extra.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import xxhash

from mixer.core.errors import MixerError
from mixer.core.lock import REMOTE_LOCK_NAME, remote_lock

# `scheme://…` as typed, and `scheme:/…`: what `Path()` has already made of such a URL.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_MANGLED = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)")

# The mixer extra (pyproject) that installs each scheme's fsspec backend.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure",
          "adl": "azure"}
BACKENDS = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}

STORAGE_DOC = "docs/storage.md"


def url_scheme(path: Any) -> str | None:
    """The scheme of a URL (`s3`), or None for a local path. A `Path` made from a URL (one
    slash lost: `s3:/bucket`) still counts as that URL."""
    if path is None:
        return None
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str):
        return None
    m = _URL.match(text) or (_MANGLED.match(text) if isinstance(path, Path) else None)
    return m.group(1).lower() if m else None


def is_url(path: Any) -> bool:
    """True for `scheme://…` (and a `Path` that was one); `file://` URLs count too."""
    return url_scheme(path) is not None


def is_remote(path: Any) -> bool:
    """A URL that is not `file://`: its bytes are read through fsspec."""
    scheme = url_scheme(path)
    return scheme is not None and scheme != "file"


def local_path(path: str | os.PathLike) -> Path:
    """`path` as a local `Path`; a `file://` URL becomes its path."""
    text = os.fspath(path)
    return Path(text[len("file://"):]) if url_scheme(path) == "file" else Path(text)


def require_local(path: str | os.PathLike, what: str, *, instead: str = "") -> Path:
    """`path` as a local `Path`, or `MixerError` if it is an object-storage URL: `what` names the
    argument (`--corpus`, `the corpus`), `instead` what to do (default: copy it to a local folder)."""
    if is_remote(path):
        hint = instead or "copy it to a local folder first (e.g. `aws s3 sync`) and pass that folder"
        raise MixerError(f"{what} {as_typed(path)}: object storage URLs are not supported here yet; {hint} "
                         f"(which arguments take URLs: {STORAGE_DOC})")
    return local_path(path)


def as_typed(path: Any) -> str:
    """The URL as the user typed it: a `Path` made from `s3://b/k` reads `s3:/b/k`."""
    text = os.fspath(path)
    if isinstance(path, Path) and _MANGLED.match(text):
        scheme, rest = text.split(":", 1)
        return f"{scheme}:/{rest}"
    return text


def cache_root() -> Path:
    """Where downloads from object storage are kept: `$MIXER_CACHE`, default `~/.cache/mixer`."""
    return Path(os.environ.get("MIXER_CACHE") or Path.home() / ".cache" / "mixer")


def download_folder(url: str, dest: Path, storage_options: dict[str, Any] | None = None, *,
                    only: list[str] | None = None) -> Path:
    """Copy every object under `url` (names starting with "." left out: locks, temporaries), or
    the names in `only`, to the local folder `dest`, which appears whole or not at all (a
    temporary sibling, renamed); `dest` already there is taken as is (callers key it by content)."""
    if dest.exists():
        return dest
    fs, root = filesystem(url, storage_options)
    root = root.rstrip("/")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        for path in sorted(fs.find(root)) if only is None else [f"{root}/{name}" for name in only]:
            rel = path[len(root) + 1:]
            if not rel or any(part.startswith(".") for part in rel.split("/")):
                continue
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(fs.cat_file(path))
        try:
            os.replace(tmp, dest)
        except OSError:  # another process published it first: theirs is the same content
            if not dest.exists():
                raise
    except MixerError:
        raise
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
        raise MixerError(f"{url}: download into {dest} failed ({type(exc).__name__}: {exc}); check the URL, "
                         "credentials and free space, and run again") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_object(fs: Any, path: str, url: str) -> bytes:
    """The bytes of one object; a missing one raises FileNotFoundError (the caller names what it
    is), any other failure (endpoint, credentials) one `MixerError` naming the URL."""
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
        raise MixerError(f"{url}: cannot read it ({type(exc).__name__}: {exc}); check the storage endpoint "
                         "and credentials") from None


def join(url: str, name: str) -> str:
    """`url/name` for a URL (never `os.path.join`, which is wrong for URLs on Windows)."""
    return f"{url.rstrip('/')}/{name}"


def filesystem(url: str, storage_options: dict[str, Any] | None = None):
    """`(fs, path)`: the fsspec filesystem of `url` and the path inside it. Credentials come the
    way the backend documents (environment, profile) or through `storage_options`, never
    through mixer's own files. A scheme whose backend is missing is one line naming the extra."""
    scheme = url_scheme(url) or "file"
    extra = EXTRAS.get(scheme)
    try:
        import fsspec  # optional: only URLs need it (it comes with `datasets`)
    except ImportError:
        raise MixerError(f"{url}: reading URLs needs fsspec; pip install "
                         f"'mixer-toolkit[{extra or 's3'}]'") from None
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError:
        pip = f"pip install 'mixer-toolkit[{extra}]'" if extra else f"install the fsspec backend for {scheme}://"
        backend = f" ({BACKENDS[extra]})" if extra else ""
        raise MixerError(f"{url}: the {scheme}:// backend{backend} is not installed; {pip}") from None
    except ValueError as exc:
        raise MixerError(f"{url}: {scheme}:// is not a storage scheme fsspec knows ({exc}); "
                         f"use s3://, gs://, az://, file:// or a local path") from None


# --- writing: a local build published at a URL ------------------------------------------------------

PARTIAL_NAME = ".mixer.partial"  # on the URL while an upload is unfinished: "these objects are mixer's"
JOURNAL_NAME = "uploaded.jsonl"  # in the staging folder: objects already uploaded (name, xxh64)
ATTEMPTS = 3  # tries of one upload before its error (the backends retry inside too)
RETRY_WAIT_S = 0.5


def staging_folder(url: str) -> Path:
    """Where an output bound for `url` is built before the upload: `$MIXER_CACHE/uploads/<xxh64
    of the URL>/`, the same for every rerun, so an interrupted run's task cache (`.out.work/`)
    and upload journal are found again."""
    return cache_root() / "uploads" / xxhash.xxh64_hexdigest(url.rstrip("/").encode())


def publish_folder(url: str, write_local: Callable[[Path], Any], *, marker: str, overwrite: bool,
                   fresh: bool = True, storage_options: dict[str, Any] | None = None) -> Any:
    """Build an output locally with `write_local(folder)` and publish it at `url`, `marker` (the
    file that says "complete": `index.json`, `corpus.json`, `weights.json`) last. Returns what
    `write_local` returned.

    Object stores have no rename, so "nothing reads as complete until all of it is there" is
    kept by order: under the URL's lock (`mixer.core.lock.remote_lock`), `.mixer.partial` is put
    first, an old marker (--overwrite) removed, every other file uploaded, objects of no part in
    the new output deleted, the marker put, `.mixer.partial` removed. A run killed anywhere
    leaves no marker; the same command run again rebuilds locally (resuming from the staging
    folder's task cache where the command has one), skips the objects its journal says were
    uploaded with the same bytes, and publishes: the objects equal an uninterrupted run's.
    `fresh=False` keeps an interrupted run's staged output for `write_local` to resume (the
    loops: their finished runs are a cache). Objects under `url` that are no mixer output (no
    marker, no `.mixer.partial`) are never deleted: that is one error, even with `overwrite`."""
    fs, root = filesystem(url, storage_options)
    root = root.rstrip("/")
    if marker in _listing(fs, root, url) and not overwrite:  # fail before any work
        raise MixerError(f"{url}: output already exists (it has a {marker}); choose another URL or pass --overwrite")
    with remote_lock(fs, root, url):
        listing = _listing(fs, root, url)  # again, under the lock
        if marker in listing and not overwrite:
            raise MixerError(f"{url}: output already exists (it has a {marker}); choose another URL or pass "
                             "--overwrite")
        foreign = sorted(set(listing) - {PARTIAL_NAME, marker})
        if foreign and PARTIAL_NAME not in listing and marker not in listing:
            raise MixerError(f"{url}: holds {len(foreign)} objects (e.g. {foreign[0]}) but no {marker}: no mixer "
                             "output; choose an empty URL, or delete them first")
        staging = staging_folder(url)
        folder = staging / "out"
        if fresh and folder.exists():
            shutil.rmtree(folder)  # a killed run's local output: rebuilt (deterministic), not trusted
        try:
            staging.mkdir(parents=True, exist_ok=True)
            result = write_local(folder)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise MixerError(f"{url}: the local build before the upload failed in {staging} ({exc}); free space "
                             "there (or point MIXER_CACHE at a larger disk) and run again") from None
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if marker not in files:
            raise MixerError(f"{folder}: the local build wrote no {marker}")  # a bug, said plainly
        _upload(fs, root, url, folder, files, marker, listing, staging / JOURNAL_NAME)
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _upload(fs: Any, root: str, url: str, folder: Path, files: list[str], marker: str, listing: dict[str, int],
            journal_path: Path) -> None:
    done = _journal(journal_path)
    _retry(lambda: fs.pipe_file(join(root, PARTIAL_NAME), b"mixer upload in progress\n"), url, marker)
    if marker in listing:  # --overwrite: the old output stops reading as complete first
        _retry(lambda: fs.rm_file(join(root, marker)), url, marker)
    with journal_path.open("a", encoding="utf-8") as journal:
        for name in files:
            if name == marker:
                continue
            local = folder / name
            digest = _xxh64_file(local)
            if done.get(name) == digest and listing.get(name) == local.stat().st_size:
                continue  # uploaded by an interrupted run of this command, the same bytes
            _retry(partial(fs.put_file, str(local), join(root, name)), join(url, name), marker)
            journal.write(json.dumps({"name": name, "xxh64": digest}) + "\n")
            journal.flush()
    for name in sorted(set(listing) - set(files) - {PARTIAL_NAME}):  # an old or interrupted output's leftovers
        _retry(partial(fs.rm_file, join(root, name)), join(url, name), marker)
    _retry(lambda: fs.put_file(str(folder / marker), join(root, marker)), join(url, marker), marker)
    _retry(lambda: fs.rm_file(join(root, PARTIAL_NAME)), url, marker)


def _retry(op: Callable[[], Any], what: str, marker: str) -> Any:
    """`op()`, tried `ATTEMPTS` times; then one `MixerError` naming `what` (the object's URL)."""
    for attempt in range(ATTEMPTS):
        try:
            return op()
        except MixerError:
            raise
        except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
            if attempt == ATTEMPTS - 1:
                raise MixerError(f"{what}: upload failed after {ATTEMPTS} attempts ({type(exc).__name__}: {exc}); "
                                 f"nothing reads as complete (no {marker}); check the storage endpoint and run the "
                                 "same command again to finish it") from None
            time.sleep(RETRY_WAIT_S * (attempt + 1))


def _listing(fs: Any, root: str, url: str) -> dict[str, int]:
    """Every object under `root` (the lock left out): name relative to it -> size."""
    try:
        fs.invalidate_cache(root)
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return {}
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
        raise MixerError(f"{url}: cannot list it ({type(exc).__name__}: {exc}); check the storage endpoint and "
                         "credentials") from None
    out = {}
    for path, info in found.items():
        rel = path.rstrip("/")[len(root) + 1:]
        if rel and rel != REMOTE_LOCK_NAME and info.get("type", "file") == "file":
            out[rel] = int(info.get("size") or 0)
    return out


def _journal(path: Path) -> dict[str, str]:
    """The objects an interrupted run uploaded (a line cut by a kill is ignored)."""
    done: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                done[entry["name"]] = entry["xxh64"]
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _xxh64_file(path: Path) -> str:
    h = xxhash.xxh64()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
