"""Direct Data Optimization (paper §2.2, Algorithm 1): plan the perturbed runs, fit a power law
per domain, and solve

    min_x  sum_j (a_j + x_j)^(-b_j)   s.t.  sum_j x_j = total,  lower_j <= x_j <= upper_j

exactly through its KKT condition: every domain strictly inside its bounds has the same slope,
`b_j (a_j + x_j)^(-b_j-1) = lambda`, so `x_j(lambda) = clip((b_j/lambda)^(1/(b_j+1)) - a_j)` and one
monotone equation `sum_j x_j(lambda) = total` in `log lambda` remains (Newton inside a bisection
bracket; O(m) per step). `solve_ddo_pgd` is the paper's projected gradient, kept as a cross-check.
In the authors' units `a_j = n0_j` (shifted form) or 0 (plain), `total = m`, `w_j = x_j / m`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from mixer.solver.numerics.root import bracketed_newton
from mixer.solver.numerics.simplex import feasible_bounds, spg_minimize

ROLES = ("base", "perturbed")


@dataclass(frozen=True)
class DDOResult:
    x: np.ndarray            # optimal tokens per domain, in the units of `total`
    weights: np.ndarray      # x / total
    fun: float               # sum_j (a_j + x_j)^(-b_j)
    lam: float               # KKT multiplier (common slope of the free domains)
    success: bool
    message: str
    iterations: int
    at_lower: np.ndarray     # bool per domain: held at its floor
    at_upper: np.ndarray     # bool per domain: held at its cap


def _check(a, b, total) -> tuple[np.ndarray, np.ndarray, float]:
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"a and b must be non-empty 1-D arrays of equal length, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(a >= 0)):
        raise ValueError(f"a (n0) must be finite and >= 0; min is {np.nanmin(a)}")
    if not (np.all(np.isfinite(b)) and np.all(b >= 0)):
        raise ValueError(f"b must be finite and >= 0; min is {np.nanmin(b)}")
    if not (np.isfinite(total) and total > 0):
        raise ValueError(f"total must be positive, got {total}")
    return a, b, float(total)


def objective(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(divide="ignore"):
        return float(np.sum((a + x) ** (-b)))


def solve_ddo(a, b, total: float, *, lower=None, upper=None) -> DDOResult:
    """Exact minimiser by the KKT condition (one-dimensional search on log lambda)."""
    a, b, total = _check(a, b, total)
    lo, hi = feasible_bounds(a.size, total, lower, upper)
    if not np.any(b > 0):  # every curve flat: every mixture is as good; the uniform point (within bounds)
        x = np.clip(np.full(a.size, total / a.size), lo, hi)
        x += (total - x.sum()) * (hi > x) / max(1, int((hi > x).sum()))
        at_lo, at_hi = x <= lo, x >= hi
        return DDOResult(x=x, weights=x / total, fun=objective(x, a, b), lam=0.0, success=True,
                         message="every curve is flat: no mixture is better than another; uniform returned",
                         iterations=0, at_lower=at_lo, at_upper=at_hi)
    p = 1.0 / (b + 1.0)
    with np.errstate(divide="ignore"):
        log_b = np.log(b)  # -inf where b == 0: such a domain never beats its floor

    def x_of(mu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = np.exp(p * (log_b - mu))
        raw = z - a
        return np.clip(raw, lo, hi), raw, z

    def g(mu: float) -> tuple[float, float]:
        x, raw, z = x_of(mu)
        free = (raw > lo) & (raw < hi)
        return float(x.sum() - total), -float(np.sum(p[free] * z[free]))

    # Bracket: start at the mean slope of the uniform point and expand until the sign changes.
    x_u = np.clip(np.full(a.size, total / a.size), lo, hi)
    with np.errstate(divide="ignore"):
        slopes = log_b - (b + 1) * np.log(a + x_u)
    ok = np.isfinite(slopes)
    mu0 = float(np.mean(slopes[ok])) if ok.any() else 0.0
    step, lo_mu, hi_mu = 1.0, mu0, mu0
    while g(hi_mu)[0] > 0:
        hi_mu += step
        step *= 2
        if step > 1e6:
            raise ValueError("cannot bracket the KKT multiplier (all b = 0?)")
    step = 1.0
    while g(lo_mu)[0] < 0:
        lo_mu -= step
        step *= 2
        if step > 1e6:
            raise ValueError("cannot bracket the KKT multiplier; caps too small for total?")
    mu, it = bracketed_newton(g, lo_mu, hi_mu, mu0, ftol=1e-13 * total)
    x, raw, z = x_of(mu)
    free = (raw > lo) & (raw < hi)
    err = total - x.sum()
    if err != 0 and free.any():  # last rounding error, along the Newton direction in x
        dx = p[free] * z[free]
        x[free] = np.clip(x[free] + err * dx / dx.sum(), lo[free], hi[free])
    at_lo, at_hi = x <= lo, x >= hi
    return DDOResult(x=x, weights=x / total, fun=objective(x, a, b), lam=float(np.exp(mu)), success=True,
                     message=f"KKT solved; {int(at_lo.sum())} at floor, {int(at_hi.sum())} at cap",
                     iterations=it, at_lower=at_lo, at_upper=at_hi)


def solve_ddo_pgd(a, b, total: float, *, lower=None, upper=None, tol: float = 1e-12,
                  max_iter: int = 50000) -> DDOResult:
    """The same problem by spectral projected gradient descent (the paper's route; a cross-check)."""
    a, b, total = _check(a, b, total)
    lo, hi = feasible_bounds(a.size, total, lower, upper)

    def grad(x):
        with np.errstate(divide="ignore"):
            return -b * (a + x) ** (-b - 1)

    r = spg_minimize(lambda x: objective(x, a, b), grad, np.full(a.size, total / a.size), total, lo, hi,
                     tol=tol, max_iter=max_iter)
    g = -grad(r.x)
    free = (r.x > lo) & (r.x < hi)
    lam = float(np.median(g[free])) if free.any() else float("nan")
    return DDOResult(x=r.x, weights=r.x / total, fun=r.fun, lam=lam, success=r.success, message=r.message,
                     iterations=r.iterations, at_lower=r.x <= lo, at_upper=r.x >= hi)


# --- planning the runs ------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedRun:
    name: str
    weights: dict[str, float]
    budget_tokens: int
    provenance: dict[str, Any] = field(default_factory=dict)


def plan(domains: Sequence[str], budget_tokens: int, base_weights: Mapping[str, float] | None = None,
         factors: Sequence[float] = (3.0,), keep_total: bool = True) -> list[PlannedRun]:
    """The base run and one run per (domain, factor).

    keep_total=True (§2.2): domain j gets `factor * w_j`, the others are rescaled so the budget
    stays N. keep_total=False (Algorithm 1): the others keep their tokens and the budget becomes
    `N + (factor - 1) * w_j * N`.
    """
    domains = list(domains)
    if not domains or len(set(domains)) != len(domains):
        raise ValueError(f"domains must be non-empty and unique, got {domains}")
    if int(budget_tokens) <= 0:
        raise ValueError(f"budget_tokens must be positive, got {budget_tokens}")
    if base_weights is None:
        w = {d: 1.0 / len(domains) for d in domains}
    else:
        missing = [d for d in domains if d not in base_weights]
        if missing:
            raise ValueError(f"base_weights has no weight for domain {missing[0]!r}")
        total = sum(base_weights[d] for d in domains)
        w = {d: base_weights[d] / total for d in domains}
    for f in factors:
        if not (f > 0 and f != 1):
            raise ValueError(f"factor {f!r}: must be positive and not 1")
    runs = [PlannedRun("base", dict(w), int(budget_tokens),
                       {"role": "base", "domain": None, "factor": None, "total": None})]
    for d in domains:
        if not w[d] > 0:
            raise ValueError(f"domain {d!r} has base weight 0; perturbing it by a factor changes nothing")
        for f in factors:
            new = f * w[d]
            if keep_total:
                if new >= 1 and len(domains) > 1:
                    raise ValueError(f"domain {d!r}: factor {f:g} x weight {w[d]:.4g} >= 1 with fixed totals; use a "
                                     "smaller factor, or --total grown (the other domains keep their tokens)")
                rest = (1 - new) / (1 - w[d]) if len(domains) > 1 else 0.0
                weights = {k: (new if k == d else w[k] * rest) for k in domains}
                budget, total = int(budget_tokens), "fixed"
            else:
                grown = 1 + (f - 1) * w[d]
                weights = {k: (new if k == d else w[k]) / grown for k in domains}
                budget, total = int(round(budget_tokens * grown)), "grown"
            s = sum(weights.values())
            weights = {k: v / s for k, v in weights.items()}
            prov = {"role": "perturbed", "domain": d, "factor": float(f), "total": total}
            if total == "grown":
                prov["sweep_budget"] = int(budget_tokens)  # the sweep's N (the run trains on more)
            runs.append(PlannedRun(f"{d}-x{f:g}", weights, budget, prov))
    return runs
