"""`mixer train`: train GPT-2 or BERT from scratch on a mixture; write run.json + loss curves.

    mixer train --model gpt2 --preset tiny --corpus corpus/ --weights w.json --tokens 2M --out runs/a
    mixer train --model gpt2 --preset large --shards shards/ --out runs/b   # corpus: the one index.json records
    torchrun --nproc-per-node 8 -m mixer.cli train ...   # DDP: one process per GPU
"""
from __future__ import annotations

import json
import math
import os

import click

from mixer.cli.commands._options import (
    LocalPath,
    StoragePath,
    data_seed_option,
    log_options,
    log_settings,
    max_epochs_option,
    mixture_options,
    model_options,
    quiet_option,
)


def _provenance(pairs: tuple[str, ...]) -> dict:
    from mixer.core.errors import MixerError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MixerError(f"--provenance {pair!r}: expected KEY=VALUE, e.g. role=base")
        try:
            out[key] = json.loads(value)  # numbers, booleans, null; anything else stays a string
        except json.JSONDecodeError:
            out[key] = value
    return out


@click.command("train")
@model_options("Model")[0]
@model_options("Model")[1]
@click.option("--shards", type=StoragePath(file_okay=False),
              help="Train on shards from `mixer build-shards`: a folder, or a URL (s3://bucket/shards, read through "
                   "the cache $MIXER_CACHE, default ~/.cache/mixer; docs/storage.md).")
@click.option("--corpus", type=StoragePath(file_okay=False),
              help="The corpus (held-out splits, vocab); with --weights/--tokens, sample the mixture from it "
                   "[with --shards, default: the corpus index.json records]. A URL is downloaded once into "
                   "$MIXER_CACHE (docs/storage.md).")
@mixture_options(given="With --corpus: ")
@click.option("--threads", type=int, default=None,
              help="Torch CPU threads (default: torch's; fix it for bitwise-reproducible CPU runs).")
@max_epochs_option()
@click.option("--out", "out_dir", required=True, type=LocalPath(file_okay=False), help="Run folder.")
@click.option("--steps", type=int, help="Optimiser steps (default: as many as the budget fills).")
@click.option("--batch-size", type=int, help="Sequences per micro-step per device (default: the preset's).")
@click.option("--grad-accum", type=int, help="Micro-steps per optimiser step (default: the preset's).")
@click.option("--lr", type=float, help="Peak learning rate (default: the preset's).")
@click.option("--seq-len", type=int, help="Sequence length (default: the preset's; shards fix their own).")
@click.option("--eval-every", type=int, default=0, show_default=True, help="Held-out eval every N steps (0: end only).")
@click.option("--eval-seqs", type=int, default=64, show_default=True, help="Held-out sequences per domain.")
@click.option("--extra-eval", multiple=True, metavar="CORPUS[:DOMAIN]",
              help="Out-of-domain held-out set, never trained on (repeatable).")
@click.option("--checkpoint-every", type=int, default=0, show_default=True, help="Checkpoint every N steps (0: end).")
@click.option("--seed", type=int, default=0, show_default=True, help="Model init, dropout and masks.")
@data_seed_option()
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile (default: on CUDA).")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/checkpoint.pt with the same settings (written with --checkpoint-every or at "
                   "the end).")
@click.option("--provenance", "prov_pairs", multiple=True, metavar="KEY=VALUE",
              help="Recorded in run.json provenance (e.g. role=base, domain=code, factor=3).")
