"""PNG figures of a solve (matplotlib, Agg backend; nothing is shown on screen)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _token_unit(largest: float) -> tuple[float, str]:
    """A divisor and its word, so token counts read as plain numbers (e.g. 3.2 thousand)."""
    for div, word in ((1e9, "billions"), (1e6, "millions"), (1e3, "thousands")):
        if largest >= div:
            return div, word
    return 1.0, "tokens"


def plot_fits(points: Mapping[str, tuple[np.ndarray, np.ndarray]], fits: Mapping, path: str | Path,
              optimum: Mapping[str, float] | None = None, ylabel: str = "loss / base loss", title: str | None = None, tokens_per_unit: float | None = None,
              weights: Mapping[str, float] | None = None) -> Path:
    """One panel per domain: the measured points and the fitted power law, the optimum as a
    dotted line, one legend for the figure. `tokens_per_unit`: the fit's x is in units of that
    many tokens (the authors' N/m); the axis then shows training tokens of the domain in
    thousands / millions, and the x axis says so. `weights`: each panel's title gives the
    domain's optimal weight."""
    plt = _plt()
    import matplotlib.ticker  # noqa: F401  (loaded by pyplot; named here for the tick setup)
    import matplotlib
    from matplotlib.lines import Line2D

    names = list(points)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    scale = 1.0
    xlabel = "tokens / (N/m)"  # the fit's own units, unless tokens_per_unit converts them
    if tokens_per_unit is not None:
        largest = max(float(points[d][0].max()) for d in names) * tokens_per_unit
        div, word = _token_unit(largest)
        scale = tokens_per_unit / div
        xlabel = f"training tokens of this domain ({word})"
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows + 0.6), squeeze=False)
    for ax, d in zip(axes.flat, names):
        x, y = points[d]
        grid = np.geomspace(min(x.min(), (optimum or {}).get(d, x.min()) or x.min()) * 0.8, x.max() * 1.25, 200)
        ax.plot(grid * scale, fits[d].predict(grid), "-", lw=1.2, color="C0")
        ax.plot(x * scale, y, "o", ms=4, color="C1")
        if optimum and optimum.get(d, 0) > 0:
            ax.axvline(optimum[d] * scale, color="k", ls=":", lw=1.0)
        ax.set_xscale("log")
        # x spans less than a decade: label a few plain numbers, not crowded minor powers of 10
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.tick_params(labelsize=7)
        if getattr(fits[d], "ill_posed", False):
            ax.text(0.03, 0.05, "ill-posed fit", transform=ax.transAxes, color="C3", fontsize=7)
        head = d if not weights or d not in weights else f"{d}: optimal weight {weights[d]:.3f}"
        ax.set_title(head, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles = [Line2D([], [], color="C0", lw=1.2, label="fitted power law"),
               Line2D([], [], color="C1", marker="o", ls="", ms=4, label="measured proxy runs (every seed)"),
               Line2D([], [], color="k", ls=":", lw=1.0, label="optimum: the domain's tokens in the solved mixture")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_weights_curve(budgets: Sequence[float], weights: np.ndarray, domains: Sequence[str], path: str | Path,
                       marks: Sequence[float] = (), measured: tuple[Sequence[float], np.ndarray] | None = None,
                       target: float | None = None, title: str | None = None) -> Path:
    """Stacked area of weights against budget (paper Figure 6); vertical lines at `marks`.
    `measured = (budgets, weights rows)`: the DDO optima the curve is fitted to, drawn as points
    on the layer boundaries; budgets beyond the largest of them are shaded as extrapolated."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = np.asarray(budgets, float)
    ax.stackplot(x, np.asarray(weights, float).T, labels=list(domains), alpha=0.85)
    for i, b in enumerate(marks):
        ax.axvline(b, color="k", ls=":", lw=0.8, label="DDO scales (measured)" if i == 0 else None)
    if measured is not None and len(measured[0]):
        mb, mw = np.asarray(measured[0], float), np.asarray(measured[1], float)
        cum = np.cumsum(mw, axis=1)
        for j in range(cum.shape[1] - 1):
            ax.plot(mb, cum[:, j], "o", color="k", ms=4, label="measured DDO optima" if j == 0 else None)
        ax.axvspan(mb.max(), x.max(), color="0.15", alpha=0.5, hatch="//", fill=False, lw=0,
                   label="extrapolated (AutoScale)")
        if mb.min() > x.min():
            ax.axvspan(x.min(), mb.min(), color="0.15", alpha=0.3, hatch="\\\\", fill=False, lw=0,
                       label="extrapolated down")
    if target is not None:
        ax.axvline(target, color="C3", ls="--", lw=1.0, label=f"target {target:,.0f} tokens")
    ax.set_xscale("log")
    ax.set_xlim(x.min(), x.max())
    return _save_stacked(plt, fig, ax, path, xlabel="training budget (tokens, log scale)",
                         ylabel="domain weight (stacked; layers sum to 1)", title=title)


def plot_schedule(bounds: Sequence[int], weights: np.ndarray, domains: Sequence[str], path: str | Path,
                  marks: Sequence[float] = (), title: str | None = None) -> Path:
    """A mixture schedule as stacked areas over training tokens: stage s holds `weights[s]`
    from `bounds[s-1]` (0 for the first) to `bounds[s]`; dotted lines at the measured scales."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    div, word = _token_unit(float(bounds[-1]))
    edges = np.concatenate([[0.0], np.asarray(bounds, float)]) / div
    W = np.asarray(weights, float)
    x = np.repeat(edges, 2)[1:-1]  # steps: each stage flat over its span
    ax.stackplot(x, np.repeat(W, 2, axis=0).T, labels=list(domains), alpha=0.85)
    for i, b in enumerate(marks):
        ax.axvline(b / div, color="k", ls=":", lw=0.8, label="DDO scales (measured)" if i == 0 else None)
    ax.set_xlim(0, edges[-1])
    return _save_stacked(plt, fig, ax, path, xlabel=f"training tokens ({word})",
                         ylabel="stage weight (stacked; layers sum to 1)", title=title)


def _save_stacked(plt, fig, ax, path: str | Path, *, xlabel: str, ylabel: str, title: str | None) -> Path:
    """The shared finish of the stacked-weight plots: axes in words, legend outside, written."""
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_predicted_vs_measured(predicted, measured, path: str | Path, labels: Sequence[str] | None = None,
                               held_out: tuple[np.ndarray, np.ndarray] | None = None,
                               axis: str = "loss", title: str | None = None) -> Path:
    """Predicted against measured for the runs the fit used and, marked apart, for held-out
    runs it never saw (`held_out = (predicted, measured)`): only the latter test the model."""
    plt = _plt()
    p, y = np.asarray(predicted, float), np.asarray(measured, float)
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    ax.plot(y, p, "o", ms=4, label="runs used by the fit (in-sample)")
    allp, ally = [p], [y]
    if held_out is not None and len(held_out[0]):
        hp, hy = np.asarray(held_out[0], float), np.asarray(held_out[1], float)
        ax.plot(hy, hp, "s", ms=6, mfc="none", mec="C3", mew=1.5, label="held-out runs (not fitted)")
        allp.append(hp)
        ally.append(hy)
    p_all, y_all = np.concatenate(allp), np.concatenate(ally)
    lo, hi = float(min(p_all.min(), y_all.min())), float(max(p_all.max(), y_all.max()))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k:", lw=0.8, label="predicted = measured")
    for i, text in enumerate(labels or []):
        ax.annotate(text, (y[i], p[i]), fontsize=6)
    ax.set_xlabel(f"measured {axis}", fontsize=8)
    ax.set_ylabel(f"predicted {axis}", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax.ticklabel_format(useOffset=False)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_weight_trajectory(trajectory: np.ndarray, domains: Sequence[str], path: str | Path,
                           average: np.ndarray | None = None, title: str = "DoReMi weights over steps") -> Path:
    """One line per domain: the weight after every step, the average (the answer) dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    steps = np.arange(1, len(trajectory) + 1)
    for j, d in enumerate(domains):
        line, = ax.plot(steps, trajectory[:, j], label=d)
        if average is not None:
            ax.axhline(average[j], color=line.get_color(), linestyle="--", linewidth=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("domain weight")
    ax.set_title(title + (" (dashed: average)" if average is not None else ""))
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
