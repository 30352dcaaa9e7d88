"""Loss curves per domain (train and held-out) as one PNG beside run.json."""
from __future__ import annotations

import os
from pathlib import Path

from mixer.formats.run import RunRecord


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
