"""Paths a user gives may be URLs (`s3://bucket/shards`): recognised here, in one place, so
that no path is ever silently reinterpreted.

`pathlib.Path("s3://bucket/shards")` is `s3:/bucket/shards`, a *local* relative folder named
`s3:`; before this module `mixer build-shards --out s3://bucket/shards` wrote exactly that and
exited 0. Every place a path enters mixer (the CLI's path options, `Corpus.open`, `read_index`,
`mixer.shards.build`, `prepare`) asks `is_url` first and then either supports the URL or refuses
it with one line naming the URL and what to do (`require_local`).

What takes a URL today (docs/storage.md): `MixtureStream` / `train --shards` read shards from
any fsspec URL through a local cache, and `build-shards --out` writes them. Everything else is
local only and says so.

fsspec is imported lazily here and only here (`filesystem`): a local run never imports it, and
a backend that is not installed (s3fs for `s3://`, gcsfs, adlfs) is one line naming the extra.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from mixer.core.errors import MixerError

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
