"""DDO from measured runs: per-domain power-law fits, the KKT optimum, and a bootstrap interval
for every weight. `DDO(...).fit(group_ddo(read_runs(paths)))` is what `mixer solve ddo` runs.

Intervals: a parametric bootstrap (new y drawn around the fitted curves with the noise `sigma`,
every curve refitted, the optimum solved again) with `sigma`, by what the runs allow
(`mixer.solver.noise`):
  * repeated runs (same domain and factor, other seeds): the pooled seed-to-seed spread
    ("seeds"; resampling 2 or 3 seeds would understate it by a factor (K-1)/K);
  * `noise` given (std of y in fit units, e.g. measured in another sweep): that ("given");
  * more distinct points than parameters: the pooled residual deviation ("residuals");
  * otherwise (3 points, 3 parameters, no repeats): no interval, and the result says why.
The same `sigma` judges each domain's effect (`effects_`) and each fit's lack of fit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from mixer.solver.ddo import DDOResult, solve_ddo
from mixer.solver.noise import Noise, domain_effects, lack_of_fit, measure_noise
from mixer.solver.powerlaw import FORMS, PowerLawFit, fit_power_law
from mixer.solver.runs import DDOData, Run


@dataclass(frozen=True)
class Bootstrap:
    samples: np.ndarray           # (n_ok, m) weights of the bootstrap replicates
    low: np.ndarray               # per-domain lower bound of the interval
    high: np.ndarray
    method: str                   # the noise source: "seeds", "given", "residuals" or "none"
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
                  lower=None, upper=None, n_starts: int | None = None, warm: Mapping[str, np.ndarray] | None = None,
                  tol: float = 1e-14) -> tuple[dict[str, PowerLawFit], DDOResult]:
    """Fit each domain's power law on its `(x, y)` and solve for the optimum (x units)."""
    fits = {d: fit_power_law(x, y, form=form, n_starts=n_starts, x0=None if warm is None else warm[d], tol=tol)
            for d, (x, y) in points.items()}
    a = np.array([f.n0 for f in fits.values()])
    b = np.array([f.b for f in fits.values()])
    return fits, solve_ddo(a, b, total, lower=lower, upper=upper)


# Grid starts a bootstrap replicate tries besides the warm start: a replicate warm-started alone
# stays in the fitted curve's basin and understates the spread of the optimum.
REPLICATE_STARTS = 4


def residual_noise(points, fits, form: str) -> Noise:
    """Noise from the fits' residuals, when there are more distinct points than parameters."""
    dof = sum(np.unique(x).size - len(FORMS[form]) for x, _ in points.values())
    if dof <= 0:
        return Noise(sigma=None, dof=0, source="none")
    rss = sum(float(f.residuals @ f.residuals) for f in fits.values())
    return Noise(sigma=float(np.sqrt(rss / dof)), dof=dof, source="residuals")


