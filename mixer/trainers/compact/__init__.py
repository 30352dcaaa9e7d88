"""Compact stacked models: K proxies of one shape as one module (a leading proxy dimension),
whose weights load into and out of the Hugging Face classes.

    StackedGPT2.from_hf([GPT2LMHeadModel, ...])     # causal LM, fused chunked LM loss (gpt2.py)
    StackedBert.from_hf([BertForMaskedLM, ...])     # masked LM, head only on the masked positions (bert.py)

`base.py` holds what both share (per-proxy dropout generators), `loss.py` the fused LM-head
cross-entropy. `mixer.trainers.batched.train_batched` trains them.
"""
from mixer.trainers.compact.base import Stacked
from mixer.trainers.compact.bert import StackedBert, mlm_chunk, mlm_targets
from mixer.trainers.compact.gpt2 import LN_EPS, StackedGPT2
from mixer.trainers.compact.loss import CHUNK_ELEMENTS, fused_lm_loss, loss_chunk

__all__ = ["CHUNK_ELEMENTS", "LN_EPS", "Stacked", "StackedBert", "StackedGPT2", "fused_lm_loss", "loss_chunk",
           "mlm_chunk", "mlm_targets"]
