"""Bootstrap intervals for the methods whose estimators do not carry their own (DDO does:
`mixer.solver.ddo_model`). Shared by `mixer solve` and `mixer loop`, so both report the same intervals.

- AutoScale: each AutoScale replicate takes one DDO bootstrap replicate of every scale, drawn
  independently per scale (`replicate_indices`), and pushes them through the log-linear fit, so
  the interval carries the DDO uncertainty of every scale. Pairing replicate k of every scale
  with replicate k of the others would not: scales bootstrapped from the same seed have
  correlated replicates (+0.6..0.87 measured), their noise cancels in the ratio r_i, and the
  interval came out 25-55 % too narrow. `scale_seed` gives each budget its own bootstrap seed.
- RegMix and Data Mixing Laws: runs resampled with replacement, the regression refitted.

An interval is the central 95 % of the replicates that solved; fewer than `MIN_REPLICATES`
gives no interval (an empty dict) rather than a misleading one.
"""
from __future__ import annotations

from dataclasses import replace

from typing import Iterator, Sequence

import numpy as np

from mixer.solver.autoscale import fit_floored, predict_floored
from mixer.solver.baselines import mixing_laws_weights, regmix_weights
from mixer.solver.baselines.regmix import RegMixSettings

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


def union_intervals(first: dict[str, tuple[float, float]],
                    second: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Per domain the smallest interval holding both (two models of one quantity, each with its
    noise: the union covers it when either model holds); `first` alone where `second` is empty."""
    if not first or not second:
        return dict(first)
    return {d: (min(lo, second[d][0]), max(hi, second[d][1])) for d, (lo, hi) in first.items()}


def scale_seed(seed: int, budget: int) -> int:
    """A bootstrap seed for the DDO fit at `budget`, distinct per budget and reproducible from
    `seed` (both >= 0): scales bootstrapped from one seed draw correlated replicates."""
    if seed < 0 or budget < 0:
        raise ValueError(f"seed and budget must be >= 0, got seed={seed}, budget={budget}")
    return int(np.random.SeedSequence([int(seed), int(budget)]).generate_state(1)[0])


def replicate_indices(counts: Sequence[int], n: int, seed: int) -> np.ndarray:
    """(n, scales) replicate indices, each column drawn uniformly and independently from
    range(counts[s]): never the same k for every scale."""
    rng = np.random.default_rng([int(seed), 1])
    return np.column_stack([rng.integers(0, c, n) for c in counts])


def autoscale_chain_fits(replicates: Sequence[Sequence[Sequence[float]]], budgets: Sequence[int], *,
                         floor: float | None = None, seed: int = 0, n: int | None = None) -> list[tuple]:
    """(`FlooredFit`, replicate index per scale) per draw of an independent DDO replicate at each
    scale: `replicates[s][k]` is replicate k's weights at scale s (budget `budgets[s]`); `n` draws
    (default: the most replicates any scale has). A scale with fewer than `MIN_REPLICATES`
    replicates gives none: resampling a handful would pass off their spread as the whole."""
    if not replicates or not all(len(s) >= MIN_REPLICATES for s in replicates):
        return []
    reps = [np.asarray(s, float) * b for s, b in zip(replicates, budgets)]
    idx = replicate_indices([len(r) for r in reps], n or max(len(r) for r in reps), seed)
    out = []
    for row in idx:
        try:
            out.append((fit_floored([r[k] for r, k in zip(reps, row)], floor), row))
        except ValueError:
            continue
    return out


def autoscale_replicate_fits(replicates: Sequence[Sequence[Sequence[float]]], budgets: Sequence[int], *,
                             floor: float | None = None, seed: int = 0, n: int | None = None) -> list:
    """The fits of `autoscale_chain_fits`, without their indices."""
    return [fit for fit, _ in autoscale_chain_fits(replicates, budgets, floor=floor, seed=seed, n=n)]


def autoscale_chain(replicates: Sequence[Sequence[Sequence[float]]], budgets: Sequence[int], target: float, *,
                    floor: float | None = None, seed: int = 0, n: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """AutoScale weights at `target`, one per chain replicate (`autoscale_chain_fits`), and the
    (k, scales) replicate indices each was drawn from: row k's last index is the largest scale's
    replicate, whose curves judge that replicate's mixtures at the target."""
    weights, rows = [], []
    for fit, row in autoscale_chain_fits(replicates, budgets, floor=floor, seed=seed, n=n):
        try:
            weights.append(predict_floored(fit, float(target)).weights)
            rows.append(row)
        except ValueError:
            continue
    return weights, np.array(rows, int).reshape(-1, len(budgets))


def autoscale_replicates(replicates: Sequence[Sequence[Sequence[float]]], budgets: Sequence[int],
                         target: float, *, floor: float | None = None, seed: int = 0,
                         n: int | None = None) -> list[np.ndarray]:
    """AutoScale weights at `target`, one per chain replicate (`autoscale_chain`)."""
    return autoscale_chain(replicates, budgets, target, floor=floor, seed=seed, n=n)[0]


def regmix_replicates(W: np.ndarray, y: np.ndarray, settings: RegMixSettings, *, prior: np.ndarray | None = None,
                      upper: np.ndarray | None = None) -> list[np.ndarray]:
    """RegMix optima refitted on `settings.n_bootstrap` resamples of the runs (rows of W, y);
    candidates are searched among 20,000 (10,000 for LightGBM, whose predictions cost more) drawn
    like the fit's."""
    out = []
    n_search = 10_000 if settings.model == "lightgbm" else 20_000
    each = replace(settings, n_search=n_search, top_k=min(settings.top_k, n_search))
    for idx in bootstrap_rows(len(y), settings.n_bootstrap, settings.seed + 1):
        try:
            out.append(regmix_weights(W[idx], y[idx], each, prior=prior, upper=upper).x)
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
