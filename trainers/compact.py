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

Dropout draws each proxy's masks from that proxy's own generator, so proxy k follows the same
random stream whatever else trains next to it: K proxies together give, bit for bit on a CPU,
the losses each gives alone (K = 1). Attention-probability dropout therefore takes the explicit
softmax path; with the attention dropout at 0 (or in evaluation) SDPA's fused kernels run.

The loss never holds the logits of a whole batch: `fused_lm_loss` computes the LM head, the
cross-entropy and their gradients chunk by chunk in the forward pass (the per-token weights are
known before it runs), so memory is O(chunk · vocab), not O(B·L·vocab) in fp32.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

LN_EPS = 1e-5  # GPT2Config.layer_norm_epsilon
# Logits elements per proxy in one chunk of the fused loss: 128 MiB in fp32 on a GPU; 8 MiB on a
# CPU, where larger blocks go to fresh mmaps and their page faults cost more than the smaller matmuls.
CHUNK_ELEMENTS = {"cuda": 1 << 25, "cpu": 1 << 21}


def _hf_names(n_layer: int) -> list[str]:
    names = ["wte.weight", "wpe.weight"]
    for i in range(n_layer):
        names += [f"h.{i}.{m}.{w}" for m in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj")
                  for w in ("weight", "bias")]
    return names + ["ln_f.weight", "ln_f.bias"]


class StackedGPT2(torch.nn.Module):
    """K GPT-2 models; parameter `name` is [K, *HF shape] (HF's `transformer.` prefix dropped, '.' -> '__')."""

    def __init__(self, params: dict[str, torch.Tensor], n_head: int, dropout: float = 0.0,
                 attn_dropout: float | None = None):
        super().__init__()
        self.n_layer = sum(1 for n in params if n.endswith("ln_1.weight"))
        self.n_head, self.dropout = n_head, float(dropout)
        self.attn_dropout = float(dropout if attn_dropout is None else attn_dropout)
        for name in _hf_names(self.n_layer):
            self.register_parameter(name.replace(".", "__"), torch.nn.Parameter(params[name].clone()))
        self.K, self.vocab_size, self.d_model = self.wte__weight.shape
        self.generators: list[torch.Generator] | None = None  # one per proxy: dropout masks

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

    def seed(self, seeds: Sequence[int]) -> None:
        """One dropout generator per proxy, on the parameters' device."""
        dev = self.wte__weight.device
        self.generators = [torch.Generator(device=dev).manual_seed(int(s)) for s in seeds]

    # --- building blocks: every op covers the K proxies at once ------------------------------------
    def _p(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "__"))

    def _linear(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """HF Conv1D (x @ W + b) for every proxy: x [K, N, in] -> [K, N, out]."""
        return torch.baddbmm(self._p(prefix + ".bias")[:, None, :], x, self._p(prefix + ".weight"))

    def _ln(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        y = F.layer_norm(x, x.shape[-1:], eps=LN_EPS)
        return torch.addcmul(self._p(prefix + ".bias")[:, None, :], y, self._p(prefix + ".weight")[:, None, :])

    def _keep(self, shape: tuple[int, ...], p: float, device: torch.device) -> torch.Tensor:
        """[K, *shape] keep masks scaled by 1/(1-p), proxy k's from its own generator."""
        if self.generators is None or len(self.generators) != self.K:
            raise RuntimeError("StackedGPT2: call seed([...]) with one seed per proxy before training with dropout")
        keep = torch.stack([torch.rand(shape, generator=g, device=device) >= p for g in self.generators])
        return keep.to(torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type)
                       else torch.float32) / (1 - p)

    def _drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not self.training or p == 0.0:
            return x
        return x * self._keep(tuple(x.shape[1:]), p, x.device).to(x.dtype)

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


class _FusedLMLoss(torch.autograd.Function):
    """LM head + cross-entropy + their gradients, chunk by chunk over tokens."""

    @staticmethod
    def forward(ctx, h, w, labels, weight, chunk):  # h [K, N, D], w [K, V, D], labels/weight [K, N]
        K, N, _ = h.shape
        kind = h.device.type
        # Under autocast the matmuls run in its dtype (bf16), explicitly: in-place ops are not autocast.
        dt = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else h.dtype
        losses = torch.zeros(K, N, dtype=torch.float32, device=h.device)
        gh = torch.empty_like(h) if h.requires_grad else None
        gw = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if w.requires_grad else None
        with torch.autocast(kind, enabled=False):
            wt = w.to(dt)
            for a in range(0, N, chunk):
                hc, lab, wc = h[:, a:a + chunk].to(dt), labels[:, a:a + chunk], weight[:, a:a + chunk].float()
                logits = torch.bmm(hc, wt.transpose(1, 2)).float()  # [K, c, V]; every pass below is in place
                safe = lab.clamp(min=0)
                scored = lab >= 0
                picked = logits.gather(-1, safe[..., None]).squeeze(-1)
                top = logits.amax(-1, keepdim=True)
                e = logits.sub_(top).exp_()  # the logits' buffer now holds exp(logit - max)
                total = e.sum(-1)
                losses[:, a:a + chunk] = torch.where(scored, top.squeeze(-1) + total.log() - picked, 0.0)
                if gh is None and gw is None:
                    continue
                # d loss / d logits = (softmax - onehot) · the token's weight, in the same buffer
                g = e.mul_((wc / total)[..., None])
                g.scatter_add_(-1, safe[..., None], -(wc * scored)[..., None])
                g = g.to(dt)
                if gh is not None:
                    gh[:, a:a + chunk] = torch.bmm(g, wt)
                if gw is not None and gw.dtype == dt:
                    gw.baddbmm_(g.transpose(1, 2), hc)  # accumulated in place, no [K, V, D] temporary
                elif gw is not None:
                    gw += torch.bmm(g.transpose(1, 2), hc).float()
        ctx.save_for_backward(gh, gw)
        return (losses * weight.float()).sum(), losses

    @staticmethod
    def backward(ctx, grad_loss, _grad_tokens):
        gh, gw = ctx.saved_tensors
        return (gh * grad_loss.to(gh.dtype) if gh is not None else None,
                gw * grad_loss if gw is not None else None, None, None, None)


def fused_lm_loss(h: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                  chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ weight·CE(h @ wᵀ, labels), per-token CE detached) without the full logits.
    The chunk size depends on the device and vocab only, never on K, so K proxies sum in the same
    order as one."""
    chunk = chunk or max(16, CHUNK_ELEMENTS.get(h.device.type, 1 << 25) // w.shape[1])
    total, tokens = _FusedLMLoss.apply(h, w, labels, weight, chunk)
    return total, tokens.detach()
