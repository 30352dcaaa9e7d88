"""The training loop shared by GPT-2 (causal) and BERT (masked LM).

One line of order: config -> devices/ranks -> data and held-out sets -> model -> optimizer
and schedule -> (resume) -> loop [micro-steps, clip, step, per-domain hooks, log, eval,
checkpoint] -> final eval -> run.json and the loss plot.

    source = DataSource(batches=loader, corpus_dir="corpus/", weights={...}, budget_tokens=N)
    record = train(TrainConfig(model="gpt2", preset="tiny", steps=200), source, "runs/a")

On a GPU: bf16 autocast, torch.compile, fused AdamW, SDPA attention; under `torchrun`, DDP
with one process per GPU, each rank reading its own part of the stream. On a CPU the same
code runs in fp32.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import numpy as np
import torch

from mixer.formats.corpus import load_manifest, manifest_sha256
from mixer.core.errors import MixerError
from mixer.trainers.checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mixer.trainers.heldout import build_eval_sets, evaluate
from mixer.trainers.hooks import StepHook, run_step_hooks, weighted_mean_loss
from mixer.trainers.models import build_model, count_params, vocab_for
from mixer.trainers.objectives import causal_token_losses, mask_generator, mask_tokens, mlm_token_losses, per_domain_sums
from mixer.trainers.presets import ModelPreset, get_preset
from mixer.trainers.record import _rate, make_record, run_config, write_run
from mixer.formats.run import RunRecord

# hook(step, per_domain_loss, per_domain_tokens): the step's mean training loss of every domain
# that had tokens in it, and the scored tokens of every domain (0 where absent). DoReMi reads these.
DomainLossHook = Callable[[int, dict[str, float], dict[str, int]], None]


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class TrainConfig:
    model: str = "gpt2"  # "gpt2" (causal LM) or "bert" (masked LM)
    preset: str = "tiny"  # see mixer.trainers.presets.PRESETS
    steps: int | None = None  # optimiser steps; None: as many as the source's budget_tokens fills
    batch_size: int | None = None  # sequences per micro-step per device (None: the preset's)
    grad_accum: int | None = None  # micro-steps per optimiser step (None: the preset's)
    lr: float | None = None  # peak learning rate (None: the preset's)
    seq_len: int | None = None  # must equal the stream's; None: the preset's
    warmup_steps: int | None = None  # None: the preset's ratio or steps, at most half the run
    weight_decay: float | None = None  # None: the preset's (1e-2, paper D.1-D.2)
    dropout: float | None = None  # None: the preset's (0.1, the HF default); 0 for throughput measurements
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW, the HF Trainer defaults the paper ran with
    grad_clip: float = 1.0  # max global grad norm (HF Trainer default); 0 disables
    eval_every: int = 0  # held-out eval every N steps (0: only at the end)
    eval_seqs: int = 64  # held-out sequences per domain (the first windows / documents)
    eval_batch_size: int = 16
    extra_eval: tuple[str, ...] = ()  # out-of-domain held-out sets: "CORPUS_DIR" or "CORPUS_DIR:DOMAIN"
    log_every: int = 10  # training-curve points and progress-bar updates
    checkpoint_every: int = 0  # 0: only at the end
    seed: int = 0  # model init, dropout and MLM masks
    device: str = "auto"  # "auto" (cuda if present), "cpu", "cuda", "cuda:1"
    compile: bool | None = None  # torch.compile; None: on CUDA only
    progress: bool = True  # tqdm bar on rank 0

    def resolve(self) -> ModelPreset:
        """The preset with this run's overrides applied (and re-validated)."""
        base = get_preset(self.model, self.preset)
        over = {k: getattr(self, k) for k in ("batch_size", "grad_accum", "lr", "seq_len", "warmup_steps", "weight_decay",
                                                "dropout")
                if getattr(self, k) is not None}
        return replace(base, **over)


@dataclass
class DataSource:
    """What the loop trains on. `batches` yields dicts of [B, L] int64 CPU tensors: `input_ids`,
    `domain_ids` (domain index per token, sorted domain names) and, for MLM, `attention_mask`.
    It is iterated afresh after a resume, once `state.load_state_dict` has run."""

    batches: Iterable[Mapping[str, torch.Tensor]]
    corpus_dir: str | Path  # the corpus the stream reads: domains, vocab, held-out splits
    weights: dict[str, float]  # the mixture (recorded in run.json)
    budget_tokens: int | None = None  # the stream's token budget
    state: Stateful | None = None  # stream position; default: `batches` itself if it has state_dict()
    seq_len: int | None = None  # the stream's sequence length, when known: must equal the run's
    provenance: dict[str, Any] = field(default_factory=dict)  # merged into run.json's provenance
    set_weights: Callable[[dict[str, float]], None] | None = None  # change the mixture between steps (step hooks)

    def stream_state(self) -> Stateful | None:
        if self.state is not None:
            return self.state
        return self.batches if hasattr(self.batches, "state_dict") else None


