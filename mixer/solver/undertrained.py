"""Are the proxies still learning? A proxy whose loss is still falling fast at its last step
measures effects of the data order and of where training stopped as much as of the mixture:
every perturbed run of a grown-total sweep trains longer, and each looks helpful for that alone.

`tail_drop` reads the base runs' training curves (run.json `loss_history`, the per-domain loss
logged every few steps), averages the metric over the evaluation domains, and measures by how
much it fell over the last fifth of the steps (a least-squares line through those points, so one
noisy batch does not decide it), in the fit's units. The verdict compares that drop with the
effect the decision rests on (the predicted gain over uniform): a drop larger than the gain means
the proxies are undertrained for this question. `tokens_needed` estimates the budget at which
the drop would fall below the gain, from the curve's own decay: for L(t) = C + A t^(-alpha) the
slope falls as t^(-alpha-1), so alpha is read off the slopes of the middle and the last fifth, and
the drop over the last fifth scales as T^(-alpha).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mixer.solver.runs import Run

MIN_POINTS = 10  # logged steps a curve needs before its tail can be judged


@dataclass(frozen=True)
class TailDrop:
    drop: float  # fit units: fall of the mean metric over the last fifth of the base runs' steps
    alpha: float  # the curve's decay exponent (see the module docstring)
    runs: int  # base runs with a usable curve

    def tokens_needed(self, budget_tokens: int, gain: float) -> int | None:
        """Budget at which the drop over the last fifth would be below `gain` (None: not finite)."""
        if not gain > 0 or not self.drop > gain:
            return None
        factor = (self.drop / gain) ** (1.0 / self.alpha)
        return int(math.ceil(budget_tokens * factor)) if math.isfinite(factor) and factor < 1e6 else None

    def to_json(self) -> dict:
        return {"drop": self.drop, "alpha": self.alpha, "runs": self.runs}


def _slope(y: np.ndarray, lo: int, hi: int) -> float:
    t = np.arange(lo, hi, dtype=float)
    seg = y[lo:hi]
    ok = np.isfinite(seg)
    if ok.sum() < 3:
        return float("nan")
    return float(np.polyfit(t[ok], seg[ok], 1)[0])


def tail_drop(base: Sequence[Run], *, metric: str, unit_y: float,
              eval_domains: Sequence[str] | None = None) -> TailDrop | None:
    """The drop of the base runs' mean training metric over their last fifth; None without curves."""
    drops, alphas = [], []
    for run in base:
        hist = run.loss_history or {}
        names = [d for d in (eval_domains or run.domains) if hist.get(d)]
        if not names:
            continue
        n = min(len(hist[d]) for d in names)
        if n < MIN_POINTS:
            continue
        L = np.array([hist[d][:n] for d in names], float)
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.exp(np.minimum(L, 700.0)) if metric == "perplexity" else L
            y = np.nanmean(values, axis=0) / unit_y
        k = int(round(0.8 * n))
        end = _slope(y, k, n)
        mid = _slope(y, int(round(0.4 * n)), int(round(0.6 * n)))
        if not math.isfinite(end):
            continue
        drops.append(max(0.0, -end * (n - k)))
        if math.isfinite(mid) and mid < 0 and end < 0 and mid < end:
            # slope ratio (t_mid / t_end)^(-alpha-1) with t at the windows' centres (0.5 and 0.9)
            alphas.append(math.log(mid / end) / math.log(0.9 / 0.5) - 1.0)
    if not drops:
        return None
    alpha = float(np.clip(np.median(alphas), 0.1, 2.0)) if alphas else 0.5
    return TailDrop(drop=float(np.mean(drops)), alpha=alpha, runs=len(drops))
