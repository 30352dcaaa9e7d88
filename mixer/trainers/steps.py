"""The step driver both trainers run (`run_steps`): K proxies stepped together (K = 1 for the default
trainer), with what every run needs done the same way.

    state = TrainState.fresh(K, domains, eval_names, device)
    run_steps(engine, iterators, optimizer, schedule, state, plan=StepPlan(...), calls=StepCalls(bar))

The loop owns the order of a step and its bookkeeping: draw one batch per proxy per micro-step
(timing the wait), check it, let the engine run forward and backward, clip, step the optimiser
and the schedule, add the step's per-domain loss sums into the log interval, write the curves
every `log_every` steps, evaluate every `eval_every` and checkpoint every `checkpoint_every`.
The engine owns the model side: how a micro-batch becomes a loss and gradients
(`mixer.trainers.hf_train` for one Hugging Face model, under DDP when launched by torchrun;
`mixer.trainers.batched` for K stacked proxies), gradient clipping, held-out evaluation, and
what runs after a step (the default trainer's domain-loss and step hooks).

`metrics` (one `mixer.core.metrics.Metrics` per proxy, or none) receive at every log point the
interval's mean training loss and per-domain losses, the learning rate, tokens/s and the time
spent waiting for data, and at every evaluation each held-out set's loss.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch

from mixer.core.errors import MixerError
from mixer.core.kinds import ModelKind
from mixer.trainers.config import TrainConfig, check_batch
from mixer.trainers.presets import ModelPreset
from mixer.trainers.record import rate


class Engine(Protocol):
    """The model side of `run_steps` for K proxies."""

    def micro_step(self, batches: list[Mapping[str, torch.Tensor]], step: int, micro: int,
                   state: "TrainState") -> torch.Tensor:
        """Forward and backward of one micro-batch per proxy (the loss already divided by the
        micro-steps); add each proxy's real tokens to `state`; -> [K, 2, domains] float64: each
        proxy's summed token loss and scored-token count per domain."""
        ...

    def clip(self, max_norm: float) -> None: ...  # each proxy's global gradient norm to max_norm

    def evaluate(self) -> list[dict[str, float]]: ...  # each proxy's held-out loss per set

    def after_step(self, step: int, step_sums: torch.Tensor) -> None: ...  # hooks: step_sums [K, 2, domains]

    def reduce(self, sums: torch.Tensor) -> None: ...  # sum over ranks in place (identity on one process)


@dataclass
class TrainState:
    """Everything the loop advances, and what a checkpoint carries of it."""

    step: int
    tokens_seen: np.ndarray  # int64[K]: real (unpadded) tokens per proxy, this rank's
    tokens_per_domain: np.ndarray  # int64[K, domains]
    train_time: float
    data_wait: float
    curves: list[dict[str, Any]]  # per proxy: {"train": {step, loss{domain}, mean, lr}, "eval": {step, loss{set}}}
    interval: torch.Tensor  # [K, 2, domains] float64: loss sums and counts since the last log point

    @classmethod
    def fresh(cls, K: int, domains: Sequence[str], eval_names: Sequence[str], device: torch.device) -> "TrainState":
        curves = [{"train": {"step": [], "loss": {d: [] for d in domains}, "mean": [], "lr": []},
                   "eval": {"step": [], "loss": {n: [] for n in eval_names}}} for _ in range(K)]
        return cls(step=0, tokens_seen=np.zeros(K, dtype=np.int64),
                   tokens_per_domain=np.zeros((K, len(domains)), dtype=np.int64), train_time=0.0, data_wait=0.0,
                   curves=curves, interval=torch.zeros(K, 2, len(domains), dtype=torch.float64, device=device))

    def record_eval(self, losses: list[dict[str, float]]) -> None:
        for curve, proxy in zip(self.curves, losses):
            curve["eval"]["step"].append(self.step)
            for name, v in proxy.items():
                curve["eval"]["loss"][name].append(v)


@dataclass(frozen=True)
class StepPlan:
    """What decides the steps: how many, the run's settings and preset, the vocabulary the batches
    are checked against, the domains in sidecar order, and the number of ranks."""

    steps: int
    cfg: TrainConfig
    preset: ModelPreset
    vocab_size: int
    domains: Sequence[str]
    world: int = 1


