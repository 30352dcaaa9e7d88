"""Checkpoints: everything a killed run needs to continue with the very same losses.

`RUN_DIR/checkpoint.pt` holds the model, optimizer and scheduler state, the step, the loss
curves so far, and per rank its RNG states and the data stream's `state_dict()` (so each rank
resumes at its exact next sequence). Written to a temporary name and renamed: a kill during
the write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
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


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save({"format_version": FORMAT_VERSION, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, config: dict[str, Any], world_size: int) -> dict[str, Any]:
    """Read a checkpoint and check that it belongs to this run (same trajectory settings, same
    number of ranks); errors name the differing setting."""
    path = Path(path)
    if not path.is_file():
        raise MixerError(f"{path}: no checkpoint to resume from; drop --resume to start a fresh run")
    # Our own file: besides tensors it holds the stream's state_dict, which may carry NumPy values
    # that the weights-only unpickler refuses.
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise MixerError(f"{path}: checkpoint format {ckpt.get('format_version')!r} is not {FORMAT_VERSION}; "
                         "start a fresh run")
    for key in TRAJECTORY_KEYS:
        old, new = ckpt["config"].get(key), config.get(key)
        if old != new:
            raise MixerError(f"{path}: checkpoint was trained with {key}={old!r} but this run asks for {new!r}; "
                             f"resume with the same {key} or start a fresh --out")
    if ckpt["world_size"] != world_size:
        raise MixerError(f"{path}: checkpoint was written by {ckpt['world_size']} ranks, this run has {world_size}; "
                         "resume with the same number of processes")
    return ckpt
