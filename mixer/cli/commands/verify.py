"""`mixer verify CORPUS|SHARDS`: read every byte of a corpus or shards folder and check it.

    mixer verify corpus/     # corpus.json seal, every Arrow part + tokenizer: size, xxh3-64, sha256, structure
    mixer verify shards/     # index.json seal, every shard + sidecar: xxh64, sha256, sizes, domain ids

Exit 0 and one summary line when everything matches; otherwise exit 2 and one line naming
the first damaged file and what to re-run.
"""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._options import LocalPath


@click.command("verify")
@click.argument("folder", type=LocalPath(path_type=Path))
def command(folder: Path) -> None:
    """Check every file of a corpus or shards folder against its recorded checksums."""
    from mixer.formats.verify import verify_folder

    report = verify_folder(folder)
    click.echo(f"verified {report.kind} {folder}: {report.summary}")
