"""RegMix (Liu et al. 2024): regress loss on mixture weights over many small random-mixture
runs, then average the mixtures the regression likes best.

As published (github.com/sail-sg/regmix; file and line there in brackets):
- **Candidates** (`sample_mixtures`): Dirichlet draws around the corpus's token distribution,
  `w ~ Dir(strength · p^τ / Σ p^τ)` with the temperature τ = 0.5 and the strength between 0.1
  and 5 over 15 log-spaced values (`mixture_config/synthesize_mixture.py` lines 12-17, 136-159),
  so some draws sit near the prior and others near a corner. A draw that puts more weight on a
  domain than its usage bound allows is rejected (lines 125-131, 160-168): with `usage_bound`,
  a domain may be seen at most `max_usage` = 15 epochs (line 28) in the final training run, so
  its weight is at most 15 × its available tokens / the final run's tokens (the authors' form is
  15 × the domain's token share, i.e. the final run's tokens taken as the corpus's size, which is
  the default). Shares under `minimum` = 2e-4 are set to 0 and the rest rounded to multiples of
  it (line 37, lines 169-173). The same generator gives the training mixtures and the search
  candidates. Differs: the strength is cycled over the draws rather than picked at random per
  draw (the same law, in a fixed order); the largest share takes the rounding's remainder so
  that rows sum to 1 (the authors' rows can be off by up to m × 1e-4); the authors' notebook draws its search candidates
  from `Dir(p · 1)` without the bound (`regression_fitting/regression.ipynb`, "simulate" cell),
  here they come from the same bounded generator, so the answer respects the bound too.
- **Regression** (`regressor="lightgbm"`, the default everywhere): a LightGBM gradient-boosted
  regressor (gbdt, L2, learning rate 0.01, 1000 rounds, fixed seed, deterministic, one thread;
  `regression_fitting/regression.ipynb`, the `hyper_params` cell), one regressor per target.
  Differs: with fewer runs than the authors' 512, `min_data_in_leaf` is lowered to
  `max(2, n // 10)` (LightGBM's 20 would give no split at all on 30 runs); no early stopping on
  the held-out runs (they are kept for the rank correlation only).
  `regressor="quadratic"` (ridge on the weights and their cross products, which span every
  quadratic on the simplex) and `"linear"` are kept as options; the quadratic is refined by
  projected gradient from the top-k mean, since its minimum can be computed.
- **Search**: `n_search` candidates, the mean of the `top_k` with the lowest prediction.
- **Check** (`spearman`): the rank correlation of predicted and measured loss on mixtures held
  out of the fit, the authors' measure of a regression that ranks mixtures right.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mixer.solver.numerics.simplex import feasible_bounds, spg_minimize

REGRESSORS = ("lightgbm", "quadratic", "linear")


@dataclass(frozen=True)
class PriorSpec:
    """How candidate mixtures are drawn around the token distribution (the authors' defaults)."""
    temperature: float = 0.5  # p^τ: flattens the token distribution before it centres the Dirichlet
    min_strength: float = 0.1  # Dirichlet concentration, smallest (draws near a corner)
    max_strength: float = 5.0  # largest (draws near the prior)
    n_strengths: int = 15  # log-spaced concentrations between the two, cycled over the draws
    minimum: float = 2e-4  # shares below are set to 0, the rest rounded to multiples of it (0: no rounding)


@dataclass(frozen=True)
class RegMixSettings:
    """How RegMix is run: the regressor (a name in REGRESSORS; LightGBM, as its authors ran it),
    the candidates scored and the best `top_k` averaged, the seed, the quadratic's ridge and
    refinement, how candidates are drawn around the prior, and the bootstrap resamples of the
    runs behind the intervals."""

    model: str = "lightgbm"
    n_search: int = 100_000
    top_k: int = 100
    seed: int = 0
    ridge: float = 1e-8
    refine: bool = True
    prior_spec: PriorSpec = PriorSpec()
    n_bootstrap: int = 100


@dataclass(frozen=True)
class RegMixResult:
    x: np.ndarray             # weights
    fun: float                # predicted loss at x
    coef: np.ndarray          # regression coefficients (empty for LightGBM)
    residuals: np.ndarray     # fitted - measured, per run
    r2: float
    success: bool
    message: str
    iterations: int
    regressor: str = "lightgbm"
    model: Any = None         # the fitted regressor: predict(W) -> loss


def token_prior(tokens: np.ndarray, temperature: float = 0.5) -> np.ndarray:
    """The token distribution raised to `temperature` and normalised: the Dirichlet's centre."""
    p = np.asarray(tokens, float)
    if p.ndim != 1 or p.size < 2 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"token counts must be >= 0 for 2 or more domains with a positive total, got {p.tolist()}")
    q = (p / p.sum()) ** temperature
    return q / q.sum()


MAX_USAGE = 15.0  # epochs a domain may be seen in the final run (the authors' MAXIMUM_USAGE)


