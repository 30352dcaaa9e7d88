"""Checkpoints: everything a killed run needs to continue with the very same losses.

`RUN_DIR/checkpoint.pt` holds the model, optimizer and scheduler state, the step, the loss
curves so far, and per rank its RNG states and the data stream's `state_dict()` (so each rank
resumes at its exact next sequence). Written to a temporary name and renamed: a kill during
the write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mixer.core.errors import MixerError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1
# Settings that shape the trajectory: a resume with any of them changed is not a continuation.
TRAJECTORY_KEYS = ("model", "preset", "steps", "batch_size", "grad_accum", "lr", "seq_len", "warmup_steps",
                   "weight_decay", "betas", "grad_clip", "seed")


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@dataclass(frozen=True)
class RankState:
    """What one rank needs to continue: its RNG states, its data stream's position, what it has
    seen so far and how long it waited for data."""

    rng: dict[str, Any]
    stream: dict[str, Any] | None
    tokens_seen: int
    tokens_per_domain: list[int]
    data_wait_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"rng": self.rng, "stream": self.stream, "tokens_seen": self.tokens_seen,
                "tokens_per_domain": list(self.tokens_per_domain), "data_wait_s": self.data_wait_s}


@dataclass(frozen=True)
class Checkpoint:
    """`checkpoint.pt` as one typed object: the model, optimizer and scheduler states, the step,
    the loss curve so far, the run's configuration (as run.json holds it) and one `RankState` per
    rank. Written and read only here, so no caller indexes the pickled dict."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    step: int
    curve: dict[str, Any]
    interval: torch.Tensor
    train_time_s: float
    ranks: tuple[RankState, ...]
    config: dict[str, Any]
    world_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "model": self.model, "optimizer": self.optimizer,
                "scheduler": self.scheduler, "step": self.step, "curve": self.curve, "interval": self.interval,
                "train_time_s": self.train_time_s, "ranks": [r.to_dict() for r in self.ranks],
                "config": self.config, "world_size": self.world_size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Checkpoint:
        return cls(model=d["model"], optimizer=d["optimizer"], scheduler=d["scheduler"], step=int(d["step"]),
                   curve=d["curve"], interval=d["interval"], train_time_s=float(d["train_time_s"]),
                   ranks=tuple(RankState(**r) for r in d["ranks"]), config=d["config"],
                   world_size=int(d["world_size"]))


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(ckpt.to_dict(), tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint at `path`, typed; a missing, foreign or older file is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise MixerError(f"{path}: no checkpoint; train a run with `mixer train` first")
    # Our own file: besides tensors it holds the stream's state_dict, which may carry NumPy values
    # that the weights-only unpickler refuses.
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise MixerError(f"{path}: not a readable checkpoint ({type(exc).__name__}); start a fresh run") from None
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        found = raw.get("format_version") if isinstance(raw, dict) else None
        raise MixerError(f"{path}: checkpoint format {found!r} is not {FORMAT_VERSION}; start a fresh run")
    try:
        return Checkpoint.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise MixerError(f"{path}: malformed checkpoint ({exc!r}); start a fresh run") from None


def load_checkpoint(path: str | Path, config: dict[str, Any], world_size: int) -> Checkpoint:
    """Read a checkpoint and check that it belongs to this run (same trajectory settings, same
    number of ranks); errors name the differing setting."""
    path = Path(path)
    if not path.is_file():
        raise MixerError(f"{path}: no checkpoint to resume from; drop --resume to start a fresh run")
    ckpt = read_checkpoint(path)
    if ckpt.world_size != world_size:  # first: the step count differs too, as a consequence of it
        raise MixerError(f"{path}: checkpoint was written by {ckpt.world_size} ranks, this run has {world_size}; "
                         f"resume with the same number of processes (torchrun --nproc-per-node "
                         f"{ckpt.world_size} on one machine)")
    for key in TRAJECTORY_KEYS:
        old, new = ckpt.config.get(key), config.get(key)
        if old != new:
            raise MixerError(f"{path}: checkpoint was trained with {key}={old!r} but this run asks for {new!r}; "
                             f"resume with the same {key} or start a fresh --out")
    return ckpt
