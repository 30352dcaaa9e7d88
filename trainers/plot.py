"""Loss curves per domain (train and held-out) as one PNG beside run.json."""
from __future__ import annotations

import os
from pathlib import Path

from mixer.formats.run import RunRecord


def plot_curves(record: RunRecord, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    train, held = record.curve["train"], record.curve["eval"]
    for dom, ys in train["loss"].items():
        pts = [(x, y) for x, y in zip(train["step"], ys) if y is not None]
        ax_t.plot([p[0] for p in pts], [p[1] for p in pts], label=dom, lw=1)
    for name, ys in held["loss"].items():
        ax_e.plot(held["step"], ys, marker="o", ms=3, label=name, ls="--" if name.startswith("ood/") else "-")
    ax_t.set(title="training loss per domain", xlabel="step", ylabel="loss (nats/token)")
    ax_e.set(title="held-out loss per domain", xlabel="step")
    ax_e.legend(fontsize=7)
    fig.suptitle(f"{record.model} {record.preset}: {record.tokens_seen:,} tokens, {record.steps} steps", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
