"""Shards written to object storage (`build-shards --out s3://bucket/shards`, any fsspec URL).

The shards are built into a local staging folder exactly as a local build (the same code, the
same bytes), then published by `mixer.core.urls.publish_folder`: every shard and sidecar is
uploaded, and `index.json` last, under the URL's lock object (`mixer.core.lock.remote_lock`). A
reader (`MixtureStream`) starts from `index.json`, so until the last PUT the URL reads as "no
index.json: its build has not finished", never as a short stream; the same command run again
finishes an interrupted upload.

`index.json` of a URL output records no `corpus_path`: a local corpus has no path relative to a
bucket, so readers are given the corpus (`--corpus`). Every shard object is byte-identical to
the local build's file.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixer.core.lock import remote_lock
from mixer.core.urls import publish_folder

INDEX_NAME = "index.json"

__all__ = ["build_to_url", "remote_lock"]


def build_to_url(url: str, write_local: Callable[[Path], Any], *, overwrite: bool,
                 storage_options: dict[str, Any] | None = None) -> Any:
    """Run `write_local(folder)` (a local build into a fresh staging folder) and publish that
    folder at `url`, `index.json` last. Returns what `write_local` returned."""
    return publish_folder(url, write_local, marker=INDEX_NAME, overwrite=overwrite, storage_options=storage_options)
