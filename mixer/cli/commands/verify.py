"""`mixer verify CORPUS|SHARDS`: read every byte of a corpus or shards folder and check it.

    mixer verify corpus/     # corpus.json seal, every Arrow part + tokenizer: size, xxh3-64, sha256, structure
    mixer verify shards/     # index.json seal, every shard + sidecar: xxh64, sha256, sizes, domain ids
    mixer verify s3://bucket/shards   # the same, of a copy downloaded into $MIXER_CACHE (docs/storage.md)

Exit 0 and one summary line when everything matches; otherwise exit 2 and one line naming
the first damaged file and what to re-run.
"""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._options import StoragePath


@click.command("verify")
@click.argument("folder", type=StoragePath(path_type=Path))
def command(folder: Path | str) -> None:
    """Check every file of a corpus or shards folder (or its s3:// URL) against its recorded checksums."""
    from mixer.core.urls import is_remote
    from mixer.formats.verify import verify_folder

    if is_remote(folder):  # downloaded into the local cache (shards: each verified on download), then read whole
        from mixer.stream.shard_cache import local_copy

        report = verify_folder(local_copy(str(folder)))
    else:
        report = verify_folder(folder)
    click.echo(f"verified {report.kind} {folder}: {report.summary}")
