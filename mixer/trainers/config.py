"""What a training run is given: its settings (`TrainConfig`), its data (`DataSource`), and the
pieces both trainers apply the same way (device, warm-up and schedule, batch checks, progress),
so the default trainer (`mixer.trainers.hf_train.train`) and the stacked one
(`mixer.trainers.batched.train_batched`) cannot drift apart on them.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import torch

from mixer.core.errors import MixerError
from mixer.core.kinds import ModelKind
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.trainers.presets import ModelPreset, get_preset

# hook(step, per_domain_loss, per_domain_tokens): the step's mean training loss of every domain
# that had tokens in it, and the scored tokens of every domain (0 where absent). DoReMi reads these.
DomainLossHook = Callable[[int, dict[str, float], dict[str, int]], None]


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class TrainConfig:
    model: ModelKind = ModelKind.GPT2  # gpt2 (causal LM) or bert (masked LM); parsed when built
    preset: str = "tiny"  # see mixer.trainers.presets.PRESETS
    steps: int | None = None  # optimiser steps; None: as many as the source's budget_tokens fills
    batch_size: int | None = None  # sequences per micro-step per device (None: the preset's)
    grad_accum: int | None = None  # micro-steps per optimiser step (None: the preset's)
    lr: float | None = None  # peak learning rate (None: the preset's)
    seq_len: int | None = None  # must equal the stream's; None: the preset's
    warmup_steps: int | None = None  # None: the preset's ratio or steps, at most half the run
    weight_decay: float | None = None  # None: the preset's (1e-2, paper D.1-D.2)
    dropout: float | None = None  # None: the preset's (0.1, the HF default); 0 for throughput measurements
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW, the HF Trainer defaults the paper ran with
    grad_clip: float = 1.0  # max global grad norm (HF Trainer default); 0 disables
    eval_every: int = 0  # held-out eval every N steps (0: only at the end)
    eval_seqs: int = 64  # held-out sequences per domain (the first windows / documents)
    eval_batch_size: int = 16
    extra_eval: tuple[str, ...] = ()  # out-of-domain held-out sets: "CORPUS_DIR" or "CORPUS_DIR:DOMAIN"
    log_every: int = 10  # training-curve points and progress-bar updates
    checkpoint_every: int = 0  # 0: only at the end
    seed: int = 0  # model init, dropout and MLM masks
    device: str = "auto"  # "auto" (cuda if present), "cpu", "cuda", "cuda:1"
    compile: bool | None = None  # torch.compile; None: on CUDA only
    progress: bool = True  # tqdm bar on rank 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", ModelKind.parse(self.model))

    def resolve(self) -> ModelPreset:
        """The preset with this run's overrides applied (and re-validated)."""
        base = get_preset(self.model, self.preset)
        over = {k: getattr(self, k) for k in ("batch_size", "grad_accum", "lr", "seq_len", "warmup_steps", "weight_decay",
                                                "dropout")
                if getattr(self, k) is not None}
        return replace(base, **over)


@dataclass
class DataSource:
    """What the loop trains on. `batches` yields dicts of [B, L] int64 CPU tensors: `input_ids`,
    `domain_ids` (domain index per token, sorted domain names) and, for MLM, `attention_mask`.
    It is iterated afresh after a resume, once `state.load_state_dict` has run."""

    batches: Iterable[Mapping[str, torch.Tensor]]
    corpus: Corpus  # the corpus the stream reads (domains, vocab, held-out splits); a folder is opened
    weights: dict[str, float]  # the mixture (recorded in run.json)
    budget_tokens: int | None = None  # the stream's token budget
    state: Stateful | None = None  # stream position; default: `batches` itself if it has state_dict()
    seq_len: int | None = None  # the stream's sequence length, when known: must equal the run's
    provenance: dict[str, Any] = field(default_factory=dict)  # merged into run.json's provenance
    set_weights: Callable[[dict[str, float]], None] | None = None  # change the mixture between steps (step hooks)

    def __post_init__(self) -> None:
        self.corpus = as_corpus(self.corpus)

    @property
    def corpus_dir(self) -> Path:
        return self.corpus.folder

    def stream_state(self) -> Stateful | None:
        if self.state is not None:
            return self.state
        return self.batches if hasattr(self.batches, "state_dict") else None


def resolve_device(cfg: TrainConfig) -> str:
    """`cfg.device` with "auto" resolved; a CUDA device where there is none is an error."""
    name = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MixerError(f"--device {cfg.device}: CUDA is not available here; use --device cpu")
    return name


def precision(device: torch.device) -> contextlib.AbstractContextManager:
    """The numeric mode of a run on `device`, one place for both trainers: on CUDA, TF32 matmuls
    and a bf16 autocast context (sums stay fp32); elsewhere fp32 and a no-op context."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return torch.autocast("cuda", dtype=torch.bfloat16)


def check_batch(batch: Mapping[str, torch.Tensor], vocab_size: int, n_domains: int, max_positions: int,
                 needs_mask: bool, step: int) -> None:
    """Catch a stream from another corpus or tokenizer before it reaches an embedding lookup."""
    ids, doms = batch.get("input_ids"), batch.get("domain_ids")
    if ids is None or doms is None or (needs_mask and "attention_mask" not in batch):
        need = "input_ids, domain_ids" + (", attention_mask" if needs_mask else "")
        raise MixerError(f"data source batch at step {step} has keys {sorted(batch)}; expected {need}")
    if ids.ndim != 2 or doms.shape != ids.shape:
        raise MixerError(f"data source batch at step {step}: input_ids {tuple(ids.shape)} and domain_ids "
                         f"{tuple(doms.shape)} must both be [batch, seq_len]")
    top, low = int(ids.max()), int(ids.min())
    if top >= vocab_size or low < 0:
        raise MixerError(f"data source yields token id {top if top >= vocab_size else low} at step {step} but the "
                         f"model vocab is {vocab_size} (from corpus.json); the stream comes from another corpus "
                         "or tokenizer: rebuild it from this --corpus")
    if int(doms.max()) >= n_domains or int(doms.min()) < 0:
        raise MixerError(f"data source yields domain id {int(doms.max())} at step {step} but the corpus has "
                         f"{n_domains} domains; rebuild the stream from this --corpus")
    if ids.shape[1] > max_positions:
        raise MixerError(f"data source sequences are {ids.shape[1]} tokens but the model holds at most "
                         f"{max_positions} positions; rebuild the stream with --seq-len <= {max_positions}")


def warmup_steps(preset: ModelPreset, steps: int) -> int:
    w = preset.warmup_steps if preset.warmup_steps is not None else round(preset.warmup_ratio * steps)
    return min(w, steps // 2)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak, then linear decay to 0 at `steps` (HF `get_linear_schedule_with_warmup`)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup)))



def progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)
