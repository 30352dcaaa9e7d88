"""The trainer's per-step hook: what an online method (DoReMi's Group DRO, any curriculum) sees
after every optimiser step, and how it changes the mixture without the trainer knowing why.

    def hook(s: StepLosses) -> dict[str, float] | None:
        ...                      # s.token_loss [N], s.token_domain [N], s.counted [N], s.batches
        return new_weights       # or None: keep sampling as before

`train(..., step_hooks=[hook])` calls each hook once per step with the per-token losses of all
the step's micro-batches (detached, on the training device) and the micro-batches themselves,
so a hook can score the same tokens with another model. Weights a hook returns go to the data
source's `set_weights` for the next batches; a source without one is refused by name.
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


StepHook = Callable[[StepLosses], "Mapping[str, float] | None"]
