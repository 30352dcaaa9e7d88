"""The run.json record of a finished training run, as both trainers write it: `mixer.trainers.loop.train`
(one model, the Hugging Face classes) and `mixer.trainers.batched.train_batched` (K stacked proxies).

One record builder and one writer, so a run trained either way gives the same fields (the
loop's cache, the solver and the report read them without knowing the trainer); the trainer
adds its own provenance keys (`trainer`, `proxies_together`) and the caller's (role, domain,
factor) go on top.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from mixer import __version__ as mixer_version
from mixer.formats.run import FORMAT_VERSION, RUN_NAME, RunRecord, save_run
from mixer.trainers.presets import ModelPreset

if TYPE_CHECKING:
    from mixer.trainers.loop import DataSource, TrainConfig


def run_config(cfg: TrainConfig, preset: ModelPreset, steps: int, world: int, vocab_size: int,
               **extra: Any) -> dict[str, Any]:
    """The `config` run.json records (and a checkpoint must match): JSON-plain."""
    return json.loads(json.dumps({**asdict(cfg), **asdict(preset), "preset": preset.name, "steps": steps,
                                  "world_size": world, **extra, "vocab_size": vocab_size}))


def make_record(preset: ModelPreset, source: DataSource, curve: dict[str, Any], domains: list[str],
                tokens_per_domain: np.ndarray, tokens_seen: int, steps: int, warmup: int, train_time: float,
                data_wait: float, device: torch.device, world: int, n_params: tuple[int, int], corpus_sha256: str,
                seed: int, config: dict[str, Any], provenance: Mapping[str, Any] | None = None) -> RunRecord:
    """The run.json record of a finished run, from its curve (the last eval is the final loss).
    `provenance`: the trainer's own keys; the source's (the caller's role/domain/factor) go on top."""
    import transformers

    final = {name: v[-1] for name, v in curve["eval"]["loss"].items()}
    return RunRecord(
        format_version=FORMAT_VERSION, corpus_sha256=corpus_sha256, budget_tokens=int(source.budget_tokens or tokens_seen),
        weights={d: float(w) for d, w in source.weights.items()},
        tokens_per_domain={d: int(n) for d, n in zip(domains, tokens_per_domain)},
        final_loss={d: final[d] for d in domains}, model=preset.model, preset=preset.name, seed=seed,
        provenance={"mixer_version": mixer_version, "torch": torch.__version__,
                    "transformers": transformers.__version__, "device": _device_name(device), "world_size": world,
                    "params_non_embedding": n_params[0], "params_total": n_params[1], "warmup_steps": warmup,
                    "data_wait_share": data_wait / train_time if train_time else 0.0, **(provenance or {}),
                    **source.provenance},
        final_perplexity={d: _ppl(final[d]) for d in domains},
        extra_loss={n: v for n, v in final.items() if n.startswith("ood/")},
        tokens_seen=tokens_seen, steps=steps, wall_time_s=train_time, tokens_per_s=_rate(tokens_seen, train_time),
        curve=curve, loss_history=curve["train"]["loss"], config=config)


def write_run(out_dir: str | Path, record: RunRecord) -> None:
    """run.json and loss_curves.png into `out_dir`."""
    from mixer.trainers.plot import plot_curves

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_run(out_dir / RUN_NAME, record)
    plot_curves(record, out_dir / "loss_curves.png")


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 700.0))


def _rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
