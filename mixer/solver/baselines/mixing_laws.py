"""Data Mixing Laws (Ye et al. 2024): per evaluated domain i,

    L_i(r) = c_i + k_i exp(sum_j t_ij r_j)

fitted on runs at several mixtures r, then sum_i v_i L_i(r) minimised over the simplex (convex
for k_i > 0; spectral projected gradient). Since sum_j r_j = 1, a common shift of t_i1..t_im is
the same as rescaling k_i; the fit fixes it by sum_j t_ij = 0. Starts: for a grid of c, the
model is linear in (log k, t) after taking log(L - c).

As the authors fit it (yegcjs/mixinglaws): the law is fitted under a Huber loss (`loss="huber"`,
threshold `delta` in loss units), so one bad proxy run pulls the law less than under least
squares; `loss="linear"` is plain least squares. The default threshold, `HUBER_DELTA` = 0.05,
is the one their five-domain fit of this law passes (`mix_5_domains.ipynb`, the mixture-law
cell: `law.fit(..., delta=0.05)`); `law.py`'s own default (line 79) is 0.01 and their
two-domain notebook passes 0.02. A threshold far below the noise of the losses (1e-3 nats at a
run-to-run noise of ~1e-2) makes every residual "large" and the fit an L1 fit. The constant
is kept positive, `c = exp(log c)`, as their `mixture_law_` parametrises it. The nested laws
over training steps and model size, which turn small, short runs into the losses the mixture
law is fitted on, are in `mixer.solver.baselines.nested_laws`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from mixer.solver.numerics.simplex import feasible_bounds, spg_minimize

HUBER_DELTA = 0.05  # the authors' threshold for the mixture law (mix_5_domains.ipynb)


@dataclass(frozen=True)
class MixingLawsResult:
    x: np.ndarray             # weights
    fun: float                # predicted weighted loss at x
    c: np.ndarray             # (n_eval,)
    k: np.ndarray             # (n_eval,)
    t: np.ndarray             # (n_eval, m), rows sum to 0
    residuals: np.ndarray     # (runs, n_eval) fitted - measured
    success: bool
    message: str
    iterations: int


def _model(theta: np.ndarray, R: np.ndarray) -> np.ndarray:
    t = np.append(theta[2:], -np.sum(theta[2:]))  # exponents capped: a trial step far off stays finite
    return np.exp(min(theta[0], 50.0)) + np.exp(np.minimum(theta[1] + R @ t, 50.0))


def fit_mixing_law(R: np.ndarray, y: np.ndarray, *, loss: str = "huber",
                   delta: float = HUBER_DELTA) -> tuple[np.ndarray, float]:
    """One domain's law; returns theta = (log c, log k, t_1..t_{m-1}) and the cost under `loss`."""
    if loss not in ("huber", "linear"):
        raise ValueError(f"loss {loss!r}: expected 'huber' (the authors') or 'linear' (least squares)")
    if not np.all(y > 0):
        raise ValueError("the mixture law has a positive constant c; losses must be positive")
    if not delta > 0:
        raise ValueError(f"Huber delta {delta}: give a positive threshold in loss units")
    A = np.hstack([np.ones((R.shape[0], 1)), R[:, :-1] - R[:, -1:]])  # t_m = -sum: r.t = sum_j<m t_j (r_j - r_m)
    best = None
    span = float(np.ptp(y)) + 1e-12
    lo = float(y.min())
    starts = [c for c in lo - span * np.array([0.01, 0.1, 0.5, 1, 3, 10]) if c > 0]
    for c in [*starts, *(lo * np.array([0.5, 0.1, 0.01]))]:
        coef, *_ = np.linalg.lstsq(A, np.log(y - c), rcond=None)
        theta0 = np.concatenate([[np.log(c)], coef])
        r = least_squares(lambda th: _model(th, R) - y, theta0, method="lm",
                          xtol=1e-14, ftol=1e-14, gtol=1e-14, max_nfev=5000)
        if best is None or r.cost < best.cost:
            best = r
    if loss == "huber":  # from the least-squares optimum (the starts' grid is its job), the Huber one
        best = least_squares(lambda th: _model(th, R) - y, best.x, method="trf", loss="huber", f_scale=delta,
                             xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=5000)
    return best.x, float(best.cost)


def mixing_laws_weights(R, losses, *, eval_weights=None, tol: float = 1e-12, loss: str = "huber",
                        delta: float = HUBER_DELTA) -> MixingLawsResult:
    """R: (runs, m) mixtures; losses: (runs, n_eval) held-out loss per evaluated domain; each
    domain's law fitted under `loss` ("huber" with threshold `delta`, or "linear")."""
    R = np.asarray(R, float)
    L = np.asarray(losses, float)
    if L.ndim == 1:
        L = L[:, None]
    if R.ndim != 2 or L.ndim != 2 or L.shape[0] != R.shape[0]:
        raise ValueError(f"R must be (runs, domains) and losses (runs, eval domains), got {R.shape} and {L.shape}")
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(L))):
        raise ValueError("mixtures or losses contain NaN or inf")
    n, m = R.shape
    if n < m + 2:
        raise ValueError(f"each law has {m + 1} parameters; {n} runs are too few, give at least {m + 2}")
    v = np.full(L.shape[1], 1.0 / L.shape[1]) if eval_weights is None else np.asarray(eval_weights, float)
    thetas = [fit_mixing_law(R, L[:, i], loss=loss, delta=delta)[0] for i in range(L.shape[1])]
    c = np.exp([th[0] for th in thetas])
    k = np.exp([th[1] for th in thetas])
    T = np.array([np.append(th[2:], -np.sum(th[2:])) for th in thetas])
    resid = np.stack([_model(th, R) for th in thetas], axis=1) - L

    def fun(r):
        return float(v @ (c + k * np.exp(T @ r)))

    def grad(r):
        return T.T @ (v * k * np.exp(T @ r))

    lo, hi = feasible_bounds(m, 1.0)
    res = spg_minimize(fun, grad, np.full(m, 1.0 / m), 1.0, lo, hi, tol=tol, max_iter=20000)
    return MixingLawsResult(x=res.x, fun=res.fun, c=c, k=k, t=T, residuals=resid, success=res.success,
                            message=f"{loss} fit rmse {np.sqrt(np.mean(resid ** 2)):.3g}; {res.message}",
                            iterations=res.iterations)
