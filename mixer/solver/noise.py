"""Run-to-run noise, measured from seed repeats, and each domain's effect measured against it.

Proxy losses move between runs that differ only in their seeds (model initialisation and data
order). DDO fits a curve through a handful of such losses, so a weight is only as good as the
signal in them: how far the loss moved when a domain's tokens changed, relative to how far it
moves by chance. Both are measured here, in the fit's units (y = aggregate metric / base).

- `measure_noise`: runs of the same planned mixture (same role, domain and factor) with other
  seeds form a group; the pooled within-group standard deviation of y is the noise `sigma` of one
  run (dof = runs - groups). The same is done per domain on that domain's own held-out metric.
- `residual_noise`: without repeats, the pooled deviation of the fits' residuals (when there are
  more distinct points than parameters);
- `domain_effects`: for each domain, the mean y at its fewest tokens minus the mean y at its most,
  with its standard error from `sigma`; `z = delta / se`. |z| < 2 means the domain's tokens moved
  the loss by less than run-to-run noise can explain (95 %).
- `lack_of_fit`: how far each fitted curve misses the group means, in units of the noise of a
  mean (rms of sqrt(n_g) * (mean_g - f(x_g)) / sigma), reported per domain;
- `tail_drop`: whether the proxies are still learning (below);
- `lack_of_fit_test`: the pooled F test of those misses against the seed-to-seed noise (the
  classic pure-error test): p < `LOF_ALPHA` says the curves do not describe the runs. It needs
  noise measured apart from the fits (seeds or given); noise from the residuals cannot test the
  residuals (`None`: the misfit is then already inside that noise estimate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from mixer.solver.powerlaw import FORMS
from mixer.solver.runs import DDOData, Run

Z_SUPPORTED = 2.0  # |effect| / standard error below this: within noise (two-sided ~95 %)
# The lack-of-fit test's nominal false-alarm rate. The F test is approximate here (the base group
# enters every domain's fit; parameters held at a bound leave more dof than counted): at 0.01 it
# fired on 3.7 % of simulated sweeps whose curves were exactly right, so 0.001 (about 1 %).
LOF_ALPHA = 0.001
# A noise below this (fit units: a fraction of the base metric) is zero up to rounding: runs that
# did not differ, or fits through exact points. Nothing can be judged against it.
ZERO_NOISE = 1e-9


@dataclass(frozen=True)
class Noise:
    sigma: float | None  # std of one run's y (fit units); None: not measured
    dof: int  # degrees of freedom of the estimate
    source: str  # "seeds" (repeats), "given" (--noise), "residuals" (fit residuals) or "none"
    groups: int = 0  # groups of repeated runs that entered the estimate
    per_domain_std: dict[str, float] = field(default_factory=dict)  # std of each domain's own metric (metric units)
    seed_offsets: dict[int, float] | None = None  # each seed's shared offset taken off first (fit units; `block_seeds`)

    def to_json(self) -> dict:
        return {"sigma": self.sigma, "dof": self.dof, "source": self.source, "groups": self.groups,
                "per_domain_std": self.per_domain_std,
                "seed_offsets": None if self.seed_offsets is None else {str(k): v for k, v in self.seed_offsets.items()}}


@dataclass(frozen=True)
class Effect:
    delta: float  # mean y at the domain's fewest tokens - mean y at its most (> 0: more tokens helped)
    se: float | None  # standard error of delta from the noise; None when the noise is unknown
    n_low: int  # runs at the fewest tokens
    n_high: int  # runs at the most tokens

    @property
    def z(self) -> float | None:
        if self.se is None or self.se <= 0:
            return None
        return self.delta / self.se

    @property
    def within_noise(self) -> bool | None:
        z = self.z
        return None if z is None else abs(z) < Z_SUPPORTED

    @property
    def direction(self) -> str:
        """"helps" (more tokens lowered the loss beyond noise), "hurts" (raised it beyond noise),
        "within noise", or "unknown" (no noise estimate)."""
        z = self.z
        if z is None:
            return "unknown"
        return "within noise" if abs(z) < Z_SUPPORTED else ("helps" if z > 0 else "hurts")

    def to_json(self) -> dict:
        return {"delta": self.delta, "se": self.se, "z": self.z, "n_low": self.n_low, "n_high": self.n_high,
                "direction": self.direction}


def _pooled_std(groups: list[np.ndarray]) -> tuple[float | None, int]:
    ss, dof = 0.0, 0
    for g in groups:
        if g.size >= 2:
            ss += float(np.sum((g - g.mean()) ** 2))
            dof += g.size - 1
    return (math.sqrt(ss / dof), dof) if dof > 0 else (None, 0)


def measure_noise(data: DDOData, unit_y: float) -> Noise:
    """Pooled within-group std of y (= aggregate metric / `unit_y`) over groups of seed repeats;
    with seeds as blocks (`data.seed_offsets`), the two-way model's residual std, whose dof also
    pays for the offsets."""
    groups = [g for g in data.mixtures() if len(g) >= 2]
    if not groups:
        return Noise(sigma=None, dof=0, source="none")
    ys = [np.array([data.y(r) for r in g]) / unit_y for g in groups]
    sigma, dof = _pooled_std(ys)
    if sigma is not None and data.seed_dof:
        sigma, dof = sigma * math.sqrt(dof / (dof - data.seed_dof)), dof - data.seed_dof
    per_domain = {}
    for d in data.domains:
        s, _ = _pooled_std([np.array([r.metric(data.metric)[d] for r in g]) for g in groups])
        per_domain[d] = float(s) if s is not None else float("nan")
    offsets = None if not data.seed_offsets else {s: v / unit_y for s, v in data.seed_offsets.items()}
    return Noise(sigma=sigma, dof=dof, source="seeds", groups=len(groups), per_domain_std=per_domain,
                 seed_offsets=offsets)


def residual_noise(points, fits, form: str) -> Noise:
    """Noise from the fits' residuals, when there are more distinct points than parameters."""
    dof = sum(np.unique(x).size - len(FORMS[form]) for x, _ in points.values())
    if dof <= 0:
        return Noise(sigma=None, dof=0, source="none")
    rss = sum(float(f.residuals @ f.residuals) for f in fits.values())
    return Noise(sigma=float(np.sqrt(rss / dof)), dof=dof, source="residuals")


