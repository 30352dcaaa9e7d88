"""DDO from measured runs: per-domain power-law fits, the KKT optimum, and a bootstrap interval
for every weight. `DDO(...).fit(group_ddo(read_runs(paths)))` is what `mixer solve ddo` runs.

Intervals, by what the runs allow:
  * repeated runs (same domain and factor, other seeds): resample runs within each such group;
  * more points than parameters: parametric bootstrap with the pooled residual deviation;
  * `noise` given (std of y in fit units, e.g. from seed repeats elsewhere): parametric with it;
  * otherwise (3 points, 3 parameters, no repeats): no interval, and the result says why.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from solver.ddo import DDOResult, solve_ddo
from solver.powerlaw import FORMS, PowerLawFit, fit_power_law
from solver.runs import DDOData


@dataclass(frozen=True)
class Bootstrap:
    samples: np.ndarray           # (n_ok, m) weights of the bootstrap replicates
    low: np.ndarray               # per-domain lower percentile
    high: np.ndarray
    method: str                   # "runs", "residuals", "noise" or "none"
    message: str


def _bounds(spec, domains, total) -> np.ndarray | None:
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(domains))
        if unknown:
            raise ValueError(f"bound given for unknown domain {unknown[0]!r}")
        return np.array([float(spec.get(d, np.nan)) for d in domains]) * total
    return np.full(len(domains), float(spec)) * total


def fit_and_solve(points: Mapping[str, tuple[np.ndarray, np.ndarray]], total: float, *, form: str = "shifted",
                  lower=None, upper=None, n_starts: int | None = None, warm: Mapping[str, np.ndarray] | None = None
                  ) -> tuple[dict[str, PowerLawFit], DDOResult]:
    """Fit each domain's power law on its `(x, y)` and solve for the optimum (x units)."""
    fits = {d: fit_power_law(x, y, form=form, n_starts=n_starts, x0=None if warm is None else warm[d])
            for d, (x, y) in points.items()}
    a = np.array([f.n0 for f in fits.values()])
    b = np.array([f.b for f in fits.values()])
    return fits, solve_ddo(a, b, total, lower=lower, upper=upper)


