"""Train K GPT-2 or BERT proxies of one shape together: one model build, one compile, one
evaluation setup, one kernel per op for all K (`mixer.trainers.compact.StackedGPT2` / `StackedBert`).

    proxies = [Proxy(source_from_corpus(...weights_k...), out_dir=f"runs/{k}", seed=k) for k in range(K)]
    records = train_batched(TrainConfig(model="gpt2", preset="tiny"), proxies)

Why: the cost of DDO and AutoScale is proxy training, and a small proxy alone leaves a GPU
almost idle. Each proxy keeps its own data source (its mixture, its data seed), model seed,
dropout generator, MLM masks, optimiser state, gradient clipping and curve; nothing of one reaches
another, so on a CPU K proxies trained together give, bit for bit, the losses each gives alone
(`train_batched` with that one proxy; a test asserts equality). The initial weights are those
`mixer.trainers.models.build_model` draws for the seed (the Hugging Face initialisation), and the
run.json / loss_curves.png written per proxy are the same files `mixer.trainers.hf_train.train` writes,
and the step itself is the loop both trainers run (`mixer.trainers.steps.run_steps`), so the
schedule, logging, evaluation points and data-wait timing are the default trainer's.
BERT proxies are masked as `mixer.trainers.hf_train.train` masks them (15 %, 80/10/10, seeded by (seed,
step, micro-step, rank 0)), so with dropout 0 a proxy follows the HF trainer's run to fp32
rounding (a test bounds the gap); with dropout the two draw different dropout masks (per-proxy
generators here, the global RNG there).

What it does not do: torchrun, step hooks (DoReMi) and mid-run checkpoints (a proxy is
short; the loop's cache resumes a sweep run by run). All proxies share the preset, steps and
schedule, so they need the same token budget.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from mixer.core.errors import MixerError
from mixer.core.kinds import ModelKind
from mixer.core.metrics import MetricsConfig, open_metrics
from mixer.formats.run import RUN_NAME, RunRecord
from mixer.trainers.compact import StackedBert, StackedGPT2, mlm_chunk, mlm_targets
from mixer.trainers.config import (
    DataSource,
    TrainConfig,
    linear_schedule,
    precision,
    progress_bar,
    resolve_device,
    warmup_steps,
)
from mixer.trainers.heldout import EvalSet, build_eval_sets
from mixer.trainers.models import Vocab, build_model, count_params, vocab_for
from mixer.trainers.objectives import mask_generator, mask_tokens, shift_labels
from mixer.trainers.record import RunOutcome, make_record, run_config, write_run
from mixer.trainers.steps import StepCalls, StepPlan, TrainState, run_steps

TRAINER = "stacked"  # recorded in run.json provenance: which trainer wrote the run


@dataclass(frozen=True)
class Proxy:
    """One proxy of a batch: its data, where its run folder goes, its model seed, and where its
    metrics go (TensorBoard / Weights & Biases: each proxy its own run)."""

    source: DataSource
    out_dir: str | Path
    seed: int = 0
    log: MetricsConfig | None = None


def _device(cfg: TrainConfig) -> torch.device:

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise MixerError("train_batched runs in one process; start it without torchrun")
    return torch.device(resolve_device(cfg))


def _clip(params: list[torch.Tensor], max_norm: float) -> None:
    """Per-proxy global gradient-norm clipping, as torch's clip_grad_norm_ on each proxy alone.
    The norms are taken over each proxy's slice (a view shaped like one proxy's gradient), so
    the reduction runs in the order it runs for a lone proxy (a norm over dims 1.. does not)."""
    K = params[0].shape[0]
    norms = torch._foreach_norm([p.grad[k] for k in range(K) for p in params])  # one fused kernel on CUDA
    total = torch.linalg.vector_norm(torch.stack(norms).view(K, len(params)), dim=1)  # [K]
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(coef.view(-1, *([1] * (p.ndim - 1))).to(p.grad.dtype))


@torch.no_grad()
def evaluate_stacked(model: StackedGPT2 | StackedBert, sets: Sequence[EvalSet], device: torch.device,
                     batch_size: int, autocast, chunk: int = 0) -> list[dict[str, float]]:
    """Every proxy's mean held-out token loss on every set: each batch goes through all K at once.
    BERT (`chunk` > 0: its head rows per chunk): the sets' fixed masks, scored on the masked rows."""
    was = model.training
    model.eval()
    K = model.K
    sums = torch.zeros(K, len(sets), 2, dtype=torch.float64, device=device)
    for i, es in enumerate(sets):
        for a in range(0, len(es.input_ids), batch_size):
            ids = es.input_ids[a:a + batch_size]
            stacked = ids.expand(K, *ids.shape).to(device)
            if isinstance(model, StackedBert):
                idx, labels = (t.to(device) for t in mlm_targets(es.labels[a:a + batch_size].expand(K, *ids.shape),
                                                                 chunk))
                attn = es.attention_mask[a:a + batch_size].expand(K, *ids.shape).to(device)
                with autocast:
                    _, tok = model.loss(stacked, attn, idx, labels, torch.zeros(labels.shape, device=device), chunk)
            else:
                labels = shift_labels(es.labels[a:a + batch_size]).expand(K, *ids.shape).to(device)
                with autocast:
                    _, tok = model.loss(stacked, labels, torch.zeros(stacked.shape, device=device))
            sums[:, i, 0] += tok.double().sum(1)
            sums[:, i, 1] += (labels != -100).reshape(K, -1).sum(1)
    model.train(was)
    out = []
    for k in range(K):
        out.append({es.name: (t / c if c else float("nan")) for es, (t, c) in zip(sets, sums[k].tolist())})
    return out