def domain_effects(points: Mapping[str, tuple[np.ndarray, np.ndarray]], sigma: float | None) -> dict[str, Effect]:
    """Per domain: y at its fewest tokens minus y at its most, against the noise of the two means."""
    out = {}
    for d, (x, y) in points.items():
        lo, hi = x == x.min(), x == x.max()
        n_lo, n_hi = int(lo.sum()), int(hi.sum())
        delta = float(y[lo].mean() - y[hi].mean())
        se = sigma * math.sqrt(1 / n_lo + 1 / n_hi) if sigma is not None else None
        out[d] = Effect(delta=delta, se=se, n_low=n_lo, n_high=n_hi)
    return out


def _misses(x: np.ndarray, y: np.ndarray, fit) -> np.ndarray:
    """Per distinct x: sqrt(n) * (mean y - fit), each with the noise of one run."""
    u = np.unique(x)
    n = np.array([(x == v).sum() for v in u], float)
    means = np.array([y[x == v].mean() for v in u])
    return np.sqrt(n) * (means - fit.predict(u))


def lack_of_fit(x: np.ndarray, y: np.ndarray, fit, sigma: float | None) -> float | None:
    """rms over distinct x of sqrt(n) * (mean y - fit) / sigma; None without a noise estimate."""
    if sigma is None or sigma <= 0:
        return None
    return float(np.sqrt(np.mean(np.square(_misses(x, y, fit) / sigma))))


@dataclass(frozen=True)
class LackOfFit:
    """The pooled pure-error F test of every domain's curve against its group means."""
    f: float  # (lack-of-fit sum of squares / its dof) / sigma^2
    dof: int  # distinct points minus parameters, over all domains
    noise_dof: int  # the noise estimate's dof (0: known noise, a chi-square test)
    p: float  # P(F >= f) when the curves are right
    worst: str  # the domain that contributes most

    def to_json(self) -> dict:
        return {"f": self.f, "dof": self.dof, "noise_dof": self.noise_dof, "p": self.p, "worst": self.worst,
                "alpha": LOF_ALPHA}


