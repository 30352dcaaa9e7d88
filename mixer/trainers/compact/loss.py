"""The LM head and its cross-entropy without the logits of a whole batch, for K proxies at once.

`fused_lm_loss` computes the head (h @ wᵀ [+ b]), the cross-entropy and their gradients chunk
by chunk in the forward pass (the per-token weights are known before it runs), so memory is
O(chunk · vocab), not O(tokens · vocab) in fp32. Each chunk is one batched matmul over the K
proxies of a fixed row count, so a proxy's numbers do not depend on what trains next to it.
"""
from __future__ import annotations

import torch

# Logits elements per proxy in one chunk of the fused loss: 128 MiB in fp32 on a GPU; 8 MiB on a
# CPU, where larger blocks go to fresh mmaps and their page faults cost more than the smaller matmuls.
CHUNK_ELEMENTS = {"cuda": 1 << 25, "cpu": 1 << 21}


def loss_chunk(vocab: int, device: torch.device | str) -> int:
    """Rows per chunk: a function of the vocab and the device type only, never of K."""
    kind = torch.device(device).type
    return max(16, CHUNK_ELEMENTS.get(kind, 1 << 25) // vocab)


class _FusedLMLoss(torch.autograd.Function):
    """LM head + cross-entropy + their gradients, chunk by chunk over tokens."""

    @staticmethod
    def forward(ctx, h, w, b, labels, weight, chunk):  # h [K, N, D], w [K, V, D], b [K, V] | None, labels [K, N]
        K, N, _ = h.shape
        kind = h.device.type
        # Under autocast the matmuls run in its dtype (bf16), explicitly: in-place ops are not autocast.
        dt = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else h.dtype
        losses = torch.zeros(K, N, dtype=torch.float32, device=h.device)
        gh = torch.empty_like(h) if h.requires_grad else None
        gw = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if w.requires_grad else None
        gb = torch.zeros(b.shape, dtype=torch.float32, device=b.device) if b is not None and b.requires_grad else None
        with torch.autocast(kind, enabled=False):
            wt = w.to(dt)
            bt = b.to(dt)[:, None, :] if b is not None else None
            for a in range(0, N, chunk):
                hc, lab, wc = h[:, a:a + chunk].to(dt), labels[:, a:a + chunk], weight[:, a:a + chunk].float()
                logits = (torch.baddbmm(bt, hc, wt.transpose(1, 2)) if bt is not None
                          else torch.bmm(hc, wt.transpose(1, 2))).float()  # [K, c, V]; every pass below is in place
                safe = lab.clamp(min=0)
                scored = lab >= 0
                picked = logits.gather(-1, safe[..., None]).squeeze(-1)
                top = logits.amax(-1, keepdim=True)
                e = logits.sub_(top).exp_()  # the logits' buffer now holds exp(logit - max)
                total = e.sum(-1)
                losses[:, a:a + chunk] = torch.where(scored, top.squeeze(-1) + total.log() - picked, 0.0)
                if gh is None and gw is None and gb is None:
                    continue
                # d loss / d logits = (softmax - onehot) · the token's weight, in the same buffer
                g = e.mul_((wc / total)[..., None])
                g.scatter_add_(-1, safe[..., None], -(wc * scored)[..., None])
                if gb is not None:
                    gb += g.sum(1)
                g = g.to(dt)
                if gh is not None:
                    gh[:, a:a + chunk] = torch.bmm(g, wt)
                if gw is not None and gw.dtype == dt:
                    gw.baddbmm_(g.transpose(1, 2), hc)  # accumulated in place, no [K, V, D] temporary
                elif gw is not None:
                    gw += torch.bmm(g.transpose(1, 2), hc).float()
        ctx.save_for_backward(gh, gw, gb)
        return (losses * weight.float()).sum(), losses

    @staticmethod
    def backward(ctx, grad_loss, _grad_tokens):
        gh, gw, gb = ctx.saved_tensors
        return (gh * grad_loss.to(gh.dtype) if gh is not None else None,
                gw * grad_loss if gw is not None else None,
                gb * grad_loss if gb is not None else None, None, None, None)


def fused_lm_loss(h: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                  chunk: int | None = None, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ weight·CE(h @ wᵀ + bias, labels), per-token CE detached) without the full logits.
    The chunk size depends on the device and vocab only, never on K, so K proxies sum in the same
    order as one."""
    chunk = chunk or loss_chunk(w.shape[1], h.device)
    total, tokens = _FusedLMLoss.apply(h, w, bias, labels, weight, chunk)
    return total, tokens.detach()
