"""Per-domain power laws of held-out loss against a domain's tokens (paper eq. 2, Algorithm 1).

    shifted:  y = (n0 + x)^(-b) + c      (3 parameters; n0 = equivalent data from other domains)
    plain:    y = x^(-b) + c             (2 parameters; Algorithm 1)

There is no amplitude term, so the units matter: the solver fits in the authors' units
(x = tokens / (N/m), y = loss / base-run loss; see `mixer.solver.runs`). Fitting is bounded
nonlinear least squares (`scipy.optimize.least_squares`, analytic Jacobian) from the best few
points of a start grid (all 30 by default: the loss surface has local minima), with `c` set
by linear least squares at each start.

Ambiguous fits. With as many points as parameters a domain can have two exact fits (seen on
real runs: one with b ~ 1-2 and c ~ 0.8-0.95, one with b < 0.15 and c < 0.1), and which start
reaches the lower cost is rounding noise. The rule: every start's optimum whose cost is within
`tol = 1e-9 * best cost + 1e-13 * sum(y^2)/2` of the best is a candidate (equally good to
rounding, not merely close: a looser tolerance flagged most fits of noisy data, whose local
minima differ by far less than the noise); candidates that differ by more than 0.1 %
in any parameter are distinct fits; if there are several, the fit with the **largest c** is kept
(the smallest part of the loss reducible by this one domain: the other fit claims nearly all of
the loss can be removed by one domain's data, which no measured curve supports), `ambiguous` is
set and the others are returned in `alternatives`. The kept fit is then polished from its
parameters rounded to 6 significant digits, so the answer does not depend on which or how many
starts reached it. Ambiguity matters only where the fit interpolates (no residual to tell the
fits apart); with more points the bootstrap's multi-start replicates carry it into the intervals.

Flat and ill-posed fits. A domain whose loss does not fall with its tokens (b at 0, n0 at its
bound, or the group means not decreasing) is `flat`: a finding, not a failure (a junk domain is
flat), and the optimum holds it at its floor. `ill_posed` is kept for fits that cannot be trusted
at all: b at its upper bound (a step, not a power law) or no start that converged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

FORMS = {"shifted": ("n0", "b", "c"), "plain": ("b", "c")}
B_MAX = 20.0


@dataclass(frozen=True)
class PowerLawFit:
    form: str
    x: np.ndarray            # parameters, in the order of `names`
    names: tuple[str, ...]
    fun: float               # 0.5 * sum of squared residuals
    success: bool
    message: str
    iterations: int          # function evaluations of the best start
    residuals: np.ndarray    # model - data, per point
    interpolates: bool       # as many points as parameters: the fit passes through them exactly
    ill_posed: bool          # the data cannot pin the parameters down (see `message`)
    cov: np.ndarray | None   # parameter covariance from the Jacobian, when points > parameters
    ambiguous: bool = False  # several distinct fits as good as this one (see the module docstring)
    alternatives: tuple[np.ndarray, ...] = ()  # their parameters, in the order of `names`
    flat: bool = False       # the loss does not fall with this domain's tokens (see the module docstring)

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.names, map(float, self.x)))

    @property
    def n0(self) -> float:
        return float(self.x[0]) if self.form == "shifted" else 0.0

    @property
    def b(self) -> float:
        return float(self.x[-2])

    @property
    def c(self) -> float:
        return float(self.x[-1])

    def predict(self, x) -> np.ndarray:
        return power_law(np.asarray(x, float), self.x, self.form)

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean(self.residuals ** 2)))


def power_law(x: np.ndarray, theta: np.ndarray, form: str) -> np.ndarray:
    n0 = theta[0] if form == "shifted" else 0.0
    with np.errstate(divide="ignore"):
        return (n0 + x) ** (-theta[-2]) + theta[-1]


def power_law_rows(x: np.ndarray, thetas: np.ndarray, form: str) -> np.ndarray:
    """Curve j (parameters `thetas[j]`) at `x[j]`, for every j at once."""
    thetas = np.asarray(thetas, float)
    n0 = thetas[:, 0] if form == "shifted" else 0.0
    with np.errstate(divide="ignore"):
        return (n0 + np.asarray(x, float)) ** (-thetas[:, -2]) + thetas[:, -1]


def _jacobian(theta: np.ndarray, x: np.ndarray, form: str) -> np.ndarray:
    n0 = theta[0] if form == "shifted" else 0.0
    b = theta[-2]
    u = n0 + x
    f = u ** (-b)
    cols = [-b * f / u] if form == "shifted" else []
    cols += [-np.log(u) * f, np.ones_like(x)]
    return np.stack(cols, axis=1)


def _starts(x: np.ndarray, y: np.ndarray, form: str, n_starts: int | None) -> list[np.ndarray]:
    """Grid over (n0, b), c by linear least squares; keep the `n_starts` best (None: all)."""
    scale = float(np.median(x))
    n0s = [0.0, 0.1 * scale, 0.5 * scale, 2.0 * scale, 10.0 * scale] if form == "shifted" else [0.0]
    cands = []
    for n0 in n0s:
        for b in (0.02, 0.1, 0.3, 0.7, 1.5, 3.0):
            f = (n0 + x) ** (-b)
            c = float(np.mean(y - f))
            theta = np.array([n0, b, c] if form == "shifted" else [b, c])
            cands.append((float(np.sum((f + c - y) ** 2)), theta))
    cands.sort(key=lambda t: t[0])
    return [t for _, t in cands[:n_starts]]


def fit_power_law(x, y, *, form: str = "shifted", n_starts: int | None = None, x0=None,
                  tol: float = 1e-14) -> PowerLawFit:
    """Fit `y ~ (n0 + x)^(-b) + c` (or `x^(-b) + c`). `x0`: a single warm start (bootstrap)."""
    if form not in FORMS:
        raise ValueError(f"form {form!r}: expected one of {sorted(FORMS)}")
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    if np.any(x <= 0):
        raise ValueError(f"x must be > 0 (tokens), got min {x.min()}")
    names = FORMS[form]
    p = len(names)
    n_distinct = np.unique(x).size
    if n_distinct < p:
        raise ValueError(f"{form} power law has {p} parameters but only {n_distinct} distinct x values; add runs")
    span = float(np.ptp(y)) + abs(float(y.max())) + 1.0
    lb = np.array(([0.0] if form == "shifted" else []) + [0.0, float(y.min()) - 10 * span])
    ub = np.array(([1e4 * float(x.max())] if form == "shifted" else []) + [B_MAX, float(y.max())])
    if x0 is None:
        starts = _starts(x, y, form, n_starts)
    else:   # a warm start first; with n_starts also the best grid points (other basins)
        starts = [np.clip(np.asarray(x0, float), lb, ub)] + (_starts(x, y, form, n_starts) if n_starts else [])
    def solve(theta0):
        """One start; None when scipy fails on it (a numeric failure is never raised to the user)."""
        try:
            with np.errstate(all="ignore"):
                r = least_squares(lambda t: power_law(x, t, form) - y, np.clip(theta0, lb, ub),
                                  jac=lambda t: _jacobian(t, x, form), bounds=(lb, ub), method="trf",
                                  x_scale="jac", ftol=tol, xtol=tol, gtol=tol, max_nfev=2000)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            return None
        return r if np.isfinite(r.cost) and np.all(np.isfinite(r.x)) else None

    if x0 is None and len(starts) > POLISHED:
        starts = _screen(x, y, form, starts)
    results = [r for r in map(solve, starts) if r is not None]
    if not results:
        raise ValueError("no start of the power-law fit converged (numeric failure)")
    if x0 is not None:   # a warm start (bootstrap replicate): keep the best, no ambiguity report
        best, alternatives = min(results, key=lambda r: r.cost), []
    else:
        best, alternatives = _pick(results, y, solve)
    theta = best.x
    resid = power_law(x, theta, form) - y
    flat_why, reasons = [], []
    means = np.array([y[x == u].mean() for u in np.unique(x)])
    if np.all(np.diff(means) >= 0):
        flat_why.append("loss does not decrease with this domain's tokens")
    if theta[-2] <= 1e-6:
        flat_why.append("exponent b hit 0 (flat)")
    if form == "shifted" and theta[0] >= ub[0] * 0.999:
        flat_why.append("n0 hit its upper bound (flat)")
    if theta[-2] >= B_MAX * 0.999:
        reasons.append(f"exponent b hit its bound {B_MAX}")
    J = _jacobian(theta, x, form)
    sv = np.linalg.svd(J, compute_uv=False)
    if sv[-1] <= 1e-10 * sv[0] and not flat_why:
        reasons.append("Jacobian is rank-deficient: parameters not identifiable")
    cov = None
    if x.size > p and not reasons and not flat_why:
        s2 = float(resid @ resid) / (x.size - p)
        cov = s2 * np.linalg.pinv(J.T @ J)
    interpolates = x.size == p
    msg = "; ".join(reasons + flat_why) if reasons or flat_why else best.message
    if interpolates:
        msg = f"exact interpolation ({p} points, {p} parameters): no residual check; {msg}"
    if alternatives:
        shown = sorted(alternatives, key=lambda a: a[-1])[:: max(1, len(alternatives) // 3)][:3]  # spread over c
        alt = ", ".join("(" + ", ".join(f"{n}={v:.3g}" for n, v in zip(names, a)) + ")" for a in shown)
        extra = len(alternatives) - len(shown)
        more = f" and {extra} more (all in `alternatives`)" if extra else ""
        msg = (f"ambiguous: {len(alternatives) + 1} equally good fits; kept the one with the largest c, "
               f"others {alt}{more}; {msg}")
    return PowerLawFit(form=form, x=theta, names=names, fun=float(best.cost), success=bool(best.success) and not reasons,
                       message=msg, iterations=int(best.nfev), residuals=resid, interpolates=interpolates,
                       ill_posed=bool(reasons), cov=cov, ambiguous=bool(alternatives),
                       alternatives=tuple(alternatives), flat=bool(flat_why))


POLISHED = 6  # distinct local optima of the start grid that scipy polishes (see `_screen`)


def _screen(x: np.ndarray, y: np.ndarray, form: str, starts: list[np.ndarray]) -> list[np.ndarray]:
    """Every grid start run to its local optimum at once (`fit_power_law_batch`), then the
    `POLISHED` best distinct optima (parameters differing by > 1 %) handed to scipy: the same basins
    as polishing all 30 starts with scipy, at a fifth of the cost (the calibration runs ~10^5 fits)."""
    thetas, costs = fit_power_law_batch(x, np.tile(y, (len(starts), 1)), form=form, theta0=np.array(starts), n_grid=0)
    kept: list[np.ndarray] = []
    for i in np.argsort(costs):
        if not np.isfinite(costs[i]):
            continue
        if all(not np.allclose(thetas[i], k, rtol=1e-2, atol=1e-6) for k in kept):
            kept.append(thetas[i])
        if len(kept) == POLISHED:
            break
    return kept or starts


def _round_sig(v: np.ndarray, digits: int = 6) -> np.ndarray:
    """`v` rounded to `digits` significant digits; values below 1e-300 (subnormals such as the
    5e-324 scipy's TRF leaves at a 0 bound, whose 10**-mag overflows to NaN) become 0."""
    v = np.asarray(v, float)
    tiny = ~(np.abs(v) >= 1e-300)
    safe = np.where(tiny, 1.0, v)
    mag = np.floor(np.log10(np.abs(safe)))
    return np.where(tiny, 0.0, np.round(safe / 10 ** mag, digits - 1) * 10 ** mag)


def _pick(results: list, y: np.ndarray, solve) -> tuple:
    """The rule of the module docstring: candidates within `tol` of the best cost, clustered by
    parameters; the cluster with the largest c kept and polished; the others returned."""
    best_cost = min(r.cost for r in results)
    tol = 1e-9 * best_cost + 1e-13 * 0.5 * float(y @ y)
    clusters: list[list] = []
    for r in sorted((r for r in results if r.cost <= best_cost + tol), key=lambda r: r.cost):
        for c in clusters:
            if np.allclose(r.x, c[0].x, rtol=1e-3, atol=1e-9):
                c.append(r)
                break
        else:
            clusters.append([r])
    clusters.sort(key=lambda c: -c[0].x[-1])
    kept = clusters[0][0]
    polished = solve(_round_sig(kept.x))
    if polished is not None and polished.cost <= best_cost + tol and np.allclose(polished.x, kept.x, rtol=1e-3, atol=1e-9):
        kept = polished
    return kept, [c[0].x.copy() for c in clusters[1:]]


def fit_power_law_batch(x, Y, *, form: str = "shifted", theta0=None, n_grid: int = 2,
                        iters: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Fit one power law to every row of `Y` (K, n) at the same `x`, all rows at once: the
    bootstrap's refits, where calling scipy once per replicate and start cost seconds per sweep.

    Projected Levenberg-Marquardt (steps clipped into the bounds `fit_power_law` uses, the damping
    scaled by the diagonal of J^T J) from `theta0` (K, p) when given, and from the `n_grid` best
    points of each row's dense start grid (31 n0 x 30 b, log-spaced, c by least squares: the
    surface has local minima, and a start in the right basin is what makes LM global); the lowest
    cost per row wins. Returns (theta (K, p), cost (K,)),
    cost = 0.5 * sum of squared residuals. The test suite checks it against `fit_power_law`.
    """
    x = np.asarray(x, float)
    Y = np.atleast_2d(np.asarray(Y, float))
    K, n = Y.shape
    p = len(FORMS[form])
    span = np.ptp(Y, axis=1) + np.abs(Y.max(axis=1)) + 1.0
    lb = np.zeros((K, p))
    ub = np.empty((K, p))
    lb[:, -1] = Y.min(axis=1) - 10 * span
    ub[:, -1] = Y.max(axis=1)
    ub[:, -2] = B_MAX
    if form == "shifted":
        ub[:, 0] = 1e4 * float(x.max())
    starts = [] if theta0 is None else [np.asarray(theta0, float).reshape(K, p)]
    if n_grid:
        scale = float(np.median(x))
        n0s = [0.0, *np.geomspace(1e-3 * scale, 1e3 * scale, 30)] if form == "shifted" else [0.0]
        grid = [(n0, b) for n0 in n0s for b in np.geomspace(1e-3, 10.0, 30)]
        F = np.array([(n0 + x) ** (-b) for n0, b in grid])  # (G, n)
        C = Y.mean(axis=1)[:, None] - F.mean(axis=1)[None, :]  # (K, G): c by least squares
        sse = np.sum((F[None, :, :] + C[:, :, None] - Y[:, None, :]) ** 2, axis=2)
        for rank in range(min(n_grid, len(grid))):
            g = np.argsort(sse, axis=1)[:, rank]
            th = np.column_stack(([np.array(grid)[g, 0]] if form == "shifted" else []) +
                                 [np.array(grid)[g, 1], C[np.arange(K), g]])
            starts.append(th)
    best_theta, best_cost = None, None
    for th in starts:
        th, cost = _lm_batch(x, Y, np.clip(th, lb, ub), lb, ub, form, iters)
        if best_theta is None:
            best_theta, best_cost = th, cost
        else:
            better = cost < best_cost
            best_theta[better], best_cost[better] = th[better], cost[better]
    return best_theta, best_cost


def _lm_batch(x, Y, theta, lb, ub, form, iters):
    def residuals(th):
        n0 = th[:, :1] if form == "shifted" else 0.0
        with np.errstate(all="ignore"):
            return (n0 + x[None, :]) ** (-th[:, -2:-1]) + th[:, -1:] - Y

    def jac(th):
        n0 = th[:, :1] if form == "shifted" else 0.0
        b = th[:, -2:-1]
        with np.errstate(all="ignore"):
            u = n0 + x[None, :]
            f = u ** (-b)
            cols = ([-b * f / u] if form == "shifted" else []) + [-np.log(u) * f, np.ones_like(f)]
        return np.stack(cols, axis=2)  # (K, n, p)

    r = residuals(theta)
    cost = 0.5 * np.sum(r * r, axis=1)
    lam = np.full(theta.shape[0], 1e-3)
    eye = np.eye(theta.shape[1])
    for _ in range(iters):
        J = jac(theta)
        JtJ = np.einsum("kni,knj->kij", J, J)
        Jtr = np.einsum("kni,kn->ki", J, r)
        D = np.einsum("kii->ki", JtJ) + 1e-12
        A = JtJ + lam[:, None, None] * D[:, :, None] * eye[None]
        try:
            step = np.linalg.solve(A, -Jtr[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -Jtr / D
        step = np.where(np.isfinite(step), step, 0.0)
        cand = np.clip(theta + step, lb, ub)
        r_c = residuals(cand)
        cost_c = 0.5 * np.sum(r_c * r_c, axis=1)
        ok = np.isfinite(cost_c) & (cost_c < cost)
        theta = np.where(ok[:, None], cand, theta)
        r = np.where(ok[:, None], r_c, r)
        cost = np.where(ok, cost_c, cost)
        lam = np.where(ok, lam / 3.0, lam * 4.0)
        lam = np.clip(lam, 1e-12, 1e12)
    return theta, cost