def bootstrap_weights(points, fits, total, *, form, lower, upper, n_boot: int, noise: Noise,
                      seed: int, level: float = 0.95, n_base: int = 0, normalised: bool = False,
                      center: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> Bootstrap:
    """Parametric bootstrap of the optimum. The first `n_base` points of every domain are the same
    base runs, so a replicate draws their noise once and shares it between all domains' fits (as
    the real data does); with units="authors" y was also divided by those runs' mean, which the
    replicate redraws as well (a common factor on all of its y)."""
    domains = list(points)
    m = len(domains)
    method, sigma = noise.source, noise.sigma
    if sigma is None:
        return Bootstrap(np.empty((0, m)), np.full(m, np.nan), np.full(m, np.nan), "none",
                         "no interval: each fit interpolates its points exactly and the noise is unknown; "
                         "repeat runs with other seeds (--seeds 2) or give noise")
    if n_boot <= 0:
        return Bootstrap(np.empty((0, m)), np.full(m, np.nan), np.full(m, np.nan), "none", "bootstrap disabled")
    rng = np.random.default_rng(seed)
    warm = {d: f.x for d, f in fits.items()}
    samples = []
    for _ in range(n_boot):
        pts = {}
        base_noise = rng.normal(0.0, sigma, n_base)
        scale = 1.0 / (1.0 + float(base_noise.mean())) if n_base and normalised else 1.0
        for d, (x, y) in points.items():
            eps = np.concatenate([base_noise, rng.normal(0.0, sigma, x.size - n_base)])
            y_new = (fits[d].predict(x) + eps) * scale
            pts[d] = (x, y_new)
        try:
            _, res = fit_and_solve(pts, total, form=form, lower=lower, upper=upper, warm=warm,
                                   n_starts=REPLICATE_STARTS, tol=1e-10)
        except ValueError:
            continue
        samples.append(res.weights)
    samples = np.array(samples).reshape(-1, m)
    q = (1 - level) / 2
    if samples.shape[0] < max(10, n_boot // 2):
        return Bootstrap(samples, np.full(m, np.nan), np.full(m, np.nan), method,
                         f"only {samples.shape[0]} of {n_boot} bootstrap fits succeeded; no interval")
    # Estimate +- t * bootstrap standard deviation, clipped to the weight bounds. On synthetic
    # sweeps with known answers this covers the truth more often than the percentile interval
    # (whose 2.5 % tails are noisy with ~100 replicates and ignore the noise estimate's own
    # uncertainty, which t with the noise's degrees of freedom carries).
    from scipy import stats

    z = float(stats.t.ppf(1 - q, noise.dof)) if noise.dof > 0 else float(stats.norm.ppf(1 - q))
    sd = samples.std(axis=0, ddof=1)
    lo_b, hi_b = bounds if bounds is not None else (np.zeros(m), np.ones(m))
    low, high = np.maximum(center - z * sd, lo_b), np.minimum(center + z * sd, hi_b)
    return Bootstrap(samples, low, high, method,
                     f"{level:.0%} interval: estimate +- {z:.2f} bootstrap sd, {samples.shape[0]} replicates "
                     f"(noise from {method}, {noise.dof} dof)")


class DDO:
    """Scikit-learn-like DDO estimator over a `mixer.solver.runs.DDOData` sweep.

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
        if self.noise is not None:
            self.noise_ = Noise(sigma=float(self.noise), dof=0, source="given")  # dof 0: known, normal quantile
        else:
            self.noise_ = measure_noise(data, unit_y)
            if self.noise_.sigma is None:
                self.noise_ = residual_noise(self.points_, self.fits_, self.form)
        self.effects_ = domain_effects(self.points_, self.noise_.sigma)
        self.lack_of_fit_ = {d: lack_of_fit(x, y, self.fits_[d], self.noise_.sigma) for d, (x, y) in self.points_.items()}
        self.bootstrap_ = bootstrap_weights(self.points_, self.fits_, total, form=self.form, lower=lower,
                                            upper=upper, n_boot=self.n_bootstrap, noise=self.noise_, seed=self.seed,
                                            n_base=len(data.base), normalised=self.units == "authors",
                                            center=self.result_.weights,
                                            bounds=(np.zeros(len(domains)) if lower is None else lower / total,
                                                    np.ones(len(domains)) if upper is None else upper / total))
        self.intervals_ = {d: (float(lo), float(hi)) for d, lo, hi
                           in zip(domains, self.bootstrap_.low, self.bootstrap_.high)}
        self.warnings_ = self._warnings()
        # Additive model of §2.2: y(run) = y(base) + sum_j [f_j(x_j(run)) - f_j(x_j(base))].
        self.metric_ = data.metric
        self.x_base_ = np.array([np.mean([r.tokens_per_domain[d] for r in data.base]) for d in domains]) / unit_x
        runs = data.runs()
        self.measured_ = np.array([r.aggregate(data.metric) for r in runs]) / unit_y
        self.y_base_ = float(np.mean(self.measured_[: len(data.base)]))
        self.predicted_ = self.predict_runs(runs)
        self.predicted_optimum_ = self._predict_x(self.result_.x)
        return self

    def _predict_x(self, x: np.ndarray) -> float:
        return self.y_base_ + float(sum(self.fits_[d].predict(x[i]) - self.fits_[d].predict(self.x_base_[i])
                                        for i, d in enumerate(self.domains_)))

    def predict_runs(self, runs: Sequence[Run]) -> np.ndarray:
        """The additive model's y (fit units) for runs of any mixture: held-out validation."""
        return np.array([self._predict_x(np.array([r.tokens_per_domain[d] for d in self.domains_]) / self.unit_x_)
                         for r in runs])

    def measure_runs(self, runs: Sequence[Run]) -> np.ndarray:
        """The measured y (fit units) of runs, in the metric and units of the fit."""
        return np.array([r.aggregate(self.metric_) for r in runs]) / self.unit_y_

    def _warnings(self) -> list[str]:
        out = []
        for i, (d, f) in enumerate(self.fits_.items()):
            if f.ill_posed:
                out.append(f"domain {d!r}: fit ill-posed ({f.message})")
            elif f.interpolates:
                out.append(f"domain {d!r}: {f.x.size} points, {f.x.size} parameters: the fit interpolates; "
                           "add a factor or seeds to check it")
            if f.ambiguous:
                out.append(f"domain {d!r}: {f.message.split(';')[0]}")
            if self.result_.at_lower[i]:
                out.append(f"domain {d!r}: weight held at its floor")
            if self.result_.at_upper[i]:
                out.append(f"domain {d!r}: weight held at its cap")
        return out

    def summary(self) -> dict:
        """JSON-ready record of the fits and the solve (goes into weights.json provenance)."""
        return {
            "form": self.form, "units": self.units, "total_units": self.total_,
            "metric": self.metric_,
            "fits": {d: {**f.params, "rmse": f.rmse, "residuals": f.residuals.tolist(), "interpolates": f.interpolates,
                         "ill_posed": f.ill_posed, "ambiguous": f.ambiguous,
                         "alternatives": [a.tolist() for a in f.alternatives], "lack_of_fit": self.lack_of_fit_[d],
                         "message": f.message} for d, f in self.fits_.items()},
            "noise": self.noise_.to_json(),
            "effects": {d: e.to_json() for d, e in self.effects_.items()},
            "tokens_per_domain": self.tokens_,
            "intervals": {d: list(v) for d, v in self.intervals_.items()},
            "interval_method": self.bootstrap_.message,
            "bootstrap_weights": self.bootstrap_.samples.round(12).tolist(),
            "kkt": {"lambda": self.result_.lam, "iterations": self.result_.iterations, "message": self.result_.message},
            "predicted_loss_at_optimum_fit_units": self.predicted_optimum_,
            "warnings": self.warnings_,
        }