def train_batched(cfg: TrainConfig, proxies: Sequence[Proxy], progress_desc: str | None = None,
                  on_step: Callable[[int], None] | None = None) -> list[RunRecord]:
    """Train every proxy from its seed's initialisation on its own source; write each one's
    run.json and loss_curves.png into its out_dir; return the records in the proxies' order.
    `on_step(step)` is called after every optimiser step (benchmarks time the steady state)."""
    preset = cfg.resolve()
    bert = preset.model is ModelKind.BERT
    if not proxies:
        raise MixerError("train_batched: no proxies given")
    if cfg.extra_eval:
        raise MixerError("batched proxies evaluate their own corpus only; drop extra_eval or train one by one")
    device = _device(cfg)
    cuda = device.type == "cuda"
    K = len(proxies)
    corpus = proxies[0].source.corpus
    for p in proxies[1:]:
        if p.source.corpus.sha256 != corpus.sha256:
            raise MixerError(f"{p.source.corpus_dir}: batched proxies must read one corpus ({corpus.folder})")
    manifest = corpus.manifest
    domains = manifest.domain_names
    nd = len(domains)
    vocab = vocab_for(preset.model, manifest)
    B, L, accum = preset.batch_size, preset.seq_len, preset.grad_accum
    tokens_per_step = B * L * accum
    budgets = {p.source.budget_tokens for p in proxies}
    if cfg.steps is None and len(budgets) > 1:
        raise MixerError(f"batched proxies need one token budget (got {sorted(b or 0 for b in budgets)}); "
                         "batch runs of equal budget together")
    steps = cfg.steps or ((next(iter(budgets)) or 0) // tokens_per_step)
    if steps <= 0:
        raise MixerError(f"no steps to train: give --steps, or a budget of at least {tokens_per_step} tokens")
    for p in proxies:
        if p.source.seq_len is not None and p.source.seq_len != L:
            raise MixerError(f"the stream's sequences are {p.source.seq_len} tokens but the run uses seq_len {L}; "
                             f"pass --seq-len {p.source.seq_len}")
        if (Path(p.out_dir) / RUN_NAME).exists():
            raise MixerError(f"{p.out_dir}: holds a finished run already; choose another folder")
    eval_sets = build_eval_sets(corpus, preset.model, vocab, L, cfg.eval_seqs)

    # --- K models built once as one, one optimizer over the stacked parameters --------------------
    seeds = [int(p.seed) for p in proxies]
    hf = [build_model(preset, vocab, s) for s in seeds]
    n_params = (count_params(hf[0]), count_params(hf[0], False))
    model = (StackedBert if bert else StackedGPT2).from_hf(hf, dropout=preset.dropout).to(device)
    chunk = mlm_chunk(vocab.size, device) if bert else 0
    del hf
    model.seed([s + 1 for s in seeds])  # as train(): dropout from seed + 1
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 3], "weight_decay": preset.weight_decay},
                                   {"params": [p for p in params if p.dim() < 3], "weight_decay": 0.0}],
                                  lr=preset.lr, betas=cfg.betas, eps=1e-8, fused=cuda)
    warmup = warmup_steps(preset, steps)
    schedule = linear_schedule(optimizer, warmup, steps)
    # Compiled on a GPU when dropout is off: with dropout, K per-proxy generators enter the graph
    # (graph breaks), so the default keeps that case eager. The chunked loss stays eager always.
    use_compile = cfg.compile if cfg.compile is not None else (cuda and preset.dropout == 0)
    if use_compile:
        model.hidden = torch.compile(model.hidden)

    state = TrainState.fresh(K, domains, [es.name for es in eval_sets], device)
    engine = _StackedEngine(model=model, proxies=proxies, params=params, eval_sets=eval_sets, vocab=vocab, nd=nd,
                            accum=accum, chunk=chunk, device=device, eval_batch_size=cfg.eval_batch_size)
    bar = progress_bar(steps, 0, enabled=cfg.progress)
    if progress_desc:
        bar.set_description(progress_desc)
    model.train()
    with contextlib.ExitStack() as stack:
        metrics = [stack.enter_context(open_metrics(p.log, {**asdict(cfg), "seed": p.seed})) for p in proxies]
        run_steps(engine, [iter(p.source.batches) for p in proxies], optimizer, schedule, state,
                  plan=StepPlan(steps=steps, cfg=cfg, preset=preset, vocab_size=vocab.size, domains=domains),
                  calls=StepCalls(bar=bar, on_step=on_step, metrics=metrics))
    return [_record(cfg, preset, p, K, RunOutcome(
                curve=state.curves[k], domains=domains, tokens_per_domain=state.tokens_per_domain[k],
                tokens_seen=int(state.tokens_seen[k]), steps=steps, warmup=warmup, train_time=state.train_time,
                data_wait=state.data_wait, device=device, world=1, n_params=n_params), vocab.size)
            for k, p in enumerate(proxies)]