def resolve_device(cfg: TrainConfig) -> str:
    """`cfg.device` with "auto" resolved; a CUDA device where there is none is an error."""
    name = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MixerError(f"--device {cfg.device}: CUDA is not available here; use --device cpu")
    return name


def _setup_device(cfg: TrainConfig) -> tuple[torch.device, int, int, int]:
    """-> (device, rank, local_rank, world_size); joins the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    name = resolve_device(cfg)
    if world > 1:
        if name.startswith("cuda"):
            name = f"cuda:{local}"
            torch.cuda.set_device(name)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if name.startswith("cuda") else "gloo")
    return torch.device(name), rank, local, world


def _check_batch(batch: Mapping[str, torch.Tensor], vocab_size: int, n_domains: int, max_positions: int,
                 needs_mask: bool, step: int) -> None:
    """Catch a stream from another corpus or tokenizer before it reaches an embedding lookup."""
    ids, doms = batch.get("input_ids"), batch.get("domain_ids")
    if ids is None or doms is None or (needs_mask and "attention_mask" not in batch):
        need = "input_ids, domain_ids" + (", attention_mask" if needs_mask else "")
        raise MixerError(f"data source batch at step {step} has keys {sorted(batch)}; expected {need}")
    if ids.ndim != 2 or doms.shape != ids.shape:
        raise MixerError(f"data source batch at step {step}: input_ids {tuple(ids.shape)} and domain_ids "
                         f"{tuple(doms.shape)} must both be [batch, seq_len]")
    top, low = int(ids.max()), int(ids.min())
    if top >= vocab_size or low < 0:
        raise MixerError(f"data source yields token id {top if top >= vocab_size else low} at step {step} but the "
                         f"model vocab is {vocab_size} (from corpus.json); the stream comes from another corpus "
                         "or tokenizer: rebuild it from this --corpus")
    if int(doms.max()) >= n_domains or int(doms.min()) < 0:
        raise MixerError(f"data source yields domain id {int(doms.max())} at step {step} but the corpus has "
                         f"{n_domains} domains; rebuild the stream from this --corpus")
    if ids.shape[1] > max_positions:
        raise MixerError(f"data source sequences are {ids.shape[1]} tokens but the model holds at most "
                         f"{max_positions} positions; rebuild the stream with --seq-len <= {max_positions}")


def _warmup(preset: ModelPreset, steps: int) -> int:
    w = preset.warmup_steps if preset.warmup_steps is not None else round(preset.warmup_ratio * steps)
    return min(w, steps // 2)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak, then linear decay to 0 at `steps` (HF `get_linear_schedule_with_warmup`)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup)))


def train(cfg: TrainConfig, source: DataSource, out_dir: str | Path, hooks: Iterable[DomainLossHook] = (),
          resume: bool = False, step_hooks: Iterable[StepHook] = ()) -> RunRecord:
    """Train from random init on `source`, evaluate every domain's held-out split, write
    `out_dir/run.json` (+ checkpoint.pt, loss_curves.png) and return the record. `step_hooks`
    (`mixer.trainers.hooks`) see each step's per-token losses and may return new sampling weights."""
    # --- config, devices, ranks ---------------------------------------------------------------
    preset = cfg.resolve()
    device, rank, local_rank, world = _setup_device(cfg)
    master = rank == 0
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if not resume and ckpt_path.exists():
        raise MixerError(f"{out_dir}: holds a checkpoint already; pass --resume to continue it or choose another --out")

    # --- data: corpus, stream, held-out sets --------------------------------------------------
    manifest = load_manifest(source.corpus_dir)
    domains = manifest.domain_names  # domain_ids index this list
    vocab = vocab_for(cfg.model, manifest)
    B, L, accum = preset.batch_size, preset.seq_len, preset.grad_accum
    if source.seq_len is not None and source.seq_len != L:
        raise MixerError(f"the stream's sequences are {source.seq_len} tokens but the run uses seq_len {L}; "
                         f"pass --seq-len {source.seq_len} (or rebuild the stream with --seq-len {L})")
    tokens_per_step = B * L * accum * world
    steps = cfg.steps or ((source.budget_tokens or 0) // tokens_per_step)
    if steps <= 0:
        raise MixerError(f"no steps to train: give --steps, or a budget of at least {tokens_per_step} tokens "
                         f"(one step of {B}x{L}x{accum}x{world})")
    eval_sets = build_eval_sets(source.corpus_dir, cfg.model, vocab, L, cfg.eval_seqs)
    for spec in cfg.extra_eval:
        path, _, dom = spec.rpartition(":") if ":" in spec and not Path(spec).is_dir() else (spec, "", "")
        eval_sets += build_eval_sets(path, cfg.model, vocab, L, cfg.eval_seqs, [dom] if dom else None, prefix="ood/")
    stream = source.stream_state()
    config = run_config(cfg, preset, steps, world, vocab.size)  # as run.json will hold it

    # --- model, optimizer, schedule -------------------------------------------------------------
    raw = build_model(preset, vocab, cfg.seed).to(device)
    decay = [p for p in raw.parameters() if p.dim() >= 2]  # matrices and embeddings; not biases or norms
    no_decay = [p for p in raw.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": preset.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=preset.lr, betas=cfg.betas, eps=1e-8, fused=cuda)
    warmup = _warmup(preset, steps)
    schedule = linear_schedule(optimizer, warmup, steps)

    # --- state that a checkpoint carries --------------------------------------------------------
    step, tokens_seen, train_time, data_wait, resumed_rng = 0, 0, 0.0, 0.0, None
    tokens_per_domain = np.zeros(len(domains), dtype=np.int64)
    interval = torch.zeros(2, len(domains), dtype=torch.float64, device=device)  # loss sum, count since last log
    curve: dict[str, Any] = {"train": {"step": [], "loss": {d: [] for d in domains}, "mean": [], "lr": []},
                             "eval": {"step": [], "loss": {es.name: [] for es in eval_sets}}}
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, config, world)
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["scheduler"])
        step, curve, train_time, interval = ckpt["step"], ckpt["curve"], ckpt["train_time_s"], ckpt["interval"].to(device)
        mine = ckpt["ranks"][rank]
        tokens_seen, data_wait = mine["tokens_seen"], mine["data_wait_s"]
        tokens_per_domain = np.asarray(mine["tokens_per_domain"], dtype=np.int64)
        resumed_rng = mine["rng"]
        if stream is not None and mine["stream"] is not None:
            stream.load_state_dict(mine["stream"])
    elif resume and master:
        print(f"{ckpt_path}: no checkpoint yet; starting from step 0")

    def checkpoint() -> None:
        per_rank = {"rng": rng_state(), "stream": stream.state_dict() if stream is not None else None,
                    "tokens_seen": tokens_seen, "tokens_per_domain": tokens_per_domain.tolist(), "data_wait_s": data_wait}
        gathered = [per_rank]
        if world > 1:
            gathered = [None] * world
            torch.distributed.all_gather_object(gathered, per_rank)
        if master:
            save_checkpoint(ckpt_path, {
                "model": raw.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                "step": step, "curve": curve, "interval": interval.cpu(), "train_time_s": train_time,
                "ranks": gathered, "config": config, "world_size": world})

    model = torch.compile(raw) if (cfg.compile if cfg.compile is not None else cuda) else raw
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    token_losses = causal_token_losses if cfg.model == "gpt2" else mlm_token_losses
    hooks, step_hooks = list(hooks), list(step_hooks)
    loss_weights: list[torch.Tensor | None] = [None]  # per-domain loss weights a step hook may set
    if step_hooks and world > 1:
        raise MixerError("step hooks run on one process; train without torchrun (world size 1)")

    def run_eval() -> dict[str, float]:
        losses = evaluate(raw, eval_sets, cfg.model, device, cfg.eval_batch_size, autocast, rank, world)
        curve["eval"]["step"].append(step)
        for name, v in losses.items():
            curve["eval"]["loss"][name].append(v)
        return losses

    # --- the loop ----------------------------------------------------------------------------------
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
    bar = _progress(steps, step, enabled=cfg.progress and master)
    it = iter(source.batches)  # after the stream's state is loaded; may draw from the RNG (DataLoader does)
    if resumed_rng is not None:
        set_rng_state(resumed_rng)  # dropout continues exactly where the checkpoint left it
    else:
        torch.manual_seed(cfg.seed + 1 + rank)  # dropout: each rank its own stream
    model.train()
    while step < steps:
        t_step = time.perf_counter()
        step_sums = torch.zeros(2, len(domains), dtype=torch.float64, device=device)
        seen: list[tuple] = []  # (loss, domain, counted, inputs) per micro-step, for the step hooks
        for micro in range(accum):
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                raise MixerError(f"the data source ran out at step {step} of {steps} ({tokens_seen} tokens); its "
                                 "budget covers fewer steps: lower --steps or build a larger stream") from None
            data_wait += time.perf_counter() - t0
            _check_batch(batch, vocab.size, len(domains), preset.max_positions, cfg.model == "bert", step)
            ids, doms = batch["input_ids"].long(), batch["domain_ids"].long()
            attn = batch["attention_mask"].long() if "attention_mask" in batch else None
            real = attn.bool() if attn is not None else torch.ones_like(ids, dtype=torch.bool)
            tokens_per_domain += np.bincount(doms[real].numpy(), minlength=len(domains))
            tokens_seen += int(real.sum())  # this rank's; summed over ranks at the end
            inputs = {"input_ids": ids, "domain_ids": doms}
            if attn is not None:
                inputs["attention_mask"] = attn
            if cfg.model == "bert":
                # Fresh masks every step, from (seed, step, micro, rank) alone: a resumed run redraws the same ones.
                gen = mask_generator(cfg.seed, step, micro, rank)
                inputs["input_ids"], inputs["labels"] = mask_tokens(ids, attn, vocab.special, vocab.corpus_size, gen)
            inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
            # DDP: all-reduce the gradients only on the last micro-step.
            sync = contextlib.nullcontext() if world == 1 or micro == accum - 1 else model.no_sync()
            with sync:
                with autocast:
                    loss, dom, counted = token_losses(model, inputs)  # [B*L] each
                (weighted_mean_loss(loss, dom, counted, loss_weights[0]) / accum).backward()
            step_sums += per_domain_sums(loss, dom, counted, len(domains))
            if step_hooks:
                seen.append((loss.detach(), dom, counted, inputs))
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
        lr = schedule.get_last_lr()[0]
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        interval += step_sums
        if hooks:
            if world > 1:
                torch.distributed.all_reduce(step_sums)
            sums, counts = step_sums.tolist()
            losses = {d: s / c for d, s, c in zip(domains, sums, counts) if c > 0}
            for hook in hooks:
                hook(step, losses, {d: int(c) for d, c in zip(domains, counts)})
        if step_hooks:
            run_step_hooks(step_hooks, step, tuple(domains), seen, source, loss_weights, device)
        if step % cfg.log_every == 0 or step == steps:
            if world > 1:
                torch.distributed.all_reduce(interval)
            sums, counts = interval.tolist()  # syncs the device, so train_time catches up with the GPU here
            curve["train"]["step"].append(step)
            curve["train"]["lr"].append(lr)
            curve["train"]["mean"].append(sum(sums) / max(1.0, sum(counts)))
            for d, s, c in zip(domains, sums, counts):
                curve["train"]["loss"][d].append(s / c if c else None)
            interval.zero_()
            bar.set_postfix(loss=f"{curve['train']['mean'][-1]:.3f}",
                            tok_s=f"{_rate(tokens_seen * world, train_time):.3g}")
        train_time += time.perf_counter() - t_step
        bar.update(1)
        if cfg.eval_every and step % cfg.eval_every == 0 and step < steps:
            run_eval()
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps:
            checkpoint()
    bar.close()

    # --- final eval, checkpoint, run.json ----------------------------------------------------------
    if not curve["eval"]["step"] or curve["eval"]["step"][-1] != step:
        run_eval()
    checkpoint()
    if world > 1:
        counts = torch.tensor([*tokens_per_domain.tolist(), tokens_seen], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(counts)
        tokens_per_domain, tokens_seen = counts[:-1].cpu().numpy().astype(np.int64), int(counts[-1])
    record = make_record(preset, source, curve, domains, tokens_per_domain, tokens_seen, step, warmup, train_time,
                         data_wait, device, world, (count_params(raw), count_params(raw, False)),
                         manifest_sha256(source.corpus_dir), cfg.seed, config)
    if master:
        write_run(out_dir, record)
    if world > 1:
        torch.distributed.barrier()
    return record


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)
