"""A collator for Hugging Face `Trainer` (or any DataLoader): stacks stream items, keeps
`domain_ids`, and adds the `labels` a transformers model needs to return a loss.

    from transformers import Trainer, TrainingArguments
    from mixer import MixtureSampler, MixtureCollator

    stream = MixtureSampler("corpus/", {"news": 0.4, "code": 0.6}, tokens=1_000_000, seq_len=256)
    args = TrainingArguments("out", per_device_train_batch_size=8, remove_unused_columns=False)
    Trainer(model, args, train_dataset=stream, data_collator=MixtureCollator()).train()

The stream yields {"input_ids", "domain_ids"[, "attention_mask"]}; a transformers model only
returns a loss when it is given `labels`, and `Trainer` drops every column its model's
`forward` does not name unless `remove_unused_columns=False`. With that flag the batch keeps
`domain_ids` (per-token domain index, for per-domain loss); a model's `forward` does not accept
it, so the training loop (e.g. `compute_loss`) pops it before calling the model — see
`examples/hf_trainer.py`.

Causal: `labels` is `input_ids` (the model shifts it). Masked LM (`mask_token_id` given): the
BERT recipe, 15 % of non-special positions, of which 80 % become [MASK], 10 % a random id, 10 %
stay; `labels` is -100 elsewhere. The masks come from a seeded generator, so the same stream
and seed give the same batches.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

IGNORE = -100  # the label transformers' losses skip


class MixtureCollator:
    """Stack a list of stream items into a batch with `labels` (and `domain_ids` kept)."""

    def __init__(self, *, mask_token_id: int | None = None, vocab_size: int | None = None,
                 special_ids: Iterable[int] = (), mlm_probability: float = 0.15, seed: int = 0,
                 domain_ids: bool = True) -> None:
        if mask_token_id is not None and (vocab_size is None or vocab_size <= 0):
            raise ValueError("masked LM: give vocab_size (the random-token replacements are drawn below it)")
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability {mlm_probability}: choose a value in (0, 1)")
        self.mask_token_id, self.vocab_size = mask_token_id, vocab_size
        self.special = torch.tensor(sorted(set(int(i) for i in special_ids)), dtype=torch.long)
        self.mlm_probability = mlm_probability
        self.domain_ids = domain_ids
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, items: Sequence[Mapping[str, torch.Tensor]] | Mapping[str, torch.Tensor]) -> dict[str, Any]:
        if isinstance(items, Mapping):  # a batched stream (batched=True) gives whole batches
            batch = {k: torch.as_tensor(v) for k, v in items.items()}
        else:
            batch = {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]}
        if not self.domain_ids:
            batch.pop("domain_ids", None)
        if self.mask_token_id is None:
            labels = batch["input_ids"].clone()
            if "attention_mask" in batch:
                labels[batch["attention_mask"] == 0] = IGNORE
            batch["labels"] = labels
            return batch
        return self._mask(batch)

    def _mask(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = batch["input_ids"].clone()
        maskable = ~torch.isin(ids, self.special)
        if "attention_mask" in batch:
            maskable &= batch["attention_mask"].bool()
        chosen = (torch.rand(ids.shape, generator=self.generator) < self.mlm_probability) & maskable
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
        roll = torch.rand(ids.shape, generator=self.generator)
        ids[chosen & (roll < 0.8)] = self.mask_token_id
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        ids[swap] = torch.randint(self.vocab_size, ids.shape, generator=self.generator)[swap]
        batch["input_ids"], batch["labels"] = ids, labels
        return batch
