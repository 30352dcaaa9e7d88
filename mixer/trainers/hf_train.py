"""The default trainer: one Hugging Face GPT-2 (causal) or BERT (masked LM), on the loop both
trainers share (`mixer.trainers.steps.run_steps`, here with K = 1).

One line of order: config -> devices/ranks -> data and held-out sets -> model -> optimizer
and schedule -> (resume) -> the shared loop [micro-steps, clip, step, per-domain hooks, log,
eval, checkpoint] -> final eval -> run.json and the loss plot.

    source = DataSource(batches=loader, corpus="corpus/", weights={...}, budget_tokens=N)
    record = train(TrainConfig(model="gpt2", preset="tiny", steps=200), source, "runs/a")

On a GPU: bf16 autocast, torch.compile, fused AdamW, SDPA attention; under `torchrun`, DDP
with one process per GPU, each rank reading its own part of the stream. On a CPU the same
code runs in fp32.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from mixer.core.errors import MixerError
from mixer.core.kinds import ModelKind
from mixer.core.metrics import MetricsConfig, open_metrics
from mixer.formats.run import RunRecord
from mixer.trainers.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    RankState,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mixer.trainers.config import (
    DataSource,
    DomainLossHook,
    TrainConfig,
    linear_schedule,
    precision,
    progress_bar,
    resolve_device,
    warmup_steps,
)
from mixer.trainers.heldout import EvalSet, build_eval_sets, evaluate
from mixer.trainers.hooks import StepHook, run_step_hooks, weighted_mean_loss
from mixer.trainers.models import Vocab, build_model, count_params, vocab_for
from mixer.trainers.objectives import (
    causal_token_losses,
    mask_generator,
    mask_tokens,
    mlm_token_losses,
    per_domain_sums,
)
from mixer.trainers.record import RunOutcome, make_record, run_config, write_run
from mixer.trainers.steps import StepCalls, StepPlan, TrainState, run_steps

__all__ = ["DataSource", "DomainLossHook", "TrainConfig", "train"]  # the settings live in trainers.config


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


@dataclass
class _HFEngine:
    """The step driver's model side for one Hugging Face model (K = 1), DDP-wrapped under torchrun:
    the raw model and its (compiled / DDP) wrapper, the data, the held-out sets, where it runs
    (device, rank of world), the accumulation and autocast, and the per-step hooks."""

    cfg: TrainConfig
    raw: torch.nn.Module
    model: torch.nn.Module
    source: DataSource
    eval_sets: list[EvalSet]
    domains: list[str]
    vocab: Vocab
    device: torch.device
    rank: int
    world: int
    accum: int
    autocast: contextlib.AbstractContextManager
    hooks: list[DomainLossHook]
    step_hooks: list[StepHook]

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.token_losses = causal_token_losses if cfg.model is ModelKind.GPT2 else mlm_token_losses
        self.loss_weights: list[torch.Tensor | None] = [None]  # per-domain loss weights a step hook may set
        self.seen: list[tuple] = []  # (loss, domain, counted, inputs) per micro-step, for the step hooks

    def micro_step(self, batches: list[Mapping[str, torch.Tensor]], step: int, micro: int,
                   state: TrainState) -> torch.Tensor:
        batch = batches[0]
        ids, doms = batch["input_ids"].long(), batch["domain_ids"].long()
        attn = batch["attention_mask"].long() if "attention_mask" in batch else None
        real = attn.bool() if attn is not None else torch.ones_like(ids, dtype=torch.bool)
        state.tokens_per_domain[0] += np.bincount(doms[real].numpy(), minlength=len(self.domains))
        state.tokens_seen[0] += int(real.sum())  # this rank's; summed over ranks at the end
        inputs = {"input_ids": ids, "domain_ids": doms}
        if attn is not None:
            inputs["attention_mask"] = attn
        if self.cfg.model is ModelKind.BERT:
            # Fresh masks every step, from (seed, step, micro, rank) alone: a resumed run redraws the same ones.
            gen = mask_generator(self.cfg.seed, step, micro, self.rank)
            inputs["input_ids"], inputs["labels"] = mask_tokens(ids, attn, self.vocab.special, self.vocab.corpus_size, gen)
        inputs = {k: v.to(self.device, non_blocking=True) for k, v in inputs.items()}
        # DDP: all-reduce the gradients only on the last micro-step.
        sync = contextlib.nullcontext() if self.world == 1 or micro == self.accum - 1 else self.model.no_sync()
        with sync:
            with self.autocast:
                loss, dom, counted = self.token_losses(self.model, inputs)  # [B*L] each
            (weighted_mean_loss(loss, dom, counted, self.loss_weights[0]) / self.accum).backward()
        if self.step_hooks:
            self.seen.append((loss.detach(), dom, counted, inputs))
        return per_domain_sums(loss, dom, counted, len(self.domains))[None]

    def clip(self, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(self.raw.parameters(), max_norm)

    def evaluate(self) -> list[dict[str, float]]:
        return [evaluate(self.raw, self.eval_sets, self.cfg.model, self.device, self.cfg.eval_batch_size,
                         self.autocast, self.rank, self.world)]

    def after_step(self, step: int, step_sums: torch.Tensor) -> None:
        if self.hooks:
            sums_all = step_sums[0].clone()
            self.reduce(sums_all)
            sums, counts = sums_all.tolist()
            losses = {d: s / c for d, s, c in zip(self.domains, sums, counts) if c > 0}
            for hook in self.hooks:
                hook(step, losses, {d: int(c) for d, c in zip(self.domains, counts)})
        if self.step_hooks:
            run_step_hooks(self.step_hooks, step, tuple(self.domains), self.seen, self.source, self.loss_weights,
                           self.device)
            self.seen = []

    def reduce(self, sums: torch.Tensor) -> None:
        if self.world > 1:
            torch.distributed.all_reduce(sums)


def train(cfg: TrainConfig, source: DataSource, out_dir: str | Path, hooks: Iterable[DomainLossHook] = (),
          resume: bool = False, step_hooks: Iterable[StepHook] = (), log: MetricsConfig | None = None) -> RunRecord:
    """Train from random init on `source`, evaluate every domain's held-out split, write
    `out_dir/run.json` (+ checkpoint.pt, loss_curves.png) and return the record. `step_hooks`
    (`mixer.trainers.hooks`) see each step's per-token losses and may return new sampling weights.
    `log`: also send the metrics to TensorBoard / Weights & Biases (`mixer.core.metrics`; rank 0)."""
    # --- config, devices, ranks ---------------------------------------------------------------
    preset = cfg.resolve()
    device, rank, local_rank, world = _setup_device(cfg)
    master = rank == 0
    cuda = device.type == "cuda"
    autocast = precision(device)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if not resume and ckpt_path.exists():
        raise MixerError(f"{out_dir}: holds a checkpoint already; pass --resume to continue it or choose another --out")

    # --- data: corpus, stream, held-out sets --------------------------------------------------
    manifest = source.corpus.manifest
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
    eval_sets = build_eval_sets(source.corpus, cfg.model, vocab, L, cfg.eval_seqs)
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
    warmup = warmup_steps(preset, steps)
    schedule = linear_schedule(optimizer, warmup, steps)

    # --- state that a checkpoint carries --------------------------------------------------------
    state = TrainState.fresh(1, domains, [es.name for es in eval_sets], device)
    resumed_rng = None
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, config, world)
        raw.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        schedule.load_state_dict(ckpt.scheduler)
        state.step, state.curves, state.train_time = ckpt.step, [ckpt.curve], ckpt.train_time_s
        state.interval = ckpt.interval.to(device)[None]
        mine = ckpt.ranks[rank]
        state.tokens_seen[0], state.data_wait = mine.tokens_seen, mine.data_wait_s
        state.tokens_per_domain[0] = np.asarray(mine.tokens_per_domain, dtype=np.int64)
        resumed_rng = mine.rng
        if stream is not None and mine.stream is not None:
            stream.load_state_dict(mine.stream)
    elif resume and master:
        print(f"{ckpt_path}: no checkpoint yet; starting from step 0")

    def checkpoint() -> None:
        per_rank = RankState(rng=rng_state(), stream=stream.state_dict() if stream is not None else None,
                             tokens_seen=int(state.tokens_seen[0]),
                             tokens_per_domain=state.tokens_per_domain[0].tolist(), data_wait_s=state.data_wait)
        gathered: list[Any] = [per_rank]
        if world > 1:
            gathered = [None] * world
            torch.distributed.all_gather_object(gathered, per_rank)
        if master:
            save_checkpoint(ckpt_path, Checkpoint(
                model=raw.state_dict(), optimizer=optimizer.state_dict(), scheduler=schedule.state_dict(),
                step=state.step, curve=state.curves[0], interval=state.interval[0].cpu(),
                train_time_s=state.train_time, ranks=tuple(gathered), config=config, world_size=world))

    model = torch.compile(raw) if (cfg.compile if cfg.compile is not None else cuda) else raw
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    hooks, step_hooks = list(hooks), list(step_hooks)
    if step_hooks and world > 1:
        raise MixerError("step hooks run on one process; train without torchrun (world size 1)")
    engine = _HFEngine(cfg=cfg, raw=raw, model=model, source=source, eval_sets=eval_sets, domains=domains, vocab=vocab,
                       device=device, rank=rank, world=world, accum=accum, autocast=autocast, hooks=hooks,
                       step_hooks=step_hooks)

    # --- the loop ----------------------------------------------------------------------------------
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(steps, state.step, enabled=cfg.progress and master)
    it = iter(source.batches)  # after the stream's state is loaded; may draw from the RNG (DataLoader does)
    if resumed_rng is not None:
        set_rng_state(resumed_rng)  # dropout continues exactly where the checkpoint left it
    else:
        torch.manual_seed(cfg.seed + 1 + rank)  # dropout: each rank its own stream
    model.train()
    with open_metrics(log if master else None, config) as metrics:
        run_steps(engine, [it], optimizer, schedule, state,
                  plan=StepPlan(steps=steps, cfg=cfg, preset=preset, vocab_size=vocab.size, domains=domains, world=world),
                  calls=StepCalls(bar=bar, checkpoint=checkpoint, metrics=[metrics]))

    # --- checkpoint, run.json ------------------------------------------------------------------------
    checkpoint()
    tokens_per_domain, tokens_seen = state.tokens_per_domain[0], int(state.tokens_seen[0])
    if world > 1:
        counts = torch.tensor([*tokens_per_domain.tolist(), tokens_seen], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(counts)
        tokens_per_domain, tokens_seen = counts[:-1].cpu().numpy().astype(np.int64), int(counts[-1])
    outcome = RunOutcome(curve=state.curves[0], domains=domains, tokens_per_domain=tokens_per_domain,
                         tokens_seen=tokens_seen, steps=state.step, warmup=warmup, train_time=state.train_time,
                         data_wait=state.data_wait, device=device, world=world,
                         n_params=(count_params(raw), count_params(raw, False)))
    record = make_record(preset, source, outcome, seed=cfg.seed, config=config)
    if master:
        write_run(out_dir, record)
    if world > 1:
        torch.distributed.barrier()
    return record