def lack_of_fit_test(points: Mapping[str, tuple[np.ndarray, np.ndarray]], fits: Mapping, noise: Noise,
                     n_params: int) -> LackOfFit | None:
    """None when it cannot be made: noise unknown, zero or taken from these residuals, or no
    domain with more distinct points than parameters."""
    from scipy import stats

    if noise.sigma is None or not noise.sigma > ZERO_NOISE or noise.source not in ("seeds", "given"):
        return None
    ss, dof, per = 0.0, 0, {}
    for d, (x, y) in points.items():
        u = np.unique(x)
        if u.size <= n_params:
            continue
        sd = float(np.sum(_misses(x, y, fits[d]) ** 2))
        ss, dof, per[d] = ss + sd, dof + u.size - n_params, sd
    if dof == 0:
        return None
    f = ss / dof / noise.sigma ** 2
    p = float(stats.chi2.sf(f * dof, dof)) if noise.dof <= 0 else float(stats.f.sf(f, dof, noise.dof))
    return LackOfFit(f=float(f), dof=dof, noise_dof=noise.dof, p=p, worst=max(per, key=per.get))


# --- are the proxies still learning? -------------------------------------------------------------
# Are the proxies still learning? A proxy whose loss is still falling fast at its last step
# measures effects of the data order and of where training stopped as much as of the mixture:
# every perturbed run of a grown-total sweep trains longer, and each looks helpful for that alone.
#
# `tail_drop` reads the base runs' training curves (run.json `loss_history`, the per-domain loss
# logged every few steps), averages the metric over the evaluation domains, and measures by how
# much it fell over the last fifth of the steps (a least-squares line through those points, so one
# noisy batch does not decide it), in the fit's units. The verdict compares that drop with how much
# the domains' measured effects differ (`mixer.solver.verdict.effect_spread`): a larger drop means
# the proxies drift faster than they tell the domains apart. `tokens_needed` estimates the budget at
# which the drop would fall below that, from the curve's own decay: for L(t) = C + A t^(-alpha) the
# slope falls as t^(-alpha-1), so alpha is read off the slopes of the middle and the last fifth, and
# the drop over the last fifth scales as T^(-alpha).

MIN_POINTS = 10  # logged steps a curve needs before its tail can be judged


@dataclass(frozen=True)
class TailDrop:
    drop: float  # fit units: fall of the mean metric over the last fifth of the base runs' steps
    alpha: float  # the curve's decay exponent (see the module docstring)
    runs: int  # base runs with a usable curve

    def tokens_needed(self, budget_tokens: int, effect: float) -> int | None:
        """Budget at which the drop over the last fifth would be below `effect` (None: not finite)."""
        if not effect > 0 or not self.drop > effect:
            return None
        factor = (self.drop / effect) ** (1.0 / self.alpha)
        return int(math.ceil(budget_tokens * factor)) if math.isfinite(factor) and factor < 1e6 else None

    def to_json(self) -> dict:
        return {"drop": self.drop, "alpha": self.alpha, "runs": self.runs}


def _slope(y: np.ndarray, lo: int, hi: int) -> float:
    t = np.arange(lo, hi, dtype=float)
    seg = y[lo:hi]
    ok = np.isfinite(seg)
    if ok.sum() < 3:
        return float("nan")
    return float(np.polyfit(t[ok], seg[ok], 1)[0])


def tail_drop(base: Sequence[Run], *, metric: str, unit_y: float,
              eval_domains: Sequence[str] | None = None) -> TailDrop | None:
    """The drop of the base runs' mean training metric over their last fifth; None without curves."""
    drops, alphas = [], []
    for run in base:
        hist = run.loss_history or {}
        names = [d for d in (eval_domains or run.domains) if hist.get(d)]
        if not names:
            continue
        n = min(len(hist[d]) for d in names)
        if n < MIN_POINTS:
            continue
        L = np.array([hist[d][:n] for d in names], float)
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.exp(np.minimum(L, 700.0)) if metric == "perplexity" else L
            y = np.nanmean(values, axis=0) / unit_y
        k = int(round(0.8 * n))
        end = _slope(y, k, n)
        mid = _slope(y, int(round(0.4 * n)), int(round(0.6 * n)))
        if not math.isfinite(end):
            continue
        drops.append(max(0.0, -end * (n - k)))
        if math.isfinite(mid) and mid < 0 and end < 0 and mid < end:
            # slope ratio (t_mid / t_end)^(-alpha-1) with t at the windows' centres (0.5 and 0.9)
            alphas.append(math.log(mid / end) / math.log(0.9 / 0.5) - 1.0)
    if not drops:
        return None
    alpha = float(np.clip(np.median(alphas), 0.1, 2.0)) if alphas else 0.5
    return TailDrop(drop=float(np.mean(drops)), alpha=alpha, runs=len(drops))