@dataclass(frozen=True)
class StepCalls:
    """What the steps report to: the progress bar, the checkpoint writer, a per-step callback and
    one metrics logger per proxy (`mixer.core.metrics`)."""

    bar: Any
    checkpoint: Callable[[], None] | None = None
    on_step: Callable[[int], None] | None = None
    metrics: Sequence[Any] = ()


def run_steps(engine: Engine, iterators: Sequence[Iterator[Mapping[str, torch.Tensor]]],
              optimizer: torch.optim.Optimizer, schedule: Any, state: TrainState, *, plan: StepPlan,
              calls: StepCalls) -> None:
    """Step from `state.step` to `plan.steps`, then evaluate at the last step if it has not been."""
    steps, cfg, preset, vocab_size, domains, world = (plan.steps, plan.cfg, plan.preset, plan.vocab_size,
                                                      plan.domains, plan.world)
    bar, checkpoint, on_step, metrics = calls.bar, calls.checkpoint, calls.on_step, calls.metrics
    accum, bert = preset.grad_accum, preset.model is ModelKind.BERT
    K = len(iterators)

    def evaluate() -> None:
        losses = engine.evaluate()
        state.record_eval(losses)
        for log, proxy in zip(metrics, losses):
            log.scalars(state.step, {f"eval/loss/{name}": v for name, v in proxy.items()})

    # At least ~20 points on every training curve: the solver reads a proxy's last fifth of steps
    # to tell whether it is still learning, which 4 points of a 31-step run cannot say.
    log_every = max(1, min(cfg.log_every, steps // 20))
    while state.step < steps:
        t_step = time.perf_counter()
        step_sums = torch.zeros_like(state.interval)
        for micro in range(accum):
            t0 = time.perf_counter()
            try:
                batches = [next(it) for it in iterators]
            except StopIteration:
                what = "the data source" if K == 1 else "a proxy's data source"
                raise MixerError(f"{what} ran out at step {state.step} of {steps} ({int(state.tokens_seen.max())} "
                                 "tokens); its budget covers fewer steps: lower --steps or give a larger "
                                 "budget") from None
            state.data_wait += time.perf_counter() - t0
            for b in batches:
                check_batch(b, vocab_size, len(domains), preset.max_positions, bert, state.step)
            step_sums += engine.micro_step(batches, state.step, micro, state)
        if cfg.grad_clip > 0:
            engine.clip(cfg.grad_clip)
        lr = schedule.get_last_lr()[0]
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.interval += step_sums
        engine.after_step(state.step, step_sums)
        if state.step % log_every == 0 or state.step == steps:
            engine.reduce(state.interval)
            rows = state.interval.tolist()  # one device sync per log point: train_time catches up with the GPU
            for curve, (sums, counts) in zip(state.curves, rows):
                c = curve["train"]
                c["step"].append(state.step)
                c["lr"].append(lr)
                c["mean"].append(sum(sums) / max(1.0, sum(counts)))
                for d, s, n in zip(domains, sums, counts):
                    c["loss"][d].append(s / n if n else None)
            state.interval.zero_()
            elapsed = state.train_time + time.perf_counter() - t_step
            for k, log in enumerate(metrics):
                c = state.curves[k]["train"]
                log.scalars(state.step, {"train/loss": c["mean"][-1], "train/lr": lr,
                                         "train/tokens_per_s": rate(int(state.tokens_seen[k]) * world, elapsed),
                                         "train/data_wait_s": state.data_wait,
                                         "train/data_wait_share": state.data_wait / elapsed if elapsed > 0 else 0.0,
                                         **{f"train/loss/{d}": c["loss"][d][-1] for d in domains}})
            bar.set_postfix(loss=f"{state.curves[0]['train']['mean'][-1]:.3f}",
                            tok_s=f"{rate(int(state.tokens_seen.sum()) * world, state.train_time):.3g}")
        state.train_time += time.perf_counter() - t_step
        bar.update(1)
        if on_step is not None:
            on_step(state.step)
        if cfg.eval_every and state.step % cfg.eval_every == 0 and state.step < steps:
            evaluate()
        if checkpoint is not None and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 \
                and state.step < steps:
            checkpoint()
    bar.close()
    if not state.curves[0]["eval"]["step"] or state.curves[0]["eval"]["step"][-1] != state.step:
        evaluate()
