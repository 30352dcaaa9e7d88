"""Build GPT-2 / BERT from a preset: random init from a config, never downloaded.

The vocabulary comes from the corpus manifest: a causal model uses `vocab_size`; a masked
model uses `mlm_special_ids(manifest).model_vocab_size` ([PAD]/[CLS]/[SEP]/[MASK] appended).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mixer.core.kinds import ModelKind
from mixer.formats.corpus import CorpusManifest, MLMSpecialIds, mlm_special_ids
from mixer.trainers.presets import ModelPreset


@dataclass(frozen=True)
class Vocab:
    """What the model needs to know about token ids."""

    size: int  # rows of the embedding matrix
    corpus_size: int  # ids the corpus uses (random replacements for MLM draw from these)
    eos: int
    special: MLMSpecialIds | None  # masked LM only


def vocab_for(model: str, manifest: CorpusManifest) -> Vocab:
    if ModelKind(model) is ModelKind.BERT:
        special = mlm_special_ids(manifest)
        return Vocab(size=special.model_vocab_size, corpus_size=manifest.vocab_size, eos=manifest.eos_id, special=special)
    return Vocab(size=manifest.vocab_size, corpus_size=manifest.vocab_size, eos=manifest.eos_id, special=None)


def build_model(preset: ModelPreset, vocab: Vocab, seed: int) -> torch.nn.Module:
    """A freshly initialised model; the same seed gives the same weights on every machine."""
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    if preset.model is ModelKind.GPT2:
        config = GPT2Config(vocab_size=vocab.size, n_positions=preset.max_positions, n_embd=preset.d_model,
                            n_layer=preset.n_layer, n_head=preset.n_head, resid_pdrop=preset.dropout,
                            embd_pdrop=preset.dropout, attn_pdrop=preset.dropout,
                            bos_token_id=vocab.eos, eos_token_id=vocab.eos)
        cls = GPT2LMHeadModel
    else:
        config = BertConfig(vocab_size=vocab.size, hidden_size=preset.d_model, num_hidden_layers=preset.n_layer,
                            num_attention_heads=preset.n_head, intermediate_size=4 * preset.d_model,
                            max_position_embeddings=preset.max_positions, hidden_dropout_prob=preset.dropout,
                            attention_probs_dropout_prob=preset.dropout, pad_token_id=vocab.special.pad)
        cls = BertForMaskedLM
    # SDPA: fused flash/memory-efficient attention kernels on a GPU, the math path on a CPU.
    return cls._from_config(config, attn_implementation="sdpa")


def count_params(model: torch.nn.Module, non_embedding: bool = True) -> int:
    """Parameters, without the token/position embeddings by default (what 6·N·D counts)."""
    n = sum(p.numel() for p in model.parameters())
    if non_embedding:
        for name, p in model.named_parameters():
            if name.endswith(("wte.weight", "wpe.weight", "word_embeddings.weight", "position_embeddings.weight")):
                n -= p.numel()
    return n