def usage_bound(tokens, *, max_usage: float = MAX_USAGE, train_tokens: float | None = None) -> np.ndarray:
    """Each domain's largest weight: `min(1, max_usage × available tokens / train_tokens)`, so
    that no domain is repeated more than `max_usage` epochs in a run of `train_tokens`. None:
    the corpus's size, which is the authors' `prior × MAXIMUM_USAGE`."""
    t = np.asarray(tokens, float)
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0) or t.sum() <= 0:
        raise ValueError(f"token counts must be >= 0 with a positive total, got {t.tolist()}")
    total = float(t.sum()) if train_tokens is None else float(train_tokens)
    if not (np.isfinite(max_usage) and max_usage > 0) or not total > 0:
        raise ValueError(f"usage bound: need max_usage > 0 and train tokens > 0, got {max_usage} and {total}")
    upper = np.minimum(1.0, max_usage * t / total)
    if upper.sum() < 1.0:
        raise ValueError(f"no mixture keeps every domain within {max_usage:g} epochs of a {total:,.0f}-token run "
                         f"(the bounds sum to {upper.sum():.3f}); allow more epochs or train on fewer tokens")
    return upper


def _round(w: np.ndarray, minimum: float) -> np.ndarray:
    """The authors' post-processing: shares under `minimum` to 0, the rest to multiples of it.
    Where 1 is a multiple of `minimum` (2e-4 is 1/5000) the largest share takes the rounding's
    remainder, so that rows stay on the simplex and on the grid (the authors' rows may be off by
    up to m/2 steps); otherwise the rounded rows are renormalised."""
    if minimum <= 0:
        return w
    w = np.where(w < minimum, 0.0, w)
    w = w / w.sum(axis=1, keepdims=True)
    units = np.round(w / minimum)
    steps = round(1.0 / minimum)
    if abs(steps * minimum - 1.0) > 1e-9:
        return units * minimum / (units * minimum).sum(axis=1, keepdims=True)
    top = np.argmax(units, axis=1)
    units[np.arange(len(units)), top] += steps - units.sum(axis=1)
    return units / steps


def sample_mixtures(prior: np.ndarray, n: int, *, seed: int | list[int], spec: PriorSpec = PriorSpec(),
                    upper: np.ndarray | None = None) -> np.ndarray:
    """`n` mixtures (rows on the simplex) drawn around `prior` at cycled concentrations, draws
    above `upper` (per domain, `usage_bound`) rejected, then rounded to `spec.minimum`.
    Deterministic in `seed`. Domains with prior 0 stay at 0."""
    prior = np.asarray(prior, float)
    if not 0 < spec.min_strength <= spec.max_strength:
        raise ValueError(f"strengths must satisfy 0 < min <= max, got {spec.min_strength}, {spec.max_strength}")
    if not 0 <= spec.minimum < 0.5:
        raise ValueError(f"minimum {spec.minimum}: give a rounding step in [0, 0.5)")
    rng = np.random.default_rng(seed)
    strengths = np.logspace(np.log10(spec.min_strength), np.log10(spec.max_strength), max(1, spec.n_strengths))
    live = np.flatnonzero(prior > 0)
    hi = None if upper is None else np.asarray(upper, float)[live]
    out = np.zeros((int(n), prior.size))
    which = np.arange(int(n)) % strengths.size
    for k, strength in enumerate(strengths):  # vectorised draws per concentration, rows in cycle order
        rows = np.flatnonzero(which == k)
        kept: list[np.ndarray] = []
        need, tries = rows.size, 0
        while need > 0:  # rejection sampling, as the authors bound the draws
            w = rng.dirichlet(np.maximum(prior[live] * strength, 1e-3), size=max(need, 16))  # tiny alphas: NaN
            w = w / w.sum(axis=1, keepdims=True)
            if hi is not None:
                w = w[np.all(w <= hi, axis=1)]
            kept.append(w[:need])
            need -= len(kept[-1])
            tries += 1
            if tries > 10_000:
                raise ValueError(f"the usage bound rejects nearly every draw at strength {strength:.3g}; "
                                 "allow more epochs")
        if rows.size:
            out[np.ix_(rows, live)] = np.concatenate(kept)
    return _round(out, spec.minimum)


def features(W: np.ndarray, model: str) -> np.ndarray:
    if model == "linear":
        return W
    i, j = np.triu_indices(W.shape[1], k=1)
    return np.hstack([W, W[:, i] * W[:, j]])


class _Ridge:
    def __init__(self, coef: np.ndarray, kind: str):
        self.coef, self.kind = coef, kind

    def predict(self, W: np.ndarray) -> np.ndarray:
        return features(np.atleast_2d(W), self.kind) @ self.coef


