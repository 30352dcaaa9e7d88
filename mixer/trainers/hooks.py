"""The trainer's per-step hook: what an online method (DoReMi's Group DRO, any curriculum) sees
after every optimiser step, and how it changes the mixture without the trainer knowing why.

    def hook(s: StepLosses) -> dict[str, float] | None:
        ...                      # s.token_loss [N], s.token_domain [N], s.counted [N], s.batches
        return new_weights       # or None: keep sampling as before

`train(..., step_hooks=[hook])` calls each hook once per step with the per-token losses of all
the step's micro-batches (detached, on the training device) and the micro-batches themselves,
so a hook can score the same tokens with another model. Weights a hook returns go to the data
source's `set_weights` for the next batches (a source without one is refused by name); a
`StepUpdate` may instead (or also) set per-domain **loss weights**: from the next step the
training loss is `Σ_t w[d_t] ℓ_t / Σ_t w[d_t]` over the scored tokens (`weighted_mean_loss`),
the way DoReMi's official code trains its proxy on batches sampled at fixed weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch


@dataclass(frozen=True)
class StepLosses:
    step: int  # optimiser steps done (1 after the first)
    domains: tuple[str, ...]  # token_domain indexes this tuple (the corpus's sorted domain names)
    token_loss: torch.Tensor  # [N] float32 per-token training loss of the step, N = micro-steps x B x L
    token_domain: torch.Tensor  # [N] int64 domain index of each token (0 where not counted)
    counted: torch.Tensor  # [N] float 1.0 where the token is scored (a next token / a masked position)
    batches: tuple[dict[str, torch.Tensor], ...]  # the micro-batches as the model saw them

    def per_domain_mean(self) -> dict[str, float]:
        """Mean loss of every domain that had scored tokens in the step."""
        n = len(self.domains)
        sums = torch.zeros(n, dtype=torch.float64, device=self.token_loss.device)
        cnt = torch.zeros_like(sums)
        sums.index_add_(0, self.token_domain, (self.token_loss * self.counted).double())
        cnt.index_add_(0, self.token_domain, self.counted.double())
        return {d: float(s / c) for d, s, c in zip(self.domains, sums.tolist(), cnt.tolist()) if c > 0}


@dataclass(frozen=True)
class StepUpdate:
    """What a hook may change: the sampling weights, the per-domain loss weights, or both."""
    weights: Mapping[str, float] | None = None
    loss_weights: Mapping[str, float] | None = None


StepHook = Callable[[StepLosses], "Mapping[str, float] | StepUpdate | None"]


def weighted_mean_loss(loss: torch.Tensor, domain: torch.Tensor, counted: torch.Tensor,
                       domain_weights: torch.Tensor | None) -> torch.Tensor:
    """The step's training loss: the mean over scored tokens, or with `domain_weights` [m] the
    mean weighted by each token's domain weight."""
    if domain_weights is None:
        return (loss * counted).sum() / counted.sum().clamp(min=1)
    w = domain_weights[domain] * counted
    return (loss * w).sum() / w.sum().clamp(min=1e-12)


def run_step_hooks(step_hooks, step: int, domains: tuple[str, ...], seen: list[tuple], source,
                   loss_weights: list, device) -> None:
    """Call every hook with the step's per-token losses; new sampling weights go to the source's
    `set_weights`, new loss weights into `loss_weights[0]` (read by the next step's loss)."""
    from mixer.core.errors import MixerError

    info = StepLosses(step=step, domains=domains, token_loss=torch.cat([s[0] for s in seen]),
                      token_domain=torch.cat([s[1] for s in seen]), counted=torch.cat([s[2] for s in seen]),
                      batches=tuple(s[3] for s in seen))
    for hook in step_hooks:
        new = hook(info)
        if new is None:
            continue
        update = new if isinstance(new, StepUpdate) else StepUpdate(weights=new)
        if update.weights is not None:
            if source.set_weights is None:
                raise MixerError(f"a step hook returned new weights at step {step} but the data source cannot change "
                                 "them; use a source with set_weights (mixer.trainers.weighted.WeightedDomainSampler)")
            source.set_weights(dict(update.weights))
        if update.loss_weights is not None:
            unknown = sorted(set(update.loss_weights) - set(domains))
            if unknown:
                raise MixerError(f"a step hook returned a loss weight for {unknown[0]!r}, not a domain of the corpus")
            loss_weights[0] = torch.tensor([float(update.loss_weights.get(d, 0.0)) for d in domains],
                                           dtype=torch.float32, device=device)
