"""One root finder for every monotone 1-D equation in the solver (KKT multiplier, simplex
projection shift, AutoScale's t): Newton steps kept inside a shrinking bracket, bisection when
a step would leave it. Exact for piecewise-linear functions in finitely many steps."""
from __future__ import annotations

from typing import Callable

import numpy as np


def bracketed_newton(fun: Callable[[float], tuple[float, float]], lo: float, hi: float,
                     x0: float | None = None, *, ftol: float = 0.0, xtol: float = 1e-15,
                     max_iter: int = 300) -> tuple[float, int]:
    """Root of a monotone `g` on `[lo, hi]` where `g(lo)` and `g(hi)` differ in sign.

    `fun(x)` returns `(g(x), g'(x))`. Returns `(x, iterations)`; stops when `|g| <= ftol` or
    the bracket is narrower than `xtol` (relative to `max(1, |x|)`).
    """
    g_lo = fun(lo)[0]
    if g_lo == 0.0:
        return lo, 0
    x = x0 if x0 is not None and lo < x0 < hi else 0.5 * (lo + hi)
    for it in range(1, max_iter + 1):
        g, dg = fun(x)
        if abs(g) <= ftol:
            return x, it
        if (g > 0) == (g_lo > 0):
            lo = x
        else:
            hi = x
        if hi - lo <= xtol * max(1.0, abs(x)):
            return x, it
        step = x - g / dg if dg != 0 and np.isfinite(dg) else np.nan
        x = step if lo < step < hi else 0.5 * (lo + hi)
    return x, max_iter
