"""AutoScale (paper §3, Theorem 1, Algorithm 2): optimal tokens per domain at a target scale
from DDO optima at two or more smaller scales.

Model: log N_i*(t) = alpha_i + t * beta_i, i.e. N_i*(t) = N_i(1)* r_i^t with r_i = N_i(2)*/N_i(1)*
(t = 0 at the first scale, 1 at the second). For L = L0 + sum_i beta_i N_i^(-gamma_i) this is
exact: t is an affine function of log lambda. With k > 2 scales, alpha, beta and the t of each
further scale are the least-squares fit of the (k x m) matrix log N*: a rank-one fit of its
column-centred part (SVD). A target budget N_t gives t by solving
`log sum_i exp(alpha_i + t beta_i) = log N_t` (convex in t; the root on its increasing branch).
Any target works, between the measured scales (interpolation) as well as beyond them.

Floors (`fit_floored`, `predict_floored`): a domain DDO held at its weight floor at every scale
says nothing about how its optimum grows (its tokens are the floor times the budget, whatever
the loss), so it keeps the floor weight at the target and the log-linear law is fitted and
solved over the other domains only, on the budget left after the floored tokens. A domain the
law drives below the floor at the target is held at the floor too and the rest re-solved (the
KKT conditions with a lower bound: bounded domains drop out, the others share one t).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mixer.solver.numerics.root import bracketed_newton


@dataclass(frozen=True)
class AutoScaleFit:
    alpha: np.ndarray        # log N_i* at t = 0 (the first scale, as fitted)
    beta: np.ndarray         # log r_i: growth of log N_i* per unit t
    t: np.ndarray            # t of every input scale (0 and 1 for the first two)
    budgets: np.ndarray      # sum of N* at every input scale
    residuals: np.ndarray    # (k, m) log N* - fit; all 0 with two scales

    @property
    def rms_residual(self) -> float:
        return float(np.sqrt(np.mean(self.residuals ** 2)))


@dataclass(frozen=True)
class AutoScaleResult:
    x: np.ndarray            # predicted tokens per domain at the target
    weights: np.ndarray      # x / target
    t: float
    target: float
    success: bool
    message: str
    iterations: int


def fit_autoscale(optima) -> AutoScaleFit:
    """`optima`: (k >= 2, m) optimal tokens per domain, one row per scale, all positive."""
    N = np.asarray(optima, float)
    if N.ndim != 2 or N.shape[0] < 2 or N.shape[1] < 1:
        raise ValueError(f"optima must be (scales >= 2, domains), got shape {N.shape}")
    if not (np.all(np.isfinite(N)) and np.all(N > 0)):
        bad = np.argwhere(~(np.isfinite(N) & (N > 0)))[0]
        raise ValueError(f"optimum at scale {bad[0]}, domain {bad[1]} is {N[tuple(bad)]}; tokens must be > 0 "
                         "(a domain at zero weight cannot be extrapolated: give DDO a floor)")
    budgets = N.sum(axis=1)
    Y = np.log(N)
    mean = Y.mean(axis=0)
    U, S, Vt = np.linalg.svd(Y - mean, full_matrices=False)
    u, v = U[:, 0] * S[0], Vt[0]
    if abs(u[1] - u[0]) <= 1e-14 * max(1.0, np.abs(u).max()):
        raise ValueError("the first two scales have the same optimum; AutoScale needs two different scales")
    # Re-express so that t = 0 at the first scale and t = 1 at the second.
    d = u[1] - u[0]
    t = (u - u[0]) / d
    beta = v * d
    alpha = mean + u[0] * v  # Y_s = mean + u_s v = alpha + t_s beta
    resid = Y - (alpha + np.outer(t, beta))
    if N.shape[0] == 2:  # exact in principle: use the data directly, not the SVD round-off
        alpha, beta, t, resid = Y[0].copy(), Y[1] - Y[0], np.array([0.0, 1.0]), np.zeros_like(Y)
    return AutoScaleFit(alpha=alpha, beta=beta, t=t, budgets=budgets, residuals=resid)


def predict(fit: AutoScaleFit, target: float) -> AutoScaleResult:
    """Optimal tokens and weights at budget `target` (same units as the optima)."""
    if not (np.isfinite(target) and target > 0):
        raise ValueError(f"target must be positive, got {target}")
    a, b, log_target = fit.alpha, fit.beta, float(np.log(target))

    def F(t: float) -> tuple[float, float]:   # log-sum-exp and its slope (softmax mean of beta)
        z = a + t * b
        zmax = z.max()
        e = np.exp(z - zmax)
        s = e.sum()
        return float(zmax + np.log(s) - log_target), float(e @ b / s)

    # The slope is increasing in t; find the minimiser of F if it exists, then the root right of it.
    t_min = -np.inf
    if b.min() < 0 < b.max():
        lo, hi = -1.0, 1.0
        while F(lo)[1] > 0:
            lo *= 2
        while F(hi)[1] < 0:
            hi *= 2
        t_min, _ = bracketed_newton(lambda t: (F(t)[1], np.nan), lo, hi, xtol=1e-14)  # bisection on the slope
        if F(t_min)[0] > 0:
            raise ValueError(f"target {target:g} is below the smallest budget this fit can reach "
                             f"({np.exp(F(t_min)[0] + log_target):g})")
    if b.max() <= 0:
        raise ValueError("no domain grows with scale (all r_i <= 1); the optima are inconsistent")
    lo = t_min if np.isfinite(t_min) else 0.0
    step = 1.0
    while F(lo)[0] > 0:
        lo -= step
        step *= 2
    hi, step = max(lo, 0.0) + 1.0, 1.0
    while F(hi)[0] < 0:
        hi += step
        step *= 2
    t, it = bracketed_newton(F, lo, hi, ftol=1e-15)
    x = np.exp(a + t * b)
    x *= target / x.sum()    # remove the last rounding error in the budget
    return AutoScaleResult(x=x, weights=x / target, t=float(t), target=float(target), success=True,
                           message=f"t = {t:.6g}", iterations=it)


@dataclass(frozen=True)
class FlooredFit:
    """The log-linear law over the domains DDO did not hold at the floor (`free`); `fit` is None
    when every domain sat at the floor at every scale."""
    fit: AutoScaleFit | None
    free: np.ndarray         # (m,) bool: domains in the law
    floor: float             # the weight floor (0: none)


FLOOR_RTOL = 1e-6  # a weight within this relative distance of the floor is at the floor (solver round-off)


def at_floor(weights, floor: float | None) -> np.ndarray:
    """(m,) bool: domains at the floor in every row of `weights` (one row per scale)."""
    W = np.atleast_2d(np.asarray(weights, float))
    if not floor or floor <= 0:
        return np.zeros(W.shape[1], bool)
    return np.all(W <= floor * (1 + FLOOR_RTOL) + 1e-12, axis=0)


def fit_floored(optima, floor: float | None = None) -> FlooredFit:
    """`fit_autoscale` over the domains not at `floor` (a weight) at every scale."""
    N = np.asarray(optima, float)
    if N.ndim != 2 or N.shape[0] < 2 or N.shape[1] < 1:
        raise ValueError(f"optima must be (scales >= 2, domains), got shape {N.shape}")
    free = ~at_floor(N / N.sum(axis=1, keepdims=True), floor)
    fit = fit_autoscale(N[:, free]) if free.any() else None
    return FlooredFit(fit=fit, free=free, floor=float(floor or 0.0))


def _subset(fit: AutoScaleFit, keep: np.ndarray) -> AutoScaleFit:
    return AutoScaleFit(alpha=fit.alpha[keep], beta=fit.beta[keep], t=fit.t, budgets=fit.budgets,
                        residuals=fit.residuals[:, keep])


def predict_floored(ff: FlooredFit, target: float) -> AutoScaleResult:
    """Weights at `target`: floored domains at the floor, the rest from the law on the budget left,
    any domain the law puts below the floor raised to it and the others re-solved."""
    if not (np.isfinite(target) and target > 0):
        raise ValueError(f"target must be positive, got {target}")
    m = ff.free.size
    in_law = np.ones(int(ff.free.sum()), bool)   # over the free domains: still solved by the law
    t, iterations, x = float("nan"), 0, np.full(m, ff.floor * target)
    while in_law.any():
        left = target * (1 - ff.floor * (m - int(in_law.sum())))
        res = predict(_subset(ff.fit, in_law), left)
        iterations += res.iterations
        low = res.weights * left < ff.floor * target * (1 - FLOOR_RTOL)
        if not low.any():
            x[np.flatnonzero(ff.free)[in_law]] = res.x
            t = res.t
            break
        in_law[np.flatnonzero(in_law)[low]] = False
    held = int(np.sum(x <= ff.floor * target * (1 + FLOOR_RTOL))) if ff.floor else 0
    x *= target / x.sum()
    return AutoScaleResult(x=x, weights=x / target, t=t, target=float(target), success=True,
                           message=f"t = {t:.6g}" + (f"; {held} domain(s) at the floor" if held else ""),
                           iterations=iterations)


def weights_curve(fit: AutoScaleFit, targets: Sequence[float]) -> np.ndarray:
    """(len(targets), m) predicted weights: the curve of Figure 6."""
    return np.array([predict(fit, float(n)).weights for n in targets])


class AutoScale:
    """`AutoScale().fit(optima).predict(target)`; optima as an array or a list of {domain: tokens}."""

    def __init__(self, *, domains: Sequence[str] | None = None):
        self.domains = domains

    def fit(self, optima) -> "AutoScale":
        if len(optima) and isinstance(optima[0], dict):
            names = list(self.domains or optima[0])
            for i, o in enumerate(optima):
                if set(o) != set(names):
                    odd = sorted(set(o) ^ set(names))[0]
                    raise ValueError(f"scale {i}: domain {odd!r} is not in every optimum")
            optima = [[o[d] for d in names] for o in optima]
            self.domains_ = tuple(names)
        else:
            self.domains_ = tuple(self.domains) if self.domains else tuple(f"d{i}" for i in range(len(optima[0])))
        self.fit_ = fit_autoscale(optima)
        return self

    def predict(self, target: float) -> AutoScaleResult:
        return predict(self.fit_, target)

    def curve(self, targets: Sequence[float]) -> np.ndarray:
        return weights_curve(self.fit_, targets)
