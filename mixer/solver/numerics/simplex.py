"""The feasible set every mixture solver shares, `{x : sum(x) = total, lower <= x <= upper}`,
its Euclidean projection, and a spectral projected-gradient minimiser over it (SPG: Birgin,
Martinez and Raydan 2000; Barzilai-Borwein steps with a non-monotone Armijo search)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from mixer.solver.numerics.root import bracketed_newton


def feasible_bounds(m: int, total: float, lower=None, upper=None) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast bounds to shape (m,); caps above `total` are cut to `total`. Raises if empty."""
    lo = np.zeros(m) if lower is None else np.broadcast_to(np.asarray(lower, float), (m,)).copy()
    hi = np.full(m, float(total)) if upper is None else np.minimum(np.broadcast_to(np.asarray(upper, float), (m,)), total)
    if np.any(~np.isfinite(lo)) or np.any(np.isnan(hi)):
        raise ValueError("bounds must be finite numbers")
    if np.any(lo < 0):
        raise ValueError(f"lower bound {lo.min()} is negative; floors must be >= 0")
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        raise ValueError(f"domain index {bad[0]}: floor {lo[bad[0]]} is above cap {hi[bad[0]]}")
    if lo.sum() > total * (1 + 1e-12):
        raise ValueError(f"floors sum to {lo.sum():g} > total {total:g}; lower the floors")
    if hi.sum() < total * (1 - 1e-12):
        raise ValueError(f"caps sum to {hi.sum():g} < total {total:g}; raise the caps")
    return lo, hi


def project(y: np.ndarray, total: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """argmin ||x - y|| over the feasible set: x = clip(y - tau, lo, hi) with sum(x) = total."""
    def g(tau: float) -> tuple[float, float]:
        z = y - tau
        x = np.clip(z, lo, hi)
        n_free = np.count_nonzero((z > lo) & (z < hi))
        return float(x.sum() - total), -float(n_free)

    t_lo, t_hi = float(np.min(y - hi)), float(np.max(y - lo))
    tau0 = (float(y.sum()) - total) / y.size
    tau, _ = bracketed_newton(g, t_lo, t_hi, tau0, ftol=1e-13 * max(1.0, abs(total)))
    x = np.clip(y - tau, lo, hi)
    return _fix_sum(x, total, lo, hi)


def _fix_sum(x: np.ndarray, total: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Spread the last rounding error over coordinates with room, so sum(x) == total to ~1 ulp."""
    err = total - x.sum()
    if err == 0.0:
        return x
    room = (hi - x) if err > 0 else (x - lo)
    free = room > 0
    if free.any():
        share = np.zeros_like(x)
        share[free] = room[free] / room[free].sum()
        x = np.clip(x + err * share, lo, hi)
    return x


@dataclass(frozen=True)
class SPGResult:
    x: np.ndarray
    fun: float
    success: bool
    message: str
    iterations: int
    pg_norm: float  # ||P(x - grad) - x||_inf at the end: 0 exactly at a KKT point


SPG_MEMORY = 10  # the non-monotone line search compares with the worst of the last 10 values (Birgin et al.)


def spg_minimize(fun: Callable[[np.ndarray], float], grad: Callable[[np.ndarray], np.ndarray],
                 x0: np.ndarray, total: float, lo: np.ndarray, hi: np.ndarray, *,
                 tol: float = 1e-10, max_iter: int = 20000) -> SPGResult:
    """Minimise a smooth `fun` over the feasible set by spectral projected gradient."""
    x = project(np.asarray(x0, float), total, lo, hi)
    f, g = fun(x), grad(x)
    recent = [f]
    alpha = 1.0 / max(float(np.max(np.abs(g))), 1e-12)
    pg = float(np.max(np.abs(project(x - g, total, lo, hi) - x)))
    for it in range(1, max_iter + 1):
        if pg <= tol:
            return SPGResult(x, f, True, "projected gradient below tol", it - 1, pg)
        d = project(x - alpha * g, total, lo, hi) - x
        gd = float(g @ d)
        f_ref, step = max(recent), 1.0
        while True:
            x_new = x + step * d
            f_new = fun(x_new)
            if f_new <= f_ref + 1e-4 * step * gd or step < 1e-20:
                break
            step *= 0.5
        g_new = grad(x_new)
        s, yv = x_new - x, g_new - g
        sy = float(s @ yv)
        alpha = min(max(float(s @ s) / sy, 1e-12), 1e12) if sy > 0 else 1e12
        x, f, g = x_new, f_new, g_new
        recent = (recent + [f])[-SPG_MEMORY:]
        pg = float(np.max(np.abs(project(x - g, total, lo, hi) - x)))
        if step < 1e-20:
            return SPGResult(x, f, False, "line search failed", it, pg)
    return SPGResult(x, f, pg <= tol, "max_iter reached", max_iter, pg)
