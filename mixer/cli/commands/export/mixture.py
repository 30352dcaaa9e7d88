"""`mixer export WEIGHTS --to TARGET`: a mixture as the configuration another library reads.

    mixer export weights.json --to megatron --prefix /data/{domain}_text_document   # --data-args-path file
    mixer export weights.json --to hf --prefix data/ --out mixture.yaml          # interleave_datasets
    mixer export weights.json --to mosaic|litdata|olmo|torchtitan [--path code=s3://b/code]

Printed, or written with `--out`. Where the format has comments (all but Megatron's blend) the
weights' intervals and verdict travel in them; otherwise they are printed on stderr. An
`unsupported` verdict is always printed on stderr too.
"""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._options import LocalPath

TARGETS = ("megatron", "hf", "mosaic", "litdata", "olmo", "torchtitan")  # mixer.export.targets.TARGETS


@click.command("export")
@click.argument("weights", type=LocalPath(path_type=Path))
@click.option("--to", "target", type=click.Choice(TARGETS), required=True,
              help="The library whose configuration to write.")
@click.option("--prefix", default="", metavar="PREFIX",
              help="Where each domain's data is: PREFIX/DOMAIN, or PREFIX with {domain} filled in "
                   "[default: the domain name].")
@click.option("--path", "paths", multiple=True, metavar="DOMAIN=PATH",
              help="One domain's data path, over --prefix (repeatable).")
@click.option("--out", type=LocalPath(dir_okay=False, path_type=Path), default=None,
              help="Write the configuration to this file instead of printing it.")
def command(weights: Path, target: str, prefix: str, paths: tuple[str, ...], out: Path | None) -> None:
    """Write weights.json as Megatron's blend, HF interleave_datasets, Mosaic streams, litdata
    weights, an OLMo-core source mixture or a torchtitan job config."""
    from mixer.export.mixture import ExportSpec, parse_path_options
    from mixer.export.targets import export_mixture, write_export

    exported = export_mixture(ExportSpec(weights=weights, target=target, prefix=prefix,
                                         paths=parse_path_options(paths)))
    if out is not None:
        write_export(exported, out)  # first: a bad --out is the only line printed
    if not exported.comments_inside:
        for line in exported.comments:
            click.echo(f"note: {line}", err=True)
    if exported.verdict == "unsupported":
        click.echo("warning: this mixture's verdict is UNSUPPORTED (see weights.json's reasons): the runs do not "
                   "show it beats uniform", err=True)
    if out is None:
        click.echo(exported.text, nl=False)
    else:
        click.echo(f"wrote {out} ({target})", err=True)