@dataclass
class _StackedEngine:
    """The step driver's model side for K stacked proxies: one forward and backward for all K.
    `nd`: domains; `chunk`: rows of the fused LM loss at a time."""

    model: StackedGPT2 | StackedBert
    proxies: Sequence[Proxy]
    params: list[torch.Tensor]
    eval_sets: list[EvalSet]
    vocab: Vocab
    nd: int
    accum: int
    chunk: int
    device: torch.device
    eval_batch_size: int

    def __post_init__(self) -> None:
        self.cuda = self.device.type == "cuda"
        self.autocast = precision(self.device)
        self.offsets = (torch.arange(len(self.proxies), device=self.device) * self.nd)[:, None]

    def micro_step(self, batches: list, step: int, micro: int, state: TrainState) -> torch.Tensor:
        K, model = len(batches), self.model
        if isinstance(model, StackedBert):
            doms, counted, (total, tok) = _bert_micro(self, batches, step, micro, state)
            total.backward()
            return _domain_sums(doms, counted, tok, self.offsets, self.nd)
        B, L = batches[0]["input_ids"].shape
        # [K, B, L]; on a GPU stacked into pinned memory, so the copies below do not block the host.
        # Fresh buffers each time: the caching host allocator reuses one only after its copy is done.
        pinned = [torch.empty(K, B, L, dtype=torch.long, pin_memory=True) for _ in range(2)] if self.cuda else None
        ids = torch.stack([b["input_ids"].long() for b in batches], out=pinned[0] if pinned else None)
        doms = torch.stack([b["domain_ids"].long() for b in batches], out=pinned[1] if pinned else None)
        for k in range(K):
            state.tokens_per_domain[k] += np.bincount(doms[k].reshape(-1).numpy(), minlength=self.nd)
        state.tokens_seen += B * L
        ids, doms = ids.to(self.device, non_blocking=True), doms.to(self.device, non_blocking=True)
        labels = shift_labels(ids.view(K * B, L)).view(K, B, L)
        counted = (labels != -100).float()
        weight = counted / (counted.sum((1, 2), keepdim=True).clamp(min=1) * self.accum)
        with self.autocast:
            total, tok = model.loss(ids, labels, weight)
        total.backward()
        return _domain_sums(torch.nn.functional.pad(doms[:, :, 1:], (0, 1)), counted, tok, self.offsets, self.nd)

    def clip(self, max_norm: float) -> None:
        _clip(self.params, max_norm)

    def evaluate(self) -> list[dict[str, float]]:
        return evaluate_stacked(self.model, self.eval_sets, self.device, self.eval_batch_size, self.autocast,
                                self.chunk)

    def after_step(self, step: int, step_sums: torch.Tensor) -> None:
        pass  # no hooks: refused up front

    def reduce(self, sums: torch.Tensor) -> None:
        pass  # one process


