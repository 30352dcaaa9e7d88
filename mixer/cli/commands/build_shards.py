"""`mixer build-shards`: a prepared corpus + a mixture + a token budget -> zstd shards.

    mixer build-shards --corpus corpus/ --weights weights.json --tokens 30M --seq-len 1024 \\
        --data-seed 0 --out shards/

Same inputs give a byte-identical folder whatever --threads is. Bad input is one line on
stderr, exit code 2, and nothing written. See docs/sampler.md.
"""
from __future__ import annotations

import os

import click

from mixer.cli.commands._cluster import cluster_config, cluster_options
from mixer.cli.commands._options import (
    StoragePath,
    data_seed_option,
    max_epochs_option,
    mixture_options,
    quiet_option,
)
from mixer.formats.shard_index import ShardIndex


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@click.command("build-shards")
@click.option("--corpus", "corpus_dir", required=True, type=StoragePath(file_okay=False),
              help="Folder written by `mixer prepare`, or its URL (s3://bucket/corpus: downloaded once into "
                   "$MIXER_CACHE, default ~/.cache/mixer; docs/storage.md).")
@mixture_options(given="")
@click.option("--seq-len", type=int, default=1024, show_default=True, help="Tokens per sequence.")
@data_seed_option()
@click.option("--out", required=True, type=StoragePath(),
              help="Output folder, or an object-storage URL (s3://bucket/shards, any fsspec URL; "
                   "docs/storage.md); must not exist unless --overwrite.")
@click.option("--objective", type=click.Choice(["causal", "mlm"]), default="causal", show_default=True,
              help="causal: documents joined by EOS; mlm: [CLS] doc [SEP] [PAD].., one document per row.")
@click.option("--shard-tokens", default="32Mi", show_default=True,
              help="Tokens per shard (32Mi = 33,554,432; also 30M, 1e6).")
@quiet_option()
@click.option("--zstd-level", type=int, default=1, show_default=True,
              help="zstd compression level of the shards (higher: smaller, slower to write).")