def lightgbm_params(n_runs: int, seed: int) -> dict[str, Any]:
    """The authors' LightGBM settings, with the leaf size scaled to the number of runs."""
    return {"objective": "regression", "boosting_type": "gbdt", "learning_rate": 1e-2, "num_iterations": 1000,
            "seed": int(seed), "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbosity": -1,
            "min_data_in_leaf": max(2, n_runs // 10), "min_data_in_bin": 1}


def fit_regressor(W: np.ndarray, y: np.ndarray, regressor: str, *, ridge: float = 1e-8, seed: int = 0):
    """The fitted model (with `.predict(W)`) and its coefficients (empty for LightGBM)."""
    if regressor == "lightgbm":
        try:
            import lightgbm
        except ImportError:  # pragma: no cover - a declared dependency
            raise ValueError("regressor 'lightgbm' needs the lightgbm package: pip install lightgbm") from None
        data = lightgbm.Dataset(W, label=y, params={"verbosity": -1, "min_data_in_bin": 1})
        return lightgbm.train(lightgbm_params(len(y), seed), data), np.zeros(0)
    X = features(W, regressor)
    if X.shape[0] < X.shape[1]:
        raise ValueError(f"{regressor} regression on {W.shape[1]} domains has {X.shape[1]} coefficients but only "
                         f"{X.shape[0]} runs; add runs or use model='linear' or 'lightgbm'")
    coef = np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ y)
    return _Ridge(coef, regressor), coef


def regmix_weights(W, loss, settings: RegMixSettings = RegMixSettings(), *, prior: np.ndarray | None = None,
                   upper: np.ndarray | None = None) -> RegMixResult:
    """Fit `settings.model` (a name in REGRESSORS) to (W, loss) and return the mean of the
    `top_k` best of `n_search` candidates. `prior` (a mixture) centres the candidate Dirichlet as RegMix
    does; None draws them from a flat Dirichlet(1). `upper` (per domain, `usage_bound`) rejects
    candidates above it (and bounds the quadratic's refinement)."""
    model, ridge, n_search, top_k = settings.model, settings.ridge, settings.n_search, settings.top_k
    refine, seed, prior_spec = settings.refine, settings.seed, settings.prior_spec
    W = np.asarray(W, float)
    y = np.asarray(loss, float)
    if model not in REGRESSORS:
        raise ValueError(f"model {model!r}: expected one of {', '.join(REGRESSORS)}")
    if W.ndim != 2 or y.shape != (W.shape[0],):
        raise ValueError(f"W must be (runs, domains) and loss (runs,), got {W.shape} and {y.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(y))):
        raise ValueError("weights or losses contain NaN or inf")
    if top_k < 1 or n_search < top_k:
        raise ValueError(f"top_k {top_k} and n_search {n_search}: need 1 <= top_k <= n_search")
    m = W.shape[1]
    if model == "lightgbm" and len(y) < 4:
        raise ValueError(f"lightgbm regression needs at least 4 runs, got {len(y)}; add runs")
    reg, coef = fit_regressor(W, y, model, ridge=ridge, seed=seed)
    fitted = reg.predict(W)
    r2 = 1.0 - float(np.sum((fitted - y) ** 2)) / max(float(np.sum((y - y.mean()) ** 2)), 1e-300)
    if prior is None and upper is None:
        cand = np.random.default_rng(seed).dirichlet(np.ones(m), size=n_search)
    else:
        flat = PriorSpec(min_strength=1.0, max_strength=1.0, n_strengths=1, minimum=0.0)
        cand = sample_mixtures(np.full(m, 1.0 / m) if prior is None else np.asarray(prior, float), n_search,
                               seed=[int(seed), 1], spec=flat if prior is None else prior_spec, upper=upper)
    pred = reg.predict(cand)
    best = cand[np.argsort(pred, kind="stable")[:top_k]].mean(axis=0)
    it = 0
    if refine and model == "quadratic":
        lin = coef[:m]
        Q = np.zeros((m, m))
        i, j = np.triu_indices(m, k=1)
        Q[i, j] = coef[m:]
        Q = Q + Q.T                      # f(w) = lin.w + 0.5 w'Qw
        lo, hi = feasible_bounds(m, 1.0, upper=upper)
        r = spg_minimize(lambda w: float(lin @ w + 0.5 * w @ Q @ w), lambda w: lin + Q @ w, best, 1.0, lo, hi,
                         tol=1e-12, max_iter=5000)
        if r.fun <= float(reg.predict(best[None])[0]):
            best, it = r.x, r.iterations
    fun = float(reg.predict(best[None])[0])
    return RegMixResult(x=best, fun=fun, coef=coef, residuals=fitted - y, r2=r2, success=True,
                        message=f"{model} regression R^2 = {r2:.4f} on {W.shape[0]} runs", iterations=it,
                        regressor=model, model=reg)


def spearman(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    """Spearman rank correlation (None with fewer than 3 pairs or a constant side)."""
    from scipy.stats import spearmanr

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    if p.size < 3 or np.ptp(p) == 0 or np.ptp(m) == 0:
        return None
    return float(spearmanr(p, m).statistic)
