"""DDO from measured runs: per-domain power-law fits, the KKT optimum, and a bootstrap interval
for every weight. `DDO(...).fit(group_ddo(read_runs(paths)))` is what `mixer solve ddo` runs.

Intervals: a parametric bootstrap (new y drawn around the fitted curves with the noise `sigma`,
every curve refitted, the optimum solved again), `sigma` as the runs allow (`mixer.solver.noise`):
  * repeated runs (same domain and factor, other seeds): the pooled seed-to-seed spread, each
    seed's shared offset taken off first ("seeds"; resampling 2 or 3 seeds would understate it);
  * `noise` given (std of y in fit units, e.g. measured in another sweep): that ("given");
  * more distinct points than parameters: the pooled residual deviation ("residuals");
  * otherwise (3 points, 3 parameters, no repeats): no interval, and the result says why.
The same `sigma` judges each domain's effect (`effects_`) and each fit's lack of fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from mixer.solver.ddo import DDOResult, solve_ddo
from mixer.solver.noise import (ZERO_NOISE, Noise, domain_effects, lack_of_fit, lack_of_fit_test, measure_noise,
                                residual_noise, tail_drop)
from mixer.solver.powerlaw import FORMS, PowerLawFit, fit_power_law, fit_power_law_batch, power_law_rows
from mixer.solver.runs import DDOData, Run

# Bootstrap SDs the corrected gain must clear for `supported`, its 95 % interval's half-width
# (bench.calibration): 1.96 said supported in 17 % of sweeps whose true gain was ~1.3 SE.
Z_DECISION = 2.5


@dataclass(frozen=True)
class Gain:
    """How much lower the mean held-out metric is predicted at the returned weights than at a
    reference mixture (fit units: a fraction of the base run's metric; > 0 means better).

    `estimate`: the fitted curves' gain; `corrected` less the bootstrap's mean optimism (the weights
    were chosen on these curves); the 95 % interval `corrected` +- `Z_DECISION` `sd`, whose lying
    above 0 is the verdict's test (`clears`). Not 1.96: around fits of 3 parameters through 4 points
    the parametric bootstrap's spread is 1.2-1.5x too small (docs/solver.md). With `method` "rms"
    (AutoScale at the target: `corrected_gain`) the centre is the estimate, `sd` the replicates'
    rms error, the interval +- 1.96 `sd` (calibrated there); the verdict asks `Z_DECISION` of it."""
    reference: str  # "uniform", "base", or (at AutoScale's target) "direct transfer"
    estimate: float
    corrected: float = float("nan")
    sd: float = float("nan")
    method: str = "corrected"

    @property
    def multiplier(self) -> float:
        return 1.96 if self.method == "rms" else Z_DECISION

    @property
    def low(self) -> float:
        return self.corrected - self.multiplier * self.sd

    @property
    def high(self) -> float:
        return self.corrected + self.multiplier * self.sd

    @property
    def clears(self) -> bool:
        return bool(self.corrected - Z_DECISION * self.sd > 0)

    @property
    def against(self) -> str:
        return {"base": "the base mixture"}.get(self.reference, self.reference)

    def describe(self, metric: str) -> str:
        """"+0.021 of the base perplexity, 95 % interval [+0.008, +0.034]" (or no interval)."""
        if self.sd != self.sd:
            return f"{self.estimate:+.4g} of the base {metric} (no interval)"
        return f"{self.corrected:+.4g} of the base {metric}, 95 % interval [{self.low:+.4g}, {self.high:+.4g}]"

    def to_json(self) -> dict:
        return {"reference": self.reference, "estimate": self.estimate, "corrected": self.corrected, "sd": self.sd,
                "method": self.method, "interval": [self.low, self.high], "z_decision": Z_DECISION,
                "clears": self.clears}


@dataclass(frozen=True)
class Bootstrap:
    samples: np.ndarray           # (n_ok, m) weights of the bootstrap replicates
    low: np.ndarray               # per-domain lower bound of the interval
    high: np.ndarray
    method: str                   # the noise source: "seeds", "given", "residuals" or "none"
    message: str
    optimism: dict[str, np.ndarray] = field(default_factory=dict)  # per reference: estimated - true gain
    failures: int = 0             # replicates whose fit failed numerically
    n_boot: int = 0
    thetas: np.ndarray | None = None  # (n_ok, m, p) every replicate's curve parameters, rows as `samples`
    scales: np.ndarray | None = None  # (n_ok,) each replicate's y scale (its redrawn base; 1: none)


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


# Grid starts a bootstrap replicate tries besides the warm start (warm-started alone it stays in the
# fitted basin). 2 suffice for the optimum (bench.calibration); curves read far beyond their points
# (AutoScale's target) need all: with 2 the gains' standard errors were half the true spread.
REPLICATE_STARTS = 2
TARGET_REPLICATE_STARTS = 30


def gain_rows(thetas: np.ndarray, x_ref: np.ndarray, x: np.ndarray, form: str) -> float:
    """The additive model's loss at `x_ref` minus at `x` (fit units), curve j with parameters
    `thetas[j]`: sum_j f_j(x_ref_j) - f_j(x_j)."""
    return float(np.sum(power_law_rows(x_ref, thetas, form) - power_law_rows(x, thetas, form)))


def gain(fits: Mapping[str, PowerLawFit], x_ref: np.ndarray, x: np.ndarray) -> float:
    """`gain_rows` of fitted curves."""
    first = next(iter(fits.values()))
    return gain_rows(np.array([f.x for f in fits.values()]), x_ref, x, first.form)


@dataclass(frozen=True)
class Starts:
    """Grid starts: `fit` per domain's curve (None: all), `replicates` per bootstrap refit."""
    fit: int | None = None
    replicates: int = REPLICATE_STARTS


@dataclass(frozen=True)
class Replicates:
    """How the bootstrap replicates are drawn: how many, from which seed, the interval's level,
    how many leading points of every domain are the shared base runs, and whether y was
    normalised by those runs' mean (units="authors")."""

    n_boot: int
    seed: int
    level: float = 0.95
    n_base: int = 0
    normalised: bool = False
    starts: int = REPLICATE_STARTS  # grid starts per replicate refit besides the warm start


def bootstrap_weights(points, fits, total, *, form, bounds: tuple, noise: Noise, replicates: Replicates,
                      references: Mapping[str, np.ndarray] | None = None) -> Bootstrap:
    """Parametric bootstrap of the optimum and of its gain over each reference mixture.

    Replicate k draws the noise's own uncertainty first (sigma_k = sigma * sqrt(dof / chi2_dof),
    the scaled-inverse-chi-square draw for a standard deviation measured with `dof` degrees of
    freedom; known noise is used as it is), then new y around the fitted curves with sigma_k,
    refits every curve from the warm start and `replicates.starts` grid starts, and solves again.
    The first `n_base` points of every domain are the same base runs, so a replicate draws their
    noise once and shares it between all domains' fits (as the real data does); with
    units="authors" y was also divided by those runs' mean, which the replicate redraws as well.

    Weights: the percentile interval of the replicates. Gain: the returned weights were chosen
    because the fitted curves rate them best, so the fitted gain is optimistic (the winner's
    curse: with identical domains it is > 0 whatever the noise). Replicate k measures that
    optimism in a world whose truth is the fitted curves: (its fitted gain at its own optimum)
    minus (the true gain there). The gain: the fitted gain less the mean optimism, its standard
    error the optimism's SD (`gain_interval`; the percentile form covered 70-85 % in simulation).
    """
    domains = list(points)
    m = len(domains)
    n_boot, seed, level, n_base, normalised = (replicates.n_boot, replicates.seed, replicates.level,
                                               replicates.n_base, replicates.normalised)
    lower, upper = bounds
    method, sigma = noise.source, noise.sigma
    nan = np.full(m, np.nan)
    if sigma is None or not sigma > ZERO_NOISE:
        why = ("no interval: each fit interpolates its points exactly and the noise is unknown; "
               "repeat runs with other seeds (--seeds 2) or give noise") if sigma is None else \
              (f"no interval: the run-to-run noise measured from {noise.source} is 0 (identical losses, or fits "
               "through exact points), so the spread of the answer cannot be judged; check that --seeds changes "
               "the model and data seeds")
        return Bootstrap(np.empty((0, m)), nan, nan, "none", why)
    if n_boot <= 0:
        return Bootstrap(np.empty((0, m)), nan, nan, "none", "bootstrap disabled")
    references = dict(references or {})
    rng = np.random.default_rng(seed)
    sig = sigma * np.sqrt(noise.dof / rng.chisquare(noise.dof, n_boot)) if noise.dof > 0 else np.full(n_boot, sigma)
    base_noise = rng.standard_normal((n_boot, n_base)) * sig[:, None]
    scale = 1.0 / (1.0 + base_noise.mean(axis=1)) if n_base and normalised else np.ones(n_boot)
    thetas = []
    for d, (x, y) in points.items():
        eps = np.concatenate([base_noise, rng.standard_normal((n_boot, x.size - n_base)) * sig[:, None]], axis=1)
        Y = (fits[d].predict(x)[None, :] + eps) * scale[:, None]
        th, _ = fit_power_law_batch(x, Y, form=form, theta0=np.tile(fits[d].x, (n_boot, 1)), n_grid=replicates.starts)
        thetas.append(th)
    T = np.stack(thetas, axis=1)  # (n_boot, m, p)
    a_all = T[:, :, 0] if form == "shifted" else np.zeros((n_boot, m))
    fitted = np.array([f.x for f in fits.values()])
    samples, optimism, failures, kept = [], {r: [] for r in references}, 0, []
    for k in range(n_boot):
        if not np.all(np.isfinite(T[k])):
            failures += 1
            continue
        try:
            res = solve_ddo(a_all[k], T[k, :, -2], total, lower=lower, upper=upper)
        except (ValueError, FloatingPointError):
            failures += 1
            continue
        samples.append(res.weights)
        kept.append(k)
        for name, x_ref in references.items():
            optimism[name].append(gain_rows(T[k], x_ref, res.x, form) / scale[k] - gain_rows(fitted, x_ref, res.x, form))
    samples = np.array(samples).reshape(-1, m)
    if samples.shape[0] < max(10, n_boot // 2):
        return Bootstrap(samples, nan, nan, method,
                         f"only {samples.shape[0]} of {n_boot} bootstrap fits succeeded; no interval",
                         failures=failures, n_boot=n_boot)
    q = (1 - level) / 2
    low, high = np.quantile(samples, [q, 1 - q], axis=0)
    return Bootstrap(samples, low, high, method,
                     f"{level:.0%} percentile interval of {samples.shape[0]} parametric bootstrap replicates "
                     f"(noise from {method}, {noise.dof} dof, its uncertainty drawn per replicate)",
                     optimism={r: np.array(v) for r, v in optimism.items()}, failures=failures, n_boot=n_boot,
                     thetas=T[kept], scales=scale[kept])


MIN_GAIN_REPLICATES = 10  # fewer replicates' errors give no interval on a gain


def corrected_gain(reference: str, estimate: float, errors: np.ndarray | None, *, rms: bool = False) -> Gain:
    """`estimate` less the replicates' mean error, sd their spread (DDO's gain); with `rms`, the
    estimate itself with the errors' root-mean-square as sd (AutoScale's, at the target: there the
    correction moved the centre away from the truth as often as towards it, `bench.calibration`)."""
    err = np.asarray([] if errors is None else errors, float)
    err = err[np.isfinite(err)]
    if err.size < MIN_GAIN_REPLICATES:
        return Gain(reference, estimate)
    if rms:
        return Gain(reference, estimate, corrected=estimate, sd=float(np.sqrt(np.mean(err ** 2))), method="rms")
    return Gain(reference, estimate, corrected=float(estimate - err.mean()), sd=float(err.std(ddof=1)))


def gain_interval(reference: str, estimate: float, boot: Bootstrap) -> Gain:
    """The optimism-corrected gain and its spread (`Gain`) from `bootstrap_weights`' replicates."""
    if np.isnan(boot.low).any():
        return Gain(reference, estimate)
    return corrected_gain(reference, estimate, boot.optimism.get(reference))


class DDO:
    """Scikit-learn-like DDO estimator over a `mixer.solver.runs.DDOData` sweep.

    floor, cap: weight bounds, one number for every domain or a `{domain: weight}` mapping
    (the authors floored at 1/5 of uniform: `floor=0.2 / m`). Each seed's shared offset is taken
    off the runs by `group_ddo` (`mixer.solver.runs.block_seeds`), before they reach the fit.
    """

    def __init__(self, *, form: str = "shifted", units: str = "authors", floor=None, cap=None,
                 starts: "Starts | None" = None, n_bootstrap: int = 200, noise: float | None = None, seed: int = 0):
        self.form, self.units, self.floor, self.cap = form, units, floor, cap
        self.starts = starts or Starts()
        self.n_bootstrap = n_bootstrap
        self.noise, self.seed = noise, seed

    def fit(self, data: DDOData) -> "DDO":
        if self.form not in FORMS:
            raise ValueError(f"form {self.form!r}: expected one of {sorted(FORMS)}")
        self.data_ = data
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
                                                 n_starts=self.starts.fit)
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
        self.lack_of_fit_test_ = lack_of_fit_test(self.points_, self.fits_, self.noise_, len(FORMS[self.form]))
        # Additive model of §2.2: y(run) = y(base) + sum_j [f_j(x_j(run)) - f_j(x_j(base))].
        self.metric_ = data.metric
        self.eval_domains_ = data.eval_domains
        self.x_base_ = np.array([np.mean([r.tokens_per_domain[d] for r in data.base]) for d in domains]) / unit_x
        references = {"uniform": np.full(len(domains), total / len(domains))}
        planned = np.array([data.base[0].weights.get(d, 0.0) for d in domains])  # realised tokens round
        if np.max(np.abs(planned / planned.sum() - 1 / len(domains))) > 1e-6:
            references["base"] = self.x_base_ * (total / self.x_base_.sum())
        self.bootstrap_ = bootstrap_weights(self.points_, self.fits_, total, form=self.form, bounds=(lower, upper),
                                            noise=self.noise_, references=references,
                                            replicates=Replicates(n_boot=self.n_bootstrap, seed=self.seed,
                                                                  n_base=len(data.base),
                                                                  normalised=self.units == "authors",
                                                                  starts=self.starts.replicates))
        self.intervals_ = {d: (float(lo), float(hi)) for d, lo, hi
                           in zip(domains, self.bootstrap_.low, self.bootstrap_.high)}
        self.gains_ = {name: gain_interval(name, gain(self.fits_, x_ref, self.result_.x), self.bootstrap_)
                       for name, x_ref in references.items()}
        self.tail_ = tail_drop(data.base, metric=data.metric, unit_y=unit_y, eval_domains=data.eval_domains)
        self.budget_tokens_ = data.budget_tokens
        totals = {r.total for rs in data.perturbed.values() for r in rs}
        self.design_ = "fixed" if "fixed" in totals else ("grown" if "grown" in totals else "unknown")
        self.warnings_ = self._warnings()
        runs = data.runs()
        self.measured_ = np.array([data.y(r) for r in runs]) / unit_y
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
        return np.array([self.data_.y(r) for r in runs]) / self.unit_y_

    def _warnings(self) -> list[str]:
        out = []
        for i, (d, f) in enumerate(self.fits_.items()):
            if f.ill_posed:
                out.append(f"domain {d!r}: fit ill-posed ({f.message})")
            elif f.flat:
                out.append(f"domain {d!r}: the loss does not fall with its tokens ({f.message}); "
                           "the optimum gives it its floor")
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

    def curves_json(self) -> dict:
        """Fitted and replicate curves for weights.json: AutoScale's loss at the target (`target_gain`)."""
        boot = self.bootstrap_
        return {"form": self.form, "unit_tokens": self.budget_tokens_ / len(self.domains_),
                "domains": list(self.domains_), "params": [f.x.tolist() for f in self.fits_.values()],
                "replicate_params": [] if boot.thetas is None else boot.thetas.round(12).tolist(),
                "replicate_scale": [] if boot.scales is None else boot.scales.round(15).tolist(),
                "replicate_starts": self.starts.replicates}

    def summary(self) -> dict:
        """JSON-ready record of the fits and the solve (goes into weights.json provenance)."""
        return {
            "form": self.form, "units": self.units, "total_units": self.total_,
            "metric": self.metric_,
            "fits": {d: {**f.params, "rmse": f.rmse, "residuals": f.residuals.tolist(), "interpolates": f.interpolates,
                         "ill_posed": f.ill_posed, "ambiguous": f.ambiguous,
                         "alternatives": [a.tolist() for a in f.alternatives], "lack_of_fit": self.lack_of_fit_[d],
                         "flat": f.flat,
                         "message": f.message} for d, f in self.fits_.items()},
            "noise": self.noise_.to_json(),
            "effects": {d: e.to_json() for d, e in self.effects_.items()},
            "tokens_per_domain": self.tokens_,
            "intervals": {d: list(v) for d, v in self.intervals_.items()},
            "interval_method": self.bootstrap_.message,
            "gain": {name: g.to_json() for name, g in self.gains_.items()},
            "lack_of_fit_test": None if self.lack_of_fit_test_ is None else self.lack_of_fit_test_.to_json(),
            "eval_domains": None if self.eval_domains_ is None else list(self.eval_domains_),
            "bootstrap_failures": self.bootstrap_.failures,
            "design": self.design_,
            "tail_drop": None if self.tail_ is None else self.tail_.to_json(),
            "bootstrap_weights": self.bootstrap_.samples.round(12).tolist(),
            "curves": self.curves_json(),
            "kkt": {"lambda": self.result_.lam, "iterations": self.result_.iterations, "message": self.result_.message},
            "predicted_loss_at_optimum_fit_units": self.predicted_optimum_,
            "warnings": self.warnings_,
        }
