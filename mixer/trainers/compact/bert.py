"""A compact BERT for masked LM that holds K models of the same shape at once.

    stack = StackedBert.from_hf([hf_a, hf_b])                # K = 2 BertForMaskedLM -> one module
    idx, targets = mlm_targets(labels, chunk)                # the masked positions of each proxy (CPU)
    loss, tok = stack.loss(ids, attn, idx, targets, weight)  # ids/attn [K, B, L]; tok [K, M]
    hf_b.load_state_dict(stack.hf_state_dict(1))             # proxy 1 back into the Hugging Face class

Why: `BertForMaskedLM` computes the vocabulary logits at every position, though only the ~15 %
masked ones are scored, and runs the K proxies of a sweep one after another. Here the masked
positions are gathered before the prediction head, so the head (dense, GELU, LayerNorm, tied
decoder with its bias) and its cross-entropy run on those rows only, through the chunked
`fused_lm_loss`: the logits are never materialised. Q, K and V are one fused [3D, D] matrix
(one matmul instead of three), split again by `hf_state_dict`. Attention is one SDPA call over
K·B sequences with the padding mask. The architecture is BERT's exactly (post-LN, erf GELU,
learned positions, token type 0, eps 1e-12); a test compares logits and loss with the HF class.

Bit for bit across K: the head rows are padded per proxy to a whole number of chunks whose row
count depends on the vocab and device only (`mlm_chunk`), so proxy k's matmuls have the same
shapes whatever trains next to it; padding rows carry weight 0 and add exact zeros.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from mixer.trainers.compact.base import Stacked
from mixer.trainers.compact.loss import fused_lm_loss, loss_chunk

MLM_ROWS = 1024  # at most this many head rows per proxy per chunk (the loss chunk is smaller for large vocabs)


def _names(n_layer: int) -> list[str]:
    """Stacked parameter names: HF's (`bert.` dropped) with query/key/value fused into `qkv`."""
    names = [f"embeddings.{m}" for m in ("word_embeddings.weight", "position_embeddings.weight",
                                          "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias")]
    for i in range(n_layer):
        names += [f"encoder.layer.{i}.{m}.{w}" for m in ("attention.self.qkv", "attention.output.dense",
                                                          "attention.output.LayerNorm", "intermediate.dense",
                                                          "output.dense", "output.LayerNorm")
                  for w in ("weight", "bias")]
    return names + ["cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
                    "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
                    "cls.predictions.bias"]


def _hf(name: str) -> str:
    return name if name.startswith("cls.") else "bert." + name


def mlm_chunk(vocab: int, device: torch.device | str) -> int:
    """Head rows per chunk: the vocab and the device type decide it, never K."""
    return min(MLM_ROWS, loss_chunk(vocab, device))