@quiet_option()
@log_options()[0]
@log_options()[1]
def command(model, preset, shards, corpus, weights_file, weight_pairs, normalize, schedule_file, tokens, threads,
            max_epochs, out_dir,
            steps, batch_size, grad_accum, lr, seq_len, eval_every, eval_seqs, extra_eval, checkpoint_every, seed,
            data_seed, device, compile_, resume, prov_pairs, quiet, log, log_dir):
    """Train GPT-2 or BERT from random init on a mixture; report held-out loss per domain."""
    from mixer.core.errors import MixerError
    from mixer.core.metrics import MetricsConfig
    from mixer.core.units import parse_count
    from mixer.formats.weights import load_weights, parse_weight_options
    from mixer.shards.plan import PlanConfig
    from mixer.trainers.data import source_from_corpus, source_from_shards
    from mixer.trainers.hf_train import TrainConfig, train

    if shards and seq_len is None:  # built shards fix the sequence length: it flows from the data to the spec
        from mixer.stream.stream import shards_index

        seq_len = shards_index(shards).seq_len
    cfg = TrainConfig(model=model, preset=preset, steps=steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
                      seq_len=seq_len, eval_every=eval_every, eval_seqs=eval_seqs, extra_eval=tuple(extra_eval),
                      checkpoint_every=checkpoint_every, seed=seed, device=device, compile=compile_,
                      progress=not quiet)
    p = cfg.resolve()  # validates the preset and overrides before any data is touched
    logs = log_settings({"log": log, "log_dir": log_dir}, out_dir)  # the run: OUT's name under --log-dir
    metrics = MetricsConfig(targets=logs["log"], folder=logs["log_dir"],
                            name=os.path.basename(os.path.abspath(out_dir))) if logs["log"] else None
    if threads is not None:
        if threads < 1:
            raise MixerError(f"--threads {threads}: need at least 1")
        import torch

        torch.set_num_threads(threads)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if shards:
        if weights_file or weight_pairs or schedule_file or tokens:
            raise MixerError("--shards fixes the mixture and budget; drop --weights/--weight/--schedule/--tokens")
        source = source_from_shards(shards, p.batch_size, corpus, rank, world, model)
    elif corpus and schedule_file:
        from mixer.formats.schedule import load_schedule

        if weights_file or weight_pairs:
            raise MixerError("--schedule is the mixture: drop --weights/--weight")
        schedule = load_schedule(schedule_file)
        budget = parse_count(tokens, "--tokens") if tokens else schedule.budget_tokens
        source = source_from_corpus(corpus, schedule, PlanConfig(tokens=budget, seq_len=p.seq_len, seed=data_seed,
                                                                 max_epochs=max_epochs),
                                    model=model, batch_size=p.batch_size, rank=rank, world_size=world)
    elif corpus:
        if bool(weights_file) == bool(weight_pairs):
            raise MixerError("--corpus sampling needs the mixture: give either --weights FILE or --weight DOMAIN=W")
        mixture = load_weights(weights_file) if weights_file else None
        weights = mixture.weights if mixture else parse_weight_options(weight_pairs, normalize)
        if tokens:
            budget = parse_count(tokens, "--tokens")
        elif mixture is not None and mixture.budget_tokens:
            budget = int(mixture.budget_tokens)  # the budget the weights were solved for
        else:
            raise MixerError("--corpus sampling needs --tokens (the mixture's budget, e.g. 30M); "
                             f"{weights_file or '--weight'} records no budget_tokens")
        source = source_from_corpus(corpus, weights, PlanConfig(tokens=budget, seq_len=p.seq_len, seed=data_seed,
                                                                max_epochs=max_epochs),
                                    model=model, batch_size=p.batch_size, rank=rank, world_size=world)
    else:
        raise MixerError("no data: give --shards DIR (built shards) or --corpus DIR with --weights and --tokens")
    source.provenance.update(_provenance(prov_pairs))
    record = train(cfg, source, out_dir, resume=resume, log=metrics)
    if rank == 0:
        width = max(map(len, record.final_loss))
        click.echo(f"{out_dir}/run.json: {record.steps} steps, {record.tokens_seen:,} tokens, "
                   f"{record.tokens_per_s:,.0f} tokens/s")
        for d, loss in {**record.final_loss, **record.extra_loss}.items():
            click.echo(f"  {d:<{width + 4}} held-out loss {loss:.4f}  ppl {math.exp(min(loss, 700)):.2f}")
