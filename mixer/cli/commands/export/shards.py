"""`mixer export-shards SHARDS --format megatron --out PREFIX`: the shards' exact token stream as
Megatron's indexed dataset (PREFIX.bin + PREFIX.idx, one document per sequence, in stream order).

    mixer export-shards shards/ --format megatron --out export/mix_text_document
    # then: pretrain_gpt.py --data-path export/mix_text_document --seq-length <the shards' seq_len> ...
    mixer export-shards s3://bucket/shards --corpus s3://bucket/corpus --format megatron --out export/mix
    # a URL: the shards are downloaded into the shard cache (each verified) and exported from there
"""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._options import LocalPath, StoragePath


@click.command("export-shards")
@click.argument("shards", type=StoragePath(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(("megatron",)), required=True,
              help="The on-disk dataset format to write.")
@click.option("--out", type=LocalPath(dir_okay=False, path_type=Path), required=True, metavar="PREFIX",
              help="Output prefix: PREFIX.bin and PREFIX.idx (megatron).")
@click.option("--corpus", "corpus_dir", type=StoragePath(file_okay=False, path_type=Path), default=None,
              help="The corpus the shards were built from, a folder or URL (its vocabulary size picks the token dtype) "
                   "[default: the corpus path the index records].")
def command(shards: Path, fmt: str, out: Path, corpus_dir: Path | None) -> None:
    """Write the shards' token stream as another library's dataset, same tokens in the same order."""
    from mixer.core.errors import MixerError
    from mixer.core.urls import is_remote
    from mixer.export.shards import ShardExportSpec, export_shards
    from mixer.stream.shard_cache import shards_copy

    if is_remote(shards):  # the shards downloaded into their cache, each object verified, then exported from there
        if corpus_dir is None:
            raise MixerError(f"{shards}: shards on object storage record no corpus path; pass --corpus DIR or URL, the "
                             "corpus they were built from")
        shards = shards_copy(str(shards))
    res = export_shards(ShardExportSpec(shards=shards, format=fmt, out=out, corpus=corpus_dir))
    click.echo(f"wrote {', '.join(str(f) for f in res.files)}: {res.sequences:,} sequences, {res.tokens:,} "
               f"{res.dtype} tokens (vocabulary {res.vocab_size:,})")