def _domain_sums(doms: torch.Tensor, counted: torch.Tensor, tok: torch.Tensor, offsets: torch.Tensor,
                 nd: int) -> torch.Tensor:
    """[K, 2, nd]: each proxy's summed loss and scored count per domain (no host sync).
    doms, counted, tok: [K, ...] of one shape, the domain of each scored token."""
    K = tok.shape[0]
    dom = torch.where(counted.bool(), doms, 0).reshape(K, -1)
    flat = torch.zeros(2, K * nd, dtype=torch.float64, device=tok.device)
    flat[0].index_add_(0, (dom + offsets).view(-1), tok.reshape(-1).double())
    flat[1].index_add_(0, (dom + offsets).view(-1), counted.reshape(-1).double())
    return flat.view(2, K, nd).transpose(0, 1)


def _bert_micro(engine: _StackedEngine, batches: list, step: int, micro: int, state: TrainState):
    """One BERT micro-step of K proxies: each proxy's masks as `mixer.trainers.hf_train.train` draws
    them alone (seeded by its seed, step, micro-step, rank 0), on the CPU; only the masked
    positions go to the head. -> (domain, counted, (loss with gradients, per-target losses)) per
    target row."""
    model, proxies, vocab, accum = engine.model, engine.proxies, engine.vocab, engine.accum
    chunk, device, autocast = engine.chunk, engine.device, engine.autocast
    tokens_per_domain, tokens_seen = state.tokens_per_domain, state.tokens_seen
    ids, attn, doms = ([b[key].long() for b in batches] for key in ("input_ids", "attention_mask", "domain_ids"))
    masked, labels = [], []
    for k, p in enumerate(proxies):
        real = attn[k].bool()
        tokens_per_domain[k] += np.bincount(doms[k][real].numpy(), minlength=tokens_per_domain.shape[1])
        tokens_seen[k] += int(real.sum())
        m, lab = mask_tokens(ids[k], attn[k], vocab.special, vocab.corpus_size, mask_generator(int(p.seed), step, micro))
        masked.append(m)
        labels.append(lab)
    idx, targets = mlm_targets(torch.stack(labels), chunk)
    sel_doms = torch.stack(doms).reshape(len(proxies), -1).gather(1, idx)
    counted = (targets >= 0).float()
    weight = counted / (counted.sum(1, keepdim=True).clamp(min=1) * accum)
    cuda = device.type == "cuda"
    ids, attn, idx, targets, doms, counted, weight = (
        (t.pin_memory() if cuda else t).to(device, non_blocking=True)
        for t in (torch.stack(masked), torch.stack(attn), idx, targets, sel_doms, counted, weight))
    with autocast:
        out = model.loss(ids, attn, idx, targets, weight, chunk)
    return doms, counted, out


def _record(cfg, preset, proxy: Proxy, K: int, outcome: RunOutcome, vocab_size: int) -> RunRecord:
    """Proxy k's run.json (and plot), the files `mixer.trainers.hf_train.train` writes; train time is the
    batch's, shared by its K proxies."""
    config = run_config(cfg, preset, outcome.steps, 1, vocab_size, seed=proxy.seed)
    record = make_record(preset, proxy.source, outcome, seed=proxy.seed, config=config,
                         provenance={"trainer": TRAINER, "proxies_together": K})
    write_run(proxy.out_dir, record)
    return record
