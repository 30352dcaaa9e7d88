"""Trainers: GPT-2 (causal) and BERT (masked LM) from scratch on a mixture stream, with
per-domain held-out loss (paper appendix D.1-D.2). See docs/trainers.md.

    from mixer.trainers import DataSource, TrainConfig, train
    record = train(TrainConfig(model="gpt2", preset="small", steps=2000), source, "runs/base")
    record.final_loss   # {domain: held-out loss}
"""
from mixer.formats.run import RunRecord, load_run, save_run
from mixer.trainers.config import DataSource, DomainLossHook, TrainConfig
from mixer.trainers.train import train
from mixer.trainers.presets import PRESETS, ModelPreset, get_preset

__all__ = ["DataSource", "DomainLossHook", "ModelPreset", "PRESETS", "RunRecord", "TrainConfig", "get_preset",
           "load_run", "save_run", "train"]
