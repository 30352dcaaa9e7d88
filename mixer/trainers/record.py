"""The run.json record of a finished training run, as both trainers write it: `mixer.trainers.hf_train.train`
(one model, the Hugging Face classes) and `mixer.trainers.batched.train_batched` (K stacked proxies).

One record builder and one writer, so a run trained either way gives the same fields (the
loop's cache, the solver and the report read them without knowing the trainer); the trainer
adds its own provenance keys (`trainer`, `proxies_together`) and the caller's (role, domain,
factor) go on top. Beside run.json goes `loss_curves.png`, the run's loss per domain.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mixer.core.version import __version__ as mixer_version
from mixer.formats.run import FORMAT_VERSION, RUN_NAME, RunRecord, save_run
from mixer.trainers.config import DataSource, TrainConfig
from mixer.trainers.presets import ModelPreset


def run_config(cfg: TrainConfig, preset: ModelPreset, steps: int, world: int, vocab_size: int,
               **extra: Any) -> dict[str, Any]:
    """The `config` run.json records (and a checkpoint must match): JSON-plain."""
    return json.loads(json.dumps({**asdict(cfg), **asdict(preset), "preset": preset.name, "steps": steps,
                                  "world_size": world, **extra, "vocab_size": vocab_size}))


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run measured, as either trainer hands it to `make_record`: its curve (the
    last eval is the final loss), the tokens it saw (per domain, in `domains` order), its steps,
    the time it trained and waited for data, where it ran and how large the model was."""

    curve: dict[str, Any]
    domains: list[str]
    tokens_per_domain: np.ndarray
    tokens_seen: int
    steps: int
    warmup: int
    train_time: float
    data_wait: float
    device: torch.device
    world: int
    n_params: tuple[int, int]  # (non-embedding, total)


def make_record(preset: ModelPreset, source: DataSource, outcome: RunOutcome, *, seed: int, config: dict[str, Any],
                provenance: Mapping[str, Any] | None = None) -> RunRecord:
    """The run.json record of a finished run. `provenance`: the trainer's own keys; the source's
    (the caller's role/domain/factor) go on top. The corpus is the source's (its sha256)."""
    import transformers

    o = outcome
    curve, domains, tokens_seen, train_time = o.curve, o.domains, o.tokens_seen, o.train_time
    final = {name: v[-1] for name, v in curve["eval"]["loss"].items()}
    return RunRecord(
        format_version=FORMAT_VERSION, corpus_sha256=source.corpus.sha256,
        budget_tokens=int(source.budget_tokens or tokens_seen),
        weights={d: float(w) for d, w in source.weights.items()},
        tokens_per_domain={d: int(n) for d, n in zip(domains, o.tokens_per_domain)},
        final_loss={d: final[d] for d in domains}, model=preset.model, preset=preset.name, seed=seed,
        provenance={"mixer_version": mixer_version, "torch": torch.__version__,
                    "transformers": transformers.__version__, "device": _device_name(o.device), "world_size": o.world,
                    "params_non_embedding": o.n_params[0], "params_total": o.n_params[1], "warmup_steps": o.warmup,
                    "data_wait_share": o.data_wait / train_time if train_time else 0.0, **(provenance or {}),
                    **source.provenance},
        final_perplexity={d: _ppl(final[d]) for d in domains},
        extra_loss={n: v for n, v in final.items() if n.startswith("ood/")},
        tokens_seen=tokens_seen, steps=o.steps, wall_time_s=train_time, tokens_per_s=rate(tokens_seen, train_time),
        curve=curve, loss_history=curve["train"]["loss"], config=config)


def write_run(out_dir: str | Path, record: RunRecord) -> None:
    """run.json and loss_curves.png into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_run(out_dir / RUN_NAME, record)
    plot_curves(record, out_dir / "loss_curves.png")


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 700.0))


def rate(tokens: int, seconds: float) -> float:
    """Tokens per second, 0 before any time has passed (the run.json figure and the progress bar's)."""
    return tokens / seconds if seconds > 0 else 0.0


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def plot_curves(record: RunRecord, path: str | Path) -> None:
    """Training loss per domain against the step; the held-out loss as its own curve when it was
    evaluated at two or more steps, else (evaluation at the end only, the loop's proxies) as one
    marked point per domain on the training panel, so one point never gets an axis of its own."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    train, held = record.curve["train"], record.curve["eval"]
    curves = len(held["step"]) >= 2
    if curves:
        fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    else:
        fig, ax_t = plt.subplots(figsize=(6.5, 4))
        ax_e = ax_t
    colors = {}
    for dom, ys in train["loss"].items():
        pts = [(x, y) for x, y in zip(train["step"], ys) if y is not None]
        line, = ax_t.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{dom} (training batches)", lw=1)
        colors[dom] = line.get_color()
    for name, ys in held["loss"].items():
        color = colors.get(name)
        if curves:
            ax_e.plot(held["step"], ys, marker="o", ms=3, label=name, color=color,
                      ls="--" if name.startswith("ood/") else "-")
        else:
            ax_e.plot(held["step"], ys, ls="", marker="D" if name.startswith("ood/") else "o", ms=6, mfc="none",
                      mew=1.5, color=color, label=f"{name} (held-out, at the end)")
    ax_t.set(title="training loss per domain", xlabel="training step", ylabel="loss (nats/token)")
    if curves:
        ax_e.set(title="held-out loss per domain", xlabel="training step")
    else:
        ax_t.set_title("loss per domain: training curve, held-out loss at the end")
        steps = [s for s in [*train["step"], *held["step"]] if s is not None]
        if steps:
            ax_t.set_xlim(0, max(steps) * 1.05)
    ax_e.legend(fontsize=7)
    fig.suptitle(f"{record.model} {record.preset}: {record.tokens_seen:,} tokens, {record.steps} steps", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