def mlm_targets(labels: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """labels [K, B, L] (-100: not scored) -> (idx [K, M], targets [K, M]): each proxy's scored
    positions (flat over B·L) in order, then padding (position 0, target -100); M is the largest
    count rounded up to whole chunks. Built on the CPU, next to the masks: no device sync."""
    K = labels.shape[0]
    flat = labels.reshape(K, -1)
    pos = [(flat[k] >= 0).nonzero().squeeze(1) for k in range(K)]
    M = chunk * max(1, math.ceil(max(len(p) for p in pos) / chunk))
    idx = torch.zeros(K, M, dtype=torch.long)
    targets = torch.full((K, M), -100, dtype=torch.long)
    for k, p in enumerate(pos):
        idx[k, :len(p)] = p
        targets[k, :len(p)] = flat[k, p]
    return idx, targets


class StackedBert(Stacked):
    """K `BertForMaskedLM` models; parameter `name` is [K, *shape] ('.' -> '__', see `_names`)."""

    def __init__(self, params: dict[str, torch.Tensor], n_head: int, eps: float, dropout: float = 0.0,
                 attn_dropout: float | None = None):
        super().__init__()
        self.n_layer = sum(1 for n in params if n.endswith("attention.self.qkv.weight"))
        self.eps = float(eps)
        self._hold(params, _names(self.n_layer), n_head, dropout, attn_dropout)
        self.K, self.vocab_size, self.d_model = self.embeddings__word_embeddings__weight.shape

    @classmethod
    def from_hf(cls, models: Sequence[torch.nn.Module], dropout: float | None = None) -> "StackedBert":
        """Stack K `BertForMaskedLM`s (same config); dropout defaults to the config's."""
        cfg = models[0].config
        pos = getattr(cfg, "position_embedding_type", "absolute")
        if cfg.hidden_act != "gelu" or pos not in (None, "absolute") or cfg.is_decoder:
            raise ValueError("StackedBert holds the BERT of mixer.trainers.models.build_model: erf GELU, absolute "
                             f"positions, encoder only (got {cfg.hidden_act}, {pos})")
        states = [m.state_dict() for m in models]

        def one(s: dict, name: str) -> torch.Tensor:
            if ".qkv." in name:
                return torch.cat([s[_hf(name.replace(".qkv.", f".{p}."))] for p in ("query", "key", "value")])
            return s[_hf(name)]

        params = {n: torch.stack([one(s, n) for s in states]) for n in _names(cfg.num_hidden_layers)}
        return cls(params, cfg.num_attention_heads, cfg.layer_norm_eps,
                   cfg.hidden_dropout_prob if dropout is None else dropout,
                   cfg.attention_probs_dropout_prob if dropout is None else dropout)

    def hf_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Proxy k as a `BertForMaskedLM` state dict (load with `load_state_dict`)."""
        out = {}
        for n in _names(self.n_layer):
            t = self._p(n)[k].detach().clone()
            if ".qkv." in n:
                for p, part in zip(("query", "key", "value"), t.chunk(3)):
                    out[_hf(n.replace(".qkv.", f".{p}."))] = part.clone()
            else:
                out[_hf(n)] = t
        out["cls.predictions.decoder.weight"] = out["bert.embeddings.word_embeddings.weight"]  # tied
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"]
        return out

    # --- building blocks: every op covers the K proxies at once ------------------------------------
    def _linear(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """nn.Linear (x @ Wᵀ + b) for every proxy: x [K, N, in] -> [K, N, out]."""
        return torch.baddbmm(self._p(prefix + ".bias")[:, None, :], x, self._p(prefix + ".weight").transpose(1, 2))

    def _attention(self, x: torch.Tensor, pre: str, mask: torch.Tensor, B: int, L: int) -> torch.Tensor:
        K, D, H = self.K, self.d_model, self.n_head
        qkv = self._linear(x, pre + "attention.self.qkv").view(K * B, L, 3, H, D // H)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # [K·B, H, L, hd]
        if self.training and self.attn_dropout > 0:
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D // H))
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            att = att * self._keep((B, H, L, L), self.attn_dropout, x.device).view(K * B, H, L, L).to(att.dtype)
            y = att @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self._linear(y.transpose(1, 2).reshape(K, B * L, D), pre + "attention.output.dense")

    def hidden(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """ids, attn [K, B, L] (attn 1 = a real token) -> last hidden states [K, B·L, D]."""
        K, B, L = ids.shape
        V, D = self.vocab_size, self.d_model
        offset = (torch.arange(K, device=ids.device) * V)[:, None, None]
        x = F.embedding(ids + offset, self.embeddings__word_embeddings__weight.view(K * V, D))  # [K, B, L, D]
        x = (x + self.embeddings__token_type_embeddings__weight[:, None, None, 0]
             + self.embeddings__position_embeddings__weight[:, None, :L])
        x = self._drop(self._ln(x.view(K, B * L, D), "embeddings.LayerNorm", self.eps), self.dropout)
        mask = attn.reshape(K * B, 1, 1, L).bool()  # keys a query may attend to
        for i in range(self.n_layer):
            pre = f"encoder.layer.{i}."
            x = self._ln(self._drop(self._attention(x, pre, mask, B, L), self.dropout) + x,
                         pre + "attention.output.LayerNorm", self.eps)
            m = F.gelu(self._linear(x, pre + "intermediate.dense"))
            x = self._ln(self._drop(self._linear(m, pre + "output.dense"), self.dropout) + x,
                         pre + "output.LayerNorm", self.eps)
        return x

    def head(self, h: torch.Tensor, chunk: int) -> torch.Tensor:
        """The prediction head's transform (dense, GELU, LayerNorm) over rows [K, M, D], `chunk`
        rows at a time (so a row's matmul has one shape whatever M is)."""
        pre = "cls.predictions.transform."
        return torch.cat([self._ln(F.gelu(self._linear(h[:, a:a + chunk], pre + "dense")), pre + "LayerNorm", self.eps)
                          for a in range(0, h.shape[1], chunk)], 1)

    def logits(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """[K, B, L, V] at every position (tests and small evaluations; training uses `loss`)."""
        K, B, L = ids.shape
        t = self.head(self.hidden(ids, attn), B * L)
        return torch.baddbmm(self.cls__predictions__bias[:, None, :], t,
                             self.embeddings__word_embeddings__weight.transpose(1, 2)).view(K, B, L, -1)

    def loss(self, ids: torch.Tensor, attn: torch.Tensor, idx: torch.Tensor, targets: torch.Tensor,
             token_weight: torch.Tensor, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (Σ_k Σ_j w[k,j]·ℓ[k,j] with gradients, per-target losses [K, M] detached).
        idx/targets [K, M] from `mlm_targets` with the same chunk; token_weight [K, M], 0 on padding."""
        chunk = chunk or mlm_chunk(self.vocab_size, ids.device)
        if idx.shape[1] % chunk:
            raise ValueError(f"StackedBert.loss: {idx.shape[1]} target rows are not whole chunks of {chunk}; "
                             "build them with mlm_targets(labels, chunk)")
        h = self.hidden(ids, attn)
        rows = h.gather(1, idx[..., None].expand(-1, -1, self.d_model))  # only the masked positions
        return fused_lm_loss(self.head(rows, chunk), self.embeddings__word_embeddings__weight, targets,
                             token_weight, chunk, bias=self.cls__predictions__bias)
