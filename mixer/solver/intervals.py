"""Bootstrap intervals for the methods whose estimators do not carry their own (DDO does:
`mixer.solver.ddo_model`). Shared by `mixer solve` and `mixer loop`, so both report the same intervals.

- AutoScale: each scale's DDO bootstrap replicates are paired (replicate k of every scale) and
  pushed through the log-linear fit, so the interval carries the DDO uncertainty of every scale.
- RegMix and Data Mixing Laws: runs resampled with replacement, the regression refitted.

An interval is the central 95 % of the replicates that solved; fewer than `MIN_REPLICATES`
gives no interval (an empty dict) rather than a misleading one.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from mixer.solver.autoscale import fit_autoscale, predict
from mixer.solver.baselines import mixing_laws_weights, regmix_weights

MIN_REPLICATES = 10


def bootstrap_rows(n_runs: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of `n_boot` resamples (with replacement) of `n_runs` runs."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n_runs, n_runs)


def quantile_intervals(domains: Sequence[str], samples: Sequence[np.ndarray]) -> dict[str, tuple[float, float]]:
    """{domain: (2.5 %, 97.5 %)} of the replicate weights; {} with too few replicates."""
    if len(samples) < MIN_REPLICATES:
        return {}
    lo, hi = np.quantile(np.array(samples), [0.025, 0.975], axis=0)
    return {d: (float(lo[i]), float(hi[i])) for i, d in enumerate(domains)}


def autoscale_replicates(replicates: Sequence[Sequence[Sequence[float]]], budgets: Sequence[int],
                         target: float) -> list[np.ndarray]:
    """AutoScale weights at `target` from paired DDO replicates: `replicates[s][k]` is replicate k's
    weights at scale s (budget `budgets[s]`). Scales without replicates give none."""
    if not replicates or not all(len(s) for s in replicates):
        return []
    out = []
    for k in range(min(len(s) for s in replicates)):
        try:
            fit = fit_autoscale([np.asarray(s[k], float) * b for s, b in zip(replicates, budgets)])
            out.append(predict(fit, float(target)).weights)
        except ValueError:
            continue
    return out


def regmix_replicates(W: np.ndarray, y: np.ndarray, *, model: str, n_boot: int, seed: int,
                      prior: np.ndarray | None = None, top_k: int = 100) -> list[np.ndarray]:
    """RegMix optima refitted on `n_boot` resamples of the runs (rows of W, y); candidates are
    searched among 20,000 (10,000 for LightGBM, whose predictions cost more) drawn like the fit's."""
    out = []
    n_search = 10_000 if model == "lightgbm" else 20_000
    for idx in bootstrap_rows(len(y), n_boot, seed + 1):
        try:
            out.append(regmix_weights(W[idx], y[idx], model=model, n_search=n_search, seed=seed, prior=prior,
                                      top_k=min(top_k, n_search)).x)
        except (ValueError, np.linalg.LinAlgError):
            continue
    return out


def mixing_laws_replicates(W: np.ndarray, L: np.ndarray, *, n_boot: int, seed: int) -> list[np.ndarray]:
    """Data Mixing Laws optima refitted on `n_boot` resamples of the runs (rows of W, L)."""
    out = []
    for idx in bootstrap_rows(len(L), n_boot, seed):
        try:
            out.append(mixing_laws_weights(W[idx], L[idx], tol=1e-9).x)
        except ValueError:
            continue
    return out
