"""Model presets: the architecture and the paper's optimiser settings, by name.

    get_preset("gpt2", "large")     # GPT-2 Large, 774M: the paper's model (appendix D.1)
    get_preset("bert", "bert-base") # BERT-base, MLM only (appendix D.2)

`tiny` trains in seconds on a CPU (tests, demo); `small` is GPT-2 124M, the proxy size of most
mixing papers. Everything here can be overridden per run in `TrainConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass

from mixer.core.errors import MixerError
from mixer.core.kinds import ModelKind

MODELS = tuple(m.value for m in ModelKind)


@dataclass(frozen=True)
class ModelPreset:
    name: str
    model: ModelKind  # gpt2 (causal LM) or bert (masked LM); a string is parsed where the preset is built
    n_layer: int  # transformer blocks
    n_head: int  # attention heads; d_model must divide evenly
    d_model: int  # embedding width; the MLP is 4x wider
    max_positions: int  # learned position embeddings: no sequence may be longer
    seq_len: int  # training/eval sequence length (the stream's seq_len must not exceed max_positions)
    batch_size: int  # sequences per micro-step per device
    grad_accum: int  # micro-steps per optimiser step (per device)
    lr: float  # peak learning rate of the linear schedule
    warmup_ratio: float = 0.1  # warm-up share of all steps (paper D.1: 10%)
    warmup_steps: int | None = None  # fixed warm-up (paper D.2: 3000); capped at half the run
    weight_decay: float = 1e-2  # AdamW, on matrices only (HF Trainer and nanoGPT do the same)
    dropout: float = 0.1  # HF default for both architectures

    def __post_init__(self) -> None:
        where = f"preset {self.name!r}"
        object.__setattr__(self, "model", ModelKind.parse(self.model, where=f"{where}: model"))
        for f in ("n_layer", "n_head", "d_model", "max_positions", "seq_len", "batch_size", "grad_accum"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise MixerError(f"{where}: {f} = {v!r}; it must be a positive integer")
        if self.d_model % self.n_head:
            raise MixerError(f"{where}: d_model {self.d_model} is not divisible by n_head {self.n_head}; "
                             "pick a head count that divides the width")
        if self.seq_len > self.max_positions:
            raise MixerError(f"{where}: seq_len {self.seq_len} exceeds max_positions {self.max_positions}; "
                             "shorten seq_len or raise max_positions")
        if self.model is ModelKind.BERT and self.seq_len < 3:
            raise MixerError(f"{where}: seq_len {self.seq_len} leaves no room for [CLS] doc [SEP]; use >= 3")
        if self.warmup_steps is not None and (not isinstance(self.warmup_steps, int) or self.warmup_steps < 0):
            raise MixerError(f"{where}: warmup_steps = {self.warmup_steps!r}; use a whole number >= 0, or None")
        if not (self.lr > 0) or not (0 <= self.warmup_ratio < 1) or not (0 <= self.dropout < 1) or self.weight_decay < 0:
            raise MixerError(f"{where}: need lr > 0, 0 <= warmup_ratio < 1, 0 <= dropout < 1, weight_decay >= 0 "
                             f"(got {self.lr}, {self.warmup_ratio}, {self.dropout}, {self.weight_decay})")

    @property
    def n_params_approx(self) -> int:
        """Non-embedding parameters, 12·n_layer·d² (Kaplan et al.): what 6·N·D counts."""
        return 12 * self.n_layer * self.d_model**2


_GPT2 = dict(model="gpt2", max_positions=1024, seq_len=1024, weight_decay=1e-2)
_BERT = dict(model="bert", max_positions=512, weight_decay=1e-2)

PRESETS: dict[str, dict[str, ModelPreset]] = {
    "gpt2": {
        # Seconds on a CPU: tests and the demo. High lr because 50 steps must show learning.
        "tiny": ModelPreset(name="tiny", **{**_GPT2, "max_positions": 128, "seq_len": 64},
                            n_layer=2, n_head=2, d_model=64, batch_size=8, grad_accum=1, lr=3e-3),
        # GPT-2 124M (Radford et al. 2019); the proxy size of DoReMi (paper table 5).
        "small": ModelPreset(name="small", **_GPT2, n_layer=12, n_head=12, d_model=768,
                             batch_size=8, grad_accum=8, lr=6e-4),
        # GPT-2 Medium, 350M.
        "medium": ModelPreset(name="medium", **_GPT2, n_layer=24, n_head=16, d_model=1024,
                              batch_size=4, grad_accum=16, lr=3e-4),
        # GPT-2 Large, 774M: the paper's model. Table 3: batch 1 x accumulation 10 x 8 GPUs, lr 2e-4,
        # linear schedule, 10% warm-up, weight decay 1e-2.
        "large": ModelPreset(name="large", **_GPT2, n_layer=36, n_head=20, d_model=1280,
                             batch_size=1, grad_accum=10, lr=2e-4),
    },
    "bert": {
        "tiny": ModelPreset(name="tiny", **{**_BERT, "max_positions": 128}, seq_len=64,
                            n_layer=2, n_head=2, d_model=64, batch_size=8, grad_accum=1, lr=3e-3),
        # bert-base-uncased shape. Table 4: max length 300, batch 12 x 4 devices, lr 1e-4,
        # 3000 warm-up steps, weight decay 1e-2, MLM only (15%).
        "bert-base": ModelPreset(name="bert-base", **_BERT, seq_len=300, n_layer=12, n_head=12, d_model=768,
                                 batch_size=12, grad_accum=1, lr=1e-4, warmup_steps=3000),
    },
}


def get_preset(model: str, name: str) -> ModelPreset:
    if model not in PRESETS:
        raise MixerError(f"--model {model!r}: unknown; choose one of {', '.join(MODELS)}")
    if name not in PRESETS[model]:
        raise MixerError(f"--preset {name!r}: no such preset for --model {model}; "
                         f"choose one of {', '.join(PRESETS[model])}")
    return PRESETS[model][name]