def bootstrap_weights(points, fits, total, *, form, lower, upper, n_boot: int, noise: float | None,
                      seed: int, level: float = 0.95) -> Bootstrap:
    domains = list(points)
    m = len(domains)
    replicated = any(np.unique(x).size < x.size for x, _ in points.values())
    dof = sum(x.size - len(FORMS[form]) for x, _ in points.values())
    if replicated:
        method = "runs"
    elif noise is not None:
        method, sigma = "noise", float(noise)
    elif dof > 0:
        rss = sum(float(f.residuals @ f.residuals) for f in fits.values())
        method, sigma = "residuals", float(np.sqrt(rss / dof))
    else:
        return Bootstrap(np.empty((0, m)), np.full(m, np.nan), np.full(m, np.nan), "none",
                         "no interval: each fit interpolates its points exactly; repeat runs with other seeds or give noise")
    if n_boot <= 0:
        return Bootstrap(np.empty((0, m)), np.full(m, np.nan), np.full(m, np.nan), "none", "bootstrap disabled")
    rng = np.random.default_rng(seed)
    warm = {d: f.x for d, f in fits.items()}
    samples = []
    for _ in range(n_boot):
        pts = {}
        for d, (x, y) in points.items():
            if method == "runs":
                y_new = y.copy()
                for u in np.unique(x):
                    idx = np.flatnonzero(x == u)
                    y_new[idx] = y[rng.choice(idx, idx.size)]
            else:
                y_new = fits[d].predict(x) + rng.normal(0.0, sigma, x.size)
            pts[d] = (x, y_new)
        try:
            _, res = fit_and_solve(pts, total, form=form, lower=lower, upper=upper, warm=warm)
        except ValueError:
            continue
        samples.append(res.weights)
    samples = np.array(samples).reshape(-1, m)
    q = (1 - level) / 2
    if samples.shape[0] < max(10, n_boot // 2):
        return Bootstrap(samples, np.full(m, np.nan), np.full(m, np.nan), method,
                         f"only {samples.shape[0]} of {n_boot} bootstrap fits succeeded; no interval")
    low, high = np.quantile(samples, [q, 1 - q], axis=0)
    return Bootstrap(samples, low, high, method, f"{level:.0%} percentile interval, {samples.shape[0]} replicates ({method})")


class DDO:
    """Scikit-learn-like DDO estimator over a `solver.runs.DDOData` sweep.

    floor, cap: weight bounds, one number for every domain or a `{domain: weight}` mapping
    (the authors floored at 1/5 of uniform: `floor=0.2 / m`).
    """

    def __init__(self, *, form: str = "shifted", units: str = "authors", floor=None, cap=None,
                 n_starts: int | None = None, n_bootstrap: int = 200, noise: float | None = None, seed: int = 0):
        self.form = form
        self.units = units
        self.floor = floor
        self.cap = cap
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.noise = noise
        self.seed = seed

    def fit(self, data: DDOData) -> "DDO":
        if self.form not in FORMS:
            raise ValueError(f"form {self.form!r}: expected one of {sorted(FORMS)}")
        domains = list(data.domains)
        unit_x, unit_y = data.units(self.units)
        total = data.budget_tokens / unit_x
        lower, upper = _bounds(self.floor, domains, total), _bounds(self.cap, domains, total)
        if isinstance(self.cap, Mapping) and upper is not None:
            upper = np.where(np.isnan(upper), total, upper)
        if isinstance(self.floor, Mapping) and lower is not None:
            lower = np.where(np.isnan(lower), 0.0, lower)
        self.points_ = data.points(self.units)
        self.fits_, self.result_ = fit_and_solve(self.points_, total, form=self.form, lower=lower, upper=upper,
                                                 n_starts=self.n_starts)
        self.domains_ = tuple(domains)
        self.total_ = total
        self.unit_x_, self.unit_y_ = unit_x, unit_y
        self.weights_ = dict(zip(domains, map(float, self.result_.weights)))
        self.tokens_ = {d: w * data.budget_tokens for d, w in self.weights_.items()}
        self.bootstrap_ = bootstrap_weights(self.points_, self.fits_, total, form=self.form, lower=lower,
                                            upper=upper, n_boot=self.n_bootstrap, noise=self.noise, seed=self.seed)
        self.intervals_ = {d: (float(lo), float(hi)) for d, lo, hi
                           in zip(domains, self.bootstrap_.low, self.bootstrap_.high)}
        self.warnings_ = self._warnings()
        # Additive model of §2.2: y(run) = y(base) + sum_j [f_j(x_j(run)) - f_j(x_j(base))].
        x_base = np.array([np.mean([r.tokens_per_domain[d] for r in data.base]) for d in domains]) / unit_x
        f_base = np.array([self.fits_[d].predict(x_base[i]) for i, d in enumerate(domains)])
        runs = data.base + tuple(r for d in domains for r in data.perturbed[d])
        measured = np.array([r.aggregate_loss for r in runs]) / unit_y
        y_base = float(np.mean(measured[: len(data.base)]))
        pred = []
        for r in runs:
            x = np.array([r.tokens_per_domain[d] for d in domains]) / unit_x
            pred.append(y_base + sum(float(self.fits_[d].predict(x[i]) - f_base[i]) for i, d in enumerate(domains)))
        self.measured_, self.predicted_ = measured, np.array(pred)
        x_opt = self.result_.x
        self.predicted_optimum_ = y_base + float(sum(self.fits_[d].predict(x_opt[i]) - f_base[i]
                                                     for i, d in enumerate(domains)))
        return self

    def _warnings(self) -> list[str]:
        out = []
        for i, (d, f) in enumerate(self.fits_.items()):
            if f.ill_posed:
                out.append(f"domain {d!r}: fit ill-posed ({f.message})")
            elif f.interpolates:
                out.append(f"domain {d!r}: 3 points, 3 parameters: the fit interpolates; add a factor to check it")
            if self.result_.at_lower[i]:
                out.append(f"domain {d!r}: weight held at its floor")
            if self.result_.at_upper[i]:
                out.append(f"domain {d!r}: weight held at its cap")
        return out

    def summary(self) -> dict:
        """JSON-ready record of the fits and the solve (goes into weights.json provenance)."""
        return {
            "form": self.form, "units": self.units, "total_units": self.total_,
            "fits": {d: {**f.params, "rmse": f.rmse, "interpolates": f.interpolates, "ill_posed": f.ill_posed,
                         "message": f.message} for d, f in self.fits_.items()},
            "tokens_per_domain": self.tokens_,
            "intervals": {d: list(v) for d, v in self.intervals_.items()},
            "interval_method": self.bootstrap_.message,
            "bootstrap_weights": self.bootstrap_.samples.round(12).tolist(),
            "kkt": {"lambda": self.result_.lam, "iterations": self.result_.iterations, "message": self.result_.message},
            "predicted_loss_at_optimum_fit_units": self.predicted_optimum_,
            "warnings": self.warnings_,
        }
