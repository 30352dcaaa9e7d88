"""A domain's source made ready to read, where the sources are checked (`prepare_corpus`), once
for one machine and the Ray path: its reader decided (`resolve_format`), and a source on object
storage fetched into the local cache (`fetch_remote`).

A folder mixing record files (JSON, JSONL, CSV, Parquet) with others is refused for every kind
but code: read as text, each record file would be one document of raw markup (a real mail
corpus ships each message as `.txt` and again as `.json`: every message was tokenized twice,
once as JSON), and a Parquet file would be skipped as binary. `--format DOMAIN=text` reads every
file as plain text; a code domain does so by default (a repository's JSON and CSV files are
source text too).
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import xxhash

from mixer.core.errors import MixerError
from mixer.core.urls import as_typed, cache_root, download_folder, filesystem, is_remote
from mixer.prepare.config import DomainSource
from mixer.prepare.sources import FORMATS, detect_format, record_files, source_files

TEXT_AS_IS_KINDS = ("code",)  # a code folder's JSON and CSV files are source text: read as they are


def resolve_format(source: DomainSource) -> str:
    """The reader of a path `source`: its `fmt` when given (checked), else what `detect_format`
    finds. A folder read as text that holds structured-data files among others is refused
    unless the domain's kind reads them as text (`TEXT_AS_IS_KINDS`): one line naming the
    domain, the files and the two fixes."""
    if source.fmt not in FORMATS:
        raise MixerError(f"domain {source.name!r}: unknown source format {source.fmt!r}; use one of "
                         f"{', '.join(FORMATS)}")
    if source.fmt != "auto":
        return source.fmt
    path = Path(source.path)
    files = source_files(path) if path.is_dir() else None  # (listed once: a folder may hold millions)
    fmt = detect_format(path, files)
    if fmt != "text" or files is None or source.kind in TEXT_AS_IS_KINDS:
        return fmt
    structured, kinds = record_files(files)
    if structured:
        raise MixerError(
            f"{path}: domain {source.name!r} mixes {len(structured):,} {kinds} files (e.g. "
            f"{structured[0].relative_to(path).as_posix()}) with {len(files) - len(structured):,} other files; read "
            "as text, each would be one document of raw records; give --format "
            f"{source.name}=text to read every file as plain text, or point --source at files of one kind")
    return fmt


def fetch_remote(source: DomainSource) -> DomainSource:
    """`source` with an object-storage path (`s3://bucket/data.jsonl`, or a prefix of files)
    replaced by its local copy in `$MIXER_CACHE/sources/<key>/`, fetched once: the key hashes the
    URL and every object's name, size and ETag (or modification time), so a changed source is
    fetched again. The corpus does not record source paths, so it is the same bytes as when
    prepared from a local copy. Other sources are returned as they are."""
    if not isinstance(source.path, (str, os.PathLike)) or not is_remote(source.path):
        return source
    url = as_typed(source.path).rstrip("/")
    fs, root = filesystem(url)
    try:
        single = fs.isfile(root)
        listing = [fs.info(root)] if single else fs.find(root, detail=True).values()
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
        raise MixerError(f"{url}: cannot list the source of domain {source.name!r} ({type(exc).__name__}: {exc}); "
                         "check the URL, endpoint and credentials") from None
    stamp = sorted((str(o.get("name")), int(o.get("size") or 0), str(o.get("ETag") or o.get("mtime") or ""))
                   for o in listing)
    if not stamp:
        raise MixerError(f"{url}: source of domain {source.name!r} holds no objects; check --source "
                         f"{source.name}=URL")
    key = xxhash.xxh64_hexdigest(json.dumps([url, stamp]).encode())
    dest = cache_root() / "sources" / key
    if single:  # one object: a folder holding just it, under its own name (its suffix names the format)
        name = url.rsplit("/", 1)[-1]
        parent = url[:-len(name) - 1]
        folder = download_folder(parent, dest, only=[name])
        return replace(source, path=folder / name)
    return replace(source, path=download_folder(url, dest))
