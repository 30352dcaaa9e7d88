"""A compact GPT-2 that holds K models of the same shape at once (a leading proxy dimension).

    stack = StackedGPT2.from_hf([hf_a, hf_b, hf_c])      # K = 3 GPT2LMHeadModel -> one module
    loss, tok = stack.loss(ids, labels, token_weight)   # ids [K, B, L]: proxy k reads ids[k]
    hf_b.load_state_dict(stack.hf_state_dict(1))        # proxy 1 back into the Hugging Face class

Why not the Hugging Face class, K times: a proxy of a DDO sweep is small (GPT-2 tiny uses ~1 % of
a GPU), so K of them one after another leave the device idle between kernel launches. Here every
matrix product is one batched `baddbmm` over the K proxies, attention one SDPA call over K·B
sequences, so K proxies cost about the launches of one. The architecture is GPT-2's exactly
(pre-LN blocks, tanh GELU, learned positions, tied LM head; `hf_state_dict` loads into
`GPT2LMHeadModel`, a test compares their logits).

Dropout masks come per proxy (`mixer.trainers.compact.base`), so attention-probability dropout takes
the explicit softmax path; with the attention dropout at 0 (or in evaluation) SDPA's fused
kernels run. The loss is `fused_lm_loss` (`mixer.trainers.compact.loss`): the logits of a whole batch
are never held.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from mixer.trainers.compact.base import Stacked
from mixer.trainers.compact.loss import fused_lm_loss

LN_EPS = 1e-5  # GPT2Config.layer_norm_epsilon


def _hf_names(n_layer: int) -> list[str]:
    names = ["wte.weight", "wpe.weight"]
    for i in range(n_layer):
        names += [f"h.{i}.{m}.{w}" for m in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj")
                  for w in ("weight", "bias")]
    return names + ["ln_f.weight", "ln_f.bias"]


class StackedGPT2(Stacked):
    """K GPT-2 models; parameter `name` is [K, *HF shape] (HF's `transformer.` prefix dropped, '.' -> '__')."""

    def __init__(self, params: dict[str, torch.Tensor], n_head: int, dropout: float = 0.0,
                 attn_dropout: float | None = None):
        super().__init__()
        self.n_layer = sum(1 for n in params if n.endswith("ln_1.weight"))
        self._hold(params, _hf_names(self.n_layer), n_head, dropout, attn_dropout)
        self.K, self.vocab_size, self.d_model = self.wte__weight.shape

    @classmethod
    def from_hf(cls, models: Sequence[torch.nn.Module], dropout: float | None = None) -> "StackedGPT2":
        """Stack K `GPT2LMHeadModel`s (same config); dropout defaults to the config's."""
        cfg = models[0].config
        states = [m.state_dict() for m in models]
        params = {n: torch.stack([s["transformer." + n] for s in states]) for n in _hf_names(cfg.n_layer)}
        return cls(params, cfg.n_head, cfg.resid_pdrop if dropout is None else dropout,
                   cfg.attn_pdrop if dropout is None else dropout)

    def hf_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Proxy k as a `GPT2LMHeadModel` state dict (load with `load_state_dict`)."""
        out = {"transformer." + n: getattr(self, n.replace(".", "__"))[k].detach().clone()
               for n in _hf_names(self.n_layer)}
        out["lm_head.weight"] = out["transformer.wte.weight"]
        return out

    # --- building blocks: every op covers the K proxies at once ------------------------------------
    def _linear(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """HF Conv1D (x @ W + b) for every proxy: x [K, N, in] -> [K, N, out]."""
        return torch.baddbmm(self._p(prefix + ".bias")[:, None, :], x, self._p(prefix + ".weight"))

    def _ln(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return super()._ln(x, prefix, LN_EPS)

    def _attention(self, x: torch.Tensor, i: int, B: int, L: int) -> torch.Tensor:
        K, D, H = self.K, self.d_model, self.n_head
        qkv = self._linear(x, f"h.{i}.attn.c_attn").view(K * B, L, 3, H, D // H)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # [K·B, H, L, hd]
        if self.training and self.attn_dropout > 0:
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D // H))
            causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~causal, float("-inf")).softmax(-1)
            att = att * self._keep((B, H, L, L), self.attn_dropout, x.device).view(K * B, H, L, L).to(att.dtype)
            y = att @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self._linear(y.transpose(1, 2).reshape(K, B * L, D), f"h.{i}.attn.c_proj")

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [K, B, L] -> final hidden states [K, B·L, D] (after ln_f)."""
        K, B, L = ids.shape
        offset = (torch.arange(K, device=ids.device) * self.vocab_size)[:, None, None]
        x = F.embedding(ids + offset, self.wte__weight.view(K * self.vocab_size, self.d_model))
        x = self._drop((x + self.wpe__weight[:, None, :L]).view(K, B * L, self.d_model), self.dropout)
        for i in range(self.n_layer):
            x = x + self._drop(self._attention(self._ln(x, f"h.{i}.ln_1"), i, B, L), self.dropout)
            m = F.gelu(self._linear(self._ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc"), approximate="tanh")
            x = x + self._drop(self._linear(m, f"h.{i}.mlp.c_proj"), self.dropout)
        return self._ln(x, "ln_f")

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """[K, B, L, V] (tests and small evaluations; training uses `loss`)."""
        K, B, L = ids.shape
        return torch.bmm(self.hidden(ids), self.wte__weight.transpose(1, 2)).view(K, B, L, -1)

    def loss(self, ids: torch.Tensor, labels: torch.Tensor, token_weight: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (Σ_k Σ_t w[k,t]·ℓ[k,t] with gradients, per-token losses [K, B·L] detached).
        labels [K, B, L] (-100: not scored); token_weight [K, B, L], 0 where not scored."""
        K = ids.shape[0]
        return fused_lm_loss(self.hidden(ids), self.wte__weight, labels.reshape(K, -1), token_weight.reshape(K, -1))
