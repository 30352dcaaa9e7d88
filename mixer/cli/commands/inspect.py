"""`mixer inspect --shards DIR`: what a shards folder holds, every checksum verified, and
optionally a few sequences decoded so a person can read what the model will see.

    mixer inspect --shards shards/                  # index table + verify xxh64 and sha256
    mixer inspect --shards shards/ --sample 3       # + 3 sequences as text, by domain
    mixer inspect shards/                           # the folder may also be given bare
    mixer inspect s3://bucket/shards --corpus s3://bucket/corpus --sample 3
                                                    # a URL: downloaded into the shard cache first
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from mixer.cli.commands._options import StoragePath
from mixer.formats.corpus_handle import Corpus
from mixer.formats.shard_index import ShardIndex


@click.command("inspect")
@click.argument("shards_arg", required=False, type=StoragePath(file_okay=False, path_type=Path))
@click.option("--shards", "shards_opt", type=StoragePath(file_okay=False, path_type=Path),
              help="Shards folder from `mixer build-shards` (as in `mixer train --shards`), or its URL.")
@click.option("--sample", "sample", type=int, default=0, show_default=True, metavar="K",
              help="Decode K sequences (evenly spaced over the stream) with the corpus's tokenizer.")
@click.option("--corpus", "corpus_dir", type=StoragePath(file_okay=False, path_type=Path), default=None,
              help="The corpus the shards were built from, a folder or URL (its tokenizer.json decodes --sample) "
                   "[default: the corpus path the index records].")
@click.option("--no-verify", is_flag=True, help="Skip reading every shard to verify its checksums.")
def command(shards_arg: Path | None, shards_opt: Path | None, sample: int, corpus_dir: Path | None,
            no_verify: bool) -> None:
    """Print a shards folder's index (weights, realised tokens per domain, shards, seq_len) and
    verify every shard's checksums."""
    from rich.console import Console

    from mixer.cli.commands.build_shards import stages_table, summary_table
    from mixer.core.errors import MixerError
    from mixer.core.urls import is_remote
    from mixer.formats.shards import corpus_of, read_index
    from mixer.stream.shard_cache import shards_copy

    if (shards_arg is None) == (shards_opt is None):
        raise MixerError("give the shards folder once: --shards DIR (or as the only argument)")
    shards_dir = shards_arg or shards_opt
    if sample < 0:
        raise MixerError(f"--sample {sample}: must be >= 0")
    url = shards_dir if is_remote(shards_dir) else None
    if url is not None:  # downloaded into the shard cache (each object verified on download), then read as a folder
        if sample and corpus_dir is None:
            raise MixerError(f"{url}: shards on object storage record no corpus path; pass --corpus DIR or URL, the "
                             "corpus they were built from (its tokenizer decodes --sample)")
        shards_dir = shards_copy(url, whole=bool(sample) or not no_verify)
    out = Console()
    index = read_index(shards_dir)
    corpus = corpus_of(shards_dir, index, corpus_dir) if sample else None  # a wrong corpus fails first
    out.print(summary_table(index))
    if index.stages:
        out.print(stages_table(index))
    sizes = sum((shards_dir / e.file).stat().st_size for e in index.shards if (shards_dir / e.file).exists())
    if url is not None:  # the sizes on the store (--no-verify downloads index.json only)
        from mixer.core.urls import filesystem

        fs, root = filesystem(url)
        listed = {k.rsplit("/", 1)[-1]: v.get("size", 0) for k, v in fs.find(root, detail=True).items()}
        sizes = sum(int(listed.get(e.file, 0)) for e in index.shards)
        out.print(f"{url}: read through the shard cache {shards_dir}")
    out.print(f"{len(index.shards)} shards of up to {index.sequences_per_shard} sequences; "
              f"{index.num_sequences:,} sequences x seq_len {index.seq_len} = {index.budget_tokens:,} "
              f"{index.dtype} tokens; {sizes / 1e6:.1f} MB compressed; seed {index.seed}")
    if not no_verify:
        verify(shards_dir, index, out)
    if corpus is not None:
        show_samples(shards_dir, index, corpus, sample, out)


def verify(shards_dir: Path, index: ShardIndex, out) -> None:
    """xxh64 and sha256 of every shard and domain sidecar; the first bad file is the error."""
    from rich.progress import Progress

    from mixer.core.errors import MixerError
    from mixer.formats.shards import read_shard, read_shard_domains

    n = 0
    with Progress(console=out, transient=True) as progress:
        task = progress.add_task("verifying", total=len(index.shards))
        for e in index.shards:
            n += read_shard(shards_dir / e.file, index, sha256=True).shape[0]
            read_shard_domains(shards_dir / e.file, index, sha256=True)
            progress.advance(task)
    if n != index.num_sequences:
        raise MixerError(f"{shards_dir / 'index.json'}: shards hold {n} sequences, the index says "
                         f"{index.num_sequences}; rebuild the shards")
    out.print(f"[green]verified[/green] {len(index.shards)} shards and their domain sidecars "
              "(xxh64 + sha256)")


def show_samples(shards_dir: Path, index: ShardIndex, corpus: Corpus, k: int, out) -> None:
    """Sequences 0, N/k, 2N/k, ..: each cut at document boundaries and labelled by domain."""
    from rich.panel import Panel
    from rich.text import Text
    from tokenizers import Tokenizer

    from mixer.core.errors import MixerError
    from mixer.formats.shards import read_shard, read_shard_domains

    tok_path = corpus.tokenizer_file()  # `corpus_of` matched its sha256; checksum verified before parsing
    try:
        tokenizer = Tokenizer.from_file(str(tok_path))
    except Exception as exc:  # tokenizers raises a bare Exception for any unreadable file
        raise MixerError(f"{tok_path}: not a readable tokenizer ({exc}); re-run `mixer prepare`") from None
    special = index.special_tokens
    names = {} if special is None else {special.cls: "[CLS]", special.sep: "[SEP]", special.pad: "[PAD]"}
    names[index.eos_id] = "<EOS>"
    domains = index.domain_order
    bounds = np.cumsum([0] + [e.sequences for e in index.shards])
    n = index.num_sequences
    loaded, rows, doms = -1, None, None
    for seq in sorted({i * n // k for i in range(min(k, n))}):
        s = int(np.searchsorted(bounds, seq, side="right")) - 1
        if s != loaded:
            path = shards_dir / index.shards[s].file
            rows, doms, loaded = read_shard(path, index), read_shard_domains(path, index), s
        row, dom = rows[seq - bounds[s]], doms[seq - bounds[s]]
        text = Text()
        for a, b in _runs(row, dom, set(names)):
            if int(row[a]) in names:
                text.append(names[int(row[a])] + (f" x{b - a} " if b - a > 1 else " "), style="bold magenta")
                continue
            text.append(f"[{domains[int(dom[a])]}] ", style="bold cyan")
            text.append(tokenizer.decode(row[a:b].tolist(), skip_special_tokens=False) + " ")
        out.print(Panel(text, title=f"sequence {seq} of {n}", title_align="left"))


def _runs(row, dom, special: set[int]):
    """[a, b) stretches of one domain with no special token, and each special token on its own
    (runs of one special token together)."""
    a, n = 0, len(row)
    while a < n:
        b = a + 1
        if int(row[a]) in special:
            while b < n and row[b] == row[a]:
                b += 1
        else:
            while b < n and dom[b] == dom[a] and int(row[b]) not in special:
                b += 1
        yield a, b
        a = b
