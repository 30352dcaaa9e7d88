"""RegMix (Liu et al. 2024): regress loss on mixture weights over many small random-mixture
runs, then search the simplex for the mixture the regression likes best.

Regression: ridge on a full quadratic in the weights (on the simplex, the linear terms plus the
cross products w_i w_j, i < j, span every quadratic; no intercept needed) or linear. Search:
`n_search` Dirichlet samples, the mean of the `top_k` best (as RegMix does), then a projected
gradient refinement of the quadratic from there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.numerics.simplex import feasible_bounds, spg_minimize


@dataclass(frozen=True)
class RegMixResult:
    x: np.ndarray             # weights
    fun: float                # predicted loss at x
    coef: np.ndarray          # regression coefficients
    residuals: np.ndarray     # fitted - measured, per run
    r2: float
    success: bool
    message: str
    iterations: int


def features(W: np.ndarray, model: str) -> np.ndarray:
    if model == "linear":
        return W
    i, j = np.triu_indices(W.shape[1], k=1)
    return np.hstack([W, W[:, i] * W[:, j]])


def regmix_weights(W, loss, *, model: str = "quadratic", ridge: float = 1e-8, n_search: int = 100_000,
                   top_k: int = 100, refine: bool = True, seed: int = 0) -> RegMixResult:
    W = np.asarray(W, float)
    y = np.asarray(loss, float)
    if model not in ("linear", "quadratic"):
        raise ValueError(f"model {model!r}: expected 'linear' or 'quadratic'")
    if W.ndim != 2 or y.shape != (W.shape[0],):
        raise ValueError(f"W must be (runs, domains) and loss (runs,), got {W.shape} and {y.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(y))):
        raise ValueError("weights or losses contain NaN or inf")
    m = W.shape[1]
    X = features(W, model)
    if X.shape[0] < X.shape[1]:
        raise ValueError(f"{model} regression on {m} domains has {X.shape[1]} coefficients but only "
                         f"{X.shape[0]} runs; add runs or use model='linear'")
    coef = np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ y)
    fitted = X @ coef
    r2 = 1.0 - float(np.sum((fitted - y) ** 2)) / max(float(np.sum((y - y.mean()) ** 2)), 1e-300)
    rng = np.random.default_rng(seed)
    cand = rng.dirichlet(np.ones(m), size=n_search)
    pred = features(cand, model) @ coef
    best = cand[np.argsort(pred)[:top_k]].mean(axis=0)
    it = 0
    if refine and model == "quadratic":
        lin = coef[:m]
        Q = np.zeros((m, m))
        i, j = np.triu_indices(m, k=1)
        Q[i, j] = coef[m:]
        Q = Q + Q.T                      # f(w) = lin.w + 0.5 w'Qw
        lo, hi = feasible_bounds(m, 1.0)
        r = spg_minimize(lambda w: float(lin @ w + 0.5 * w @ Q @ w), lambda w: lin + Q @ w, best, 1.0, lo, hi,
                         tol=1e-12, max_iter=5000)
        if r.fun <= float((features(best[None], model) @ coef)[0]):
            best, it = r.x, r.iterations
    fun = float((features(best[None], model) @ coef)[0])
    return RegMixResult(x=best, fun=fun, coef=coef, residuals=fitted - y, r2=r2, success=True,
                        message=f"{model} regression R^2 = {r2:.4f} on {W.shape[0]} runs", iterations=it)
