"""Trainers: GPT-2 (causal) and BERT (masked LM) from scratch on a mixture stream, with
per-domain held-out loss (paper appendix D.1-D.2). See docs/trainers.md.

    from mixer.trainers import DataSource, TrainConfig, train
    record = train(TrainConfig(model="gpt2", preset="small", steps=2000), source, "runs/base")
    record.final_loss   # {domain: held-out loss}
"""
from __future__ import annotations

from mixer.formats.run import RunRecord, load_run, save_run
from mixer.trainers.presets import PRESETS, ModelPreset, get_preset

__all__ = ["DataSource", "DomainLossHook", "ModelPreset", "PRESETS", "RunRecord", "TrainConfig", "get_preset",
           "load_run", "save_run", "train"]


def __getattr__(name: str):
    # torch is imported on first use of a trainer, here only: the presets (their names fill the
    # command line's help) and the run format must not cost `mixer --help` a torch import.
    if name in ("DataSource", "DomainLossHook", "TrainConfig"):
        from mixer.trainers import config

        return getattr(config, name)
    if name == "train":
        from mixer.trainers.hf_train import train

        return train
    raise AttributeError(f"module 'mixer.trainers' has no attribute {name!r}")