@click.option("--threads", type=int, default=None, help="Compression threads [default: CPU count, at most 8].")
@max_epochs_option()
@click.option("--interleave", type=click.Choice(["auto", "midpoint", "edf", "blend"]), default="auto", show_default=True,
              help="Order of documents: midpoint (token shares, causal default), edf (smallest deviation in "
                   "documents; masked-LM default) or blend (masked LM: every prefix within Megatron's error of "
                   "the weights as given). docs/sampler.md.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
@cluster_options(local="--threads")
def command(corpus_dir, weights_file, weight_pairs, normalize, schedule_file, tokens, seq_len, data_seed, out,
            objective, shard_tokens, quiet, zstd_level, threads, max_epochs, overwrite, interleave, **cluster) -> None:
    """Sample a mixture of the corpus's domains into zstd shards, exactly and deterministically.

    The first local build on a machine compiles mixer's kernels once (about 15 s); later builds
    load them without numba. MIXER_COMPILED_KERNELS=0 runs numba's instead (the same bytes).
    """
    import contextlib
    import gc
    import time
    from pathlib import Path

    from mixer.core.errors import MixerError
    from mixer.core.lock import output_lock
    from mixer.core.paths import refuse_nested
    from mixer.core.units import parse_count
    from mixer.core.urls import is_remote
    from mixer.formats.corpus_handle import Corpus
    from mixer.formats.schedule import load_schedule
    from mixer.formats.weights import load_weights, parse_weight_options
    from mixer.kernels import without_numba_extras
    from mixer.shards import build
    from mixer.shards.builder import BuildProgress
    from mixer.shards.plan import PlanConfig
    from mixer.shards.write import ShardConfig

    if sum(map(bool, (weights_file, weight_pairs, schedule_file))) != 1:
        raise MixerError("give the mixture once: as --weights weights.json, as --weight DOMAIN=W (one per domain) "
                         "or as --schedule schedule.json")
    schedule = weights = None
    recorded = None  # the budget the mixture file records, the default of --tokens
    if schedule_file:
        schedule, source = load_schedule(schedule_file), str(schedule_file)
        recorded = schedule.budget_tokens
    elif weights_file:
        mixture = load_weights(weights_file)
        weights, source, recorded = mixture.weights, str(weights_file), mixture.budget_tokens
    else:
        weights, source = parse_weight_options(weight_pairs, normalize), "--weight"
    if tokens is None and not recorded:
        raise MixerError(f"--tokens: give the token budget, e.g. --tokens 30M ({source} records none)")
    budget = int(recorded) if tokens is None else parse_count(tokens, "--tokens")
    plan_config = PlanConfig(tokens=budget, seq_len=seq_len, seed=data_seed,
                             objective=objective, max_epochs=max_epochs, interleave=interleave)
    shard_config = ShardConfig(shard_tokens=parse_count(shard_tokens, "--shard-tokens"), zstd_level=zstd_level,
                               workers=_default_workers() if threads is None else threads, overwrite=overwrite)
    if shard_config.workers < 1:
        raise MixerError(f"--threads {shard_config.workers}: need at least 1 compression thread")
    remote = is_remote(out)  # object storage: mixer.shards.remote checks, locks and uploads
    if not remote and not is_remote(corpus_dir):
        refuse_nested(out, corpus_dir, "the corpus")
    cluster = cluster_config(**cluster)  # None: this process; else one Ray task per shard, the same bytes
    if not remote and Path(out).exists() and not overwrite:  # fail before any work
        raise MixerError(f"{out}: output already exists; choose another path or pass --overwrite")
    # No cyclic garbage collection while building here: the manifest and the opened parts are objects
    # that live to the end (200,000 for 10,000 domains), and the full collections their growth sets
    # off find nothing to free (0.3 s of such a build; the build makes next to no cycles). A Ray
    # build keeps it: its driver runs as long as the cluster's tasks, among Ray's objects.
    collecting = gc.isenabled()
    if cluster is None:
        gc.disable()
    # A local build runs mixer's kernels and nothing else of numba's, so numba (imported and first
    # called inside) loads no scipy, cffi or yaml: 0.2-0.3 CPU s of a command that takes about a second.
    local = cluster is None and not remote and not is_remote(corpus_dir)
    try:
        corpus = Corpus.open(corpus_dir)  # corpus.json read once for the whole command
        with contextlib.nullcontext() if remote else output_lock(out), \
                without_numba_extras() if local else contextlib.nullcontext(), \
                _compiled(local, quiet):  # (lock: a second writer fails now)
            shown = _Shown(quiet, seq_len, plan_config.tokens)
            t0 = time.perf_counter()
            try:
                stats = build(corpus, weights if schedule is None else schedule, out, plan=plan_config,
                              shards=shard_config, cluster=cluster, weights_source=source,
                              progress=BuildProgress(on_plan=shown.planned, on_shard=shown.advance))
            finally:
                shown.stop()
    finally:
        if local:  # every object (the build's 200,000 at 10,000 domains) into the oldest generation, unwalked:
            gc.freeze()  # the first collection after gc.enable() would walk them all as young objects
            gc.unfreeze()
        if collecting:
            gc.enable()
    if local:
        _left_to_exit(corpus, stats)
    if not quiet:  # --quiet: the one summary line below (a table of 10,000 domains is 10,000 lines)
        from rich.console import Console

        Console().print(summary_table(stats.index))
        if stats.index.stages:
            Console().print(stages_table(stats.index))
    wall = time.perf_counter() - t0  # plan and shards: the build, not only its writing
    rate = stats.tokens / wall if wall else float("inf")
    click.echo(f"{stats.shards} shards, {stats.tokens:,} tokens of {stats.index.domain_count} domains in "
               f"{wall:.1f} s ({rate / 1e6:.1f} M tokens/s) -> {out}")  # one line, never wrapped


_LEFT: list = []  # the last local build's corpus and stats, left to the process's exit (`_left_to_exit`)


def _left_to_exit(*objects) -> None:
    """Leave the build's objects to the end of the process instead of freeing them one by one
    when `command` returns. `mixer build-shards` ends next, and Python would free the opened
    corpus and the index object by object (10,000 domains: some 200,000 objects; this and the
    untraversed move to the oldest generation above took 0.65 -> 0.63 s off such a command,
    medians of 7 alternated runs), then run full collections over every object left (0.2-0.3
    CPU s that free nothing the shards need: they are written, closed and renamed by now). At exit (`_frozen_at_exit`) they are
    left in a cycle of their own and every object is frozen, which the interpreter's last
    collections skip; the operating system takes the memory back whole. The exit handlers still
    run. In a longer process (a test calling the command) only the last build's objects are kept
    until the next one, and the freeze acts at that process's exit."""
    import atexit

    _LEFT[:] = objects
    atexit.unregister(_frozen_at_exit)
    atexit.register(_frozen_at_exit)


def _frozen_at_exit() -> None:
    import gc

    kept = [tuple(_LEFT)]
    kept.append(kept)  # a cycle that nothing else reaches: freed only by a collection, and frozen below
    _LEFT.clear()
    gc.freeze()


def _compiled(local: bool, quiet: bool):
    """The build's kernels compiled ahead of time (`mixer.kernels.aot`), for a local build: numba is
    then not even imported (about 0.35 s of the command). Compiled once per machine and mixer
    version beside the kernels, as numba's cache (else into $MIXER_CACHE/kernels; about 15 s, said
    unless --quiet); MIXER_COMPILED_KERNELS=0 turns it off. Either way the shards are the same bytes."""
    import contextlib

    from mixer.core.urls import cache_root
    from mixer.kernels.aot import compiled_kernels
    from mixer.kernels.aot.store import default_cache

    if not local or os.environ.get("MIXER_COMPILED_KERNELS", "1") == "0":
        return contextlib.nullcontext()

    cache = default_cache(cache_root() / "kernels")

    def said() -> None:
        if not quiet:
            click.echo(f"compiling mixer's kernels for this machine, once (about 15 s) into {cache}", err=True)

    def failed(reason: str) -> None:  # said once: the next commands find the reason in <key>.failed
        click.echo(f"note: mixer's kernels could not be compiled ahead of time ({reason}); numba runs them, "
                   f"the same bytes (to retry, delete {cache}/*.failed)", err=True)

    return compiled_kernels(cache, on_compile=said, on_failure=failed)


class _Shown:
    """What the command shows while it builds: a spinner while planning, then a progress bar
    (rich, on stderr); with --quiet neither, and rich is not even imported (a tenth of a second
    of a command that takes a second or two). The note that --tokens was rounded is printed
    either way."""

    def __init__(self, quiet: bool, seq_len: int, tokens: int) -> None:
        self.quiet, self.seq_len, self.tokens = quiet, seq_len, tokens
        self.status = self.progress = self.task = None
        if not quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.err = Console(stderr=True)
            self.status = self.err.status("planning the mixture")
            self.status.start()
            self.progress = Progress(TextColumn("[bold]build-shards"), BarColumn(),
                                     TextColumn("{task.completed}/{task.total} seq"), TimeRemainingColumn(),
                                     console=self.err, transient=False)
            self.task = self.progress.add_task("shards", total=None)

    def planned(self, plan) -> None:
        if self.status is not None:
            self.status.stop()
        if plan.budget_tokens != self.tokens:
            note = (f"note: --tokens {self.tokens} rounded down to {plan.budget_tokens} "
                    f"({plan.num_sequences} sequences of {self.seq_len})")
            if self.quiet:
                click.echo(note, err=True)
            else:
                self.err.print(note)
        if self.progress is not None:
            self.progress.start()
            self.progress.update(self.task, total=plan.num_sequences)

    def advance(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
        if self.progress is not None:
            self.progress.stop()


def summary_table(index: ShardIndex):
    """Per domain: weight, target and realised tokens, documents used / available, share consumed."""
    from rich.table import Table

    table = Table(title=f"{index.objective} mixture: {index.num_sequences} x {index.seq_len} tokens, "
                        f"seed {index.seed}")
    for col in ("domain", "weight", "target tokens", "realised tokens", "documents used / available", "consumed",
                "epochs"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    packs = index.objective.packs_documents
    for name in index.domain_order:
        d = index.domains[name]
        avail = d.tokens_available + (d.documents_available if packs else 0)
        used = d.realised_tokens if packs else (d.content_tokens or 0)
        share = f"{used / avail:.1%}" if avail else "-"
        table.add_row(name, f"{d.weight:.4g}", f"{d.target_tokens:,}", f"{d.realised_tokens:,}",
                      f"{d.documents_used:,} / {d.documents_available:,}", share,
                      f"[bold yellow]{d.epochs}[/]" if d.epochs > 1 else f"{d.epochs}")
    return table


def stages_table(index: ShardIndex):
    """A schedule's shards: per stage, its sequences and tokens and each domain's weight."""
    from rich.table import Table

    table = Table(title=f"schedule: {len(index.stages)} stages (sequences in stream order)")
    for col in ("stage", "sequences", "tokens", *index.domain_order):
        table.add_column(col, justify="right")
    seq_len = index.seq_len
    for k, st in enumerate(index.stages):
        a, n = st.first_sequence, st.sequences
        table.add_row(str(k), f"{a:,} .. {a + n:,}", f"{a * seq_len:,} .. {(a + n) * seq_len:,}",
                      *(f"{st.weights[d]:.4f}" for d in index.domain_order))
    return table
