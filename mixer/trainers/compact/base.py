"""What the stacked models share: K models of one shape as one module, every parameter [K, *shape].

Dropout draws each proxy's masks from that proxy's own generator, so proxy k follows the same
random stream whatever else trains next to it: K proxies together give, bit for bit on a CPU,
the losses each gives alone (K = 1).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


class Stacked(torch.nn.Module):
    """Parameters named after the Hugging Face state dict ('.' -> '__'), leading dim K."""

    generators: list[torch.Generator] | None = None  # one per proxy: dropout masks
    K: int

    def _hold(self, params: dict[str, torch.Tensor], names: Sequence[str], n_head: int, dropout: float,
              attn_dropout: float | None) -> None:
        """Register `params[name]` (a copy) for every HF parameter name, and the head count and
        dropout rates (attention dropout defaults to `dropout`)."""
        self.n_head, self.dropout = n_head, float(dropout)
        self.attn_dropout = float(dropout if attn_dropout is None else attn_dropout)
        for name in names:
            self.register_parameter(name.replace(".", "__"), torch.nn.Parameter(params[name].clone()))

    def seed(self, seeds: Sequence[int]) -> None:
        """One dropout generator per proxy, on the parameters' device."""
        dev = next(self.parameters()).device
        self.generators = [torch.Generator(device=dev).manual_seed(int(s)) for s in seeds]

    def _p(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "__"))

    def _ln(self, x: torch.Tensor, prefix: str, eps: float) -> torch.Tensor:
        y = F.layer_norm(x, x.shape[-1:], eps=eps)
        return torch.addcmul(self._p(prefix + ".bias")[:, None, :], y, self._p(prefix + ".weight")[:, None, :])

    def _keep(self, shape: tuple[int, ...], p: float, device: torch.device) -> torch.Tensor:
        """[K, *shape] keep masks scaled by 1/(1-p), proxy k's from its own generator."""
        if self.generators is None or len(self.generators) != self.K:
            raise RuntimeError(f"{type(self).__name__}: call seed([...]) with one seed per proxy before training "
                               "with dropout")
        keep = torch.stack([torch.rand(shape, generator=g, device=device) >= p for g in self.generators])
        return keep.to(torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type)
                       else torch.float32) / (1 - p)

    def _drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not self.training or p == 0.0:
            return x
        return x * self._keep(tuple(x.shape[1:]), p, x.device).to(x.dtype)
