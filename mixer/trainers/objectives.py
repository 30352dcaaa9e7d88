"""The two objectives as per-token losses, so the loop can split them by domain.

A batch is a dict of [B, L] int64 tensors: `input_ids`, `domain_ids` (the domain index of each
token, in sorted-domain-name order) and, for masked LM, `attention_mask` (1 = real token).
`token_losses` returns (loss [N], domain [N]) over the N tokens that count: the predicted next
token (causal), or the masked positions (MLM).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mixer.formats.corpus import MLMSpecialIds

MASK_PROB = 0.15  # BERT: 15% of tokens are predicted; of those 80% [MASK], 10% random, 10% kept


def mask_generator(seed: int, step: int, micro: int, rank: int = 0) -> torch.Generator:
    """The generator of one micro-step's BERT masks: from (seed, step, micro-step, rank) alone,
    so a resumed run redraws the same masks and a batched proxy draws the ones it draws alone."""

    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, micro, rank]).generate_state(1)[0]))


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special: MLMSpecialIds,
                corpus_vocab: int, generator: torch.Generator, prob: float = MASK_PROB
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking on CPU tensors with an explicit generator -> (masked inputs, labels; -100 = ignore)."""
    can = attention_mask.bool() & (input_ids != special.cls) & (input_ids != special.sep) & (input_ids != special.pad)
    chosen = (torch.rand(input_ids.shape, generator=generator) < prob) & can
    roll = torch.rand(input_ids.shape, generator=generator)
    randoms = torch.randint(0, corpus_vocab, input_ids.shape, generator=generator, dtype=input_ids.dtype)
    masked = torch.where(chosen & (roll < 0.8), torch.full_like(input_ids, special.mask), input_ids)
    masked = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), randoms, masked)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    return masked, labels


def causal_token_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = batch["input_ids"]  # [B, L]
    attn = batch.get("attention_mask")
    logits = model(input_ids=ids, attention_mask=attn).logits  # [B, L, V]: position t predicts ids[:, t + 1]
    # Shift the labels, not the logits: slicing [B, L, V] would copy the largest tensor of the step.
    labels = shift_labels(ids, attn)
    return _token_losses(logits, labels, F.pad(batch["domain_ids"][:, 1:], (0, 1)))


def shift_labels(ids: torch.Tensor, attn: torch.Tensor | None = None) -> torch.Tensor:
    """[B, L] -> [B, L]: the next token at every position; -100 at the last one and before padding."""
    labels = F.pad(ids[:, 1:], (0, 1), value=-100)
    if attn is not None:
        labels = labels.masked_fill(F.pad(attn[:, 1:], (0, 1)) == 0, -100)
    return labels


def mlm_token_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`batch` holds already-masked `input_ids` and `labels` (see `mask_tokens`)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # [B, L, V]
    return _token_losses(logits, batch["labels"], batch["domain_ids"])


def _token_losses(logits: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (loss [N], domain [N], counted [N] as 0/1 floats); N = B·L. No boolean indexing, so no
    host sync on a GPU; ignored positions have loss 0, weight 0 and domain 0."""
    labels = labels.reshape(-1)
    counted = labels != -100
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels, ignore_index=-100, reduction="none")
    return loss, torch.where(counted, domains.reshape(-1), 0), counted.float()


def per_domain_sums(loss: torch.Tensor, domain: torch.Tensor, counted: torch.Tensor, n_domains: int) -> torch.Tensor:
    """[2, n_domains] float64: row 0 the summed loss, row 1 the token count of each domain."""
    out = torch.zeros(2, n_domains, dtype=torch.float64, device=loss.device)
    out[0].index_add_(0, domain, loss.detach().double())
    out[1].index_add_(0, domain, counted.double())
    return out
