"""RegMix (Liu et al. 2024): regress loss on mixture weights over many small random-mixture
runs, then average the mixtures the regression likes best.

As published (github.com/sail-sg/regmix):
- **Candidates** (`sample_mixtures`): Dirichlet draws around the corpus's token distribution,
  `w ~ Dir(strength · p^τ / Σ p^τ)` with the temperature τ = 0.5 and the strength cycled over
  15 log-spaced values between 0.1 and 5, so some draws sit near the prior and others near a
  corner. The same generator gives the training mixtures and the search candidates.
- **Regression** (`regressor="lightgbm"`): a LightGBM gradient-boosted regressor (gbdt, L2,
  learning rate 0.01, 1000 rounds, fixed seed, deterministic, one thread).
  Differs: with fewer runs than the authors' 512, `min_data_in_leaf` is lowered to
  `max(2, n // 10)` (LightGBM's 20 would give no split at all on 30 runs).
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
    regressor: str = "quadratic"
    model: Any = None         # the fitted regressor: predict(W) -> loss


def token_prior(tokens: np.ndarray, temperature: float = 0.5) -> np.ndarray:
    """The token distribution raised to `temperature` and normalised: the Dirichlet's centre."""
    p = np.asarray(tokens, float)
    if p.ndim != 1 or p.size < 2 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"token counts must be >= 0 for 2 or more domains with a positive total, got {p.tolist()}")
    q = (p / p.sum()) ** temperature
    return q / q.sum()


def sample_mixtures(prior: np.ndarray, n: int, *, seed: int | list[int], spec: PriorSpec = PriorSpec()) -> np.ndarray:
    """`n` mixtures (rows on the simplex) drawn around `prior` at cycled concentrations.
    Deterministic in `seed`. Domains with prior 0 stay at 0."""
    prior = np.asarray(prior, float)
    if not 0 < spec.min_strength <= spec.max_strength:
        raise ValueError(f"strengths must satisfy 0 < min <= max, got {spec.min_strength}, {spec.max_strength}")
    rng = np.random.default_rng(seed)
    strengths = np.logspace(np.log10(spec.min_strength), np.log10(spec.max_strength), max(1, spec.n_strengths))
    live = prior > 0
    out = np.zeros((int(n), prior.size))
    which = np.arange(int(n)) % strengths.size
    for k, strength in enumerate(strengths):  # one vectorised draw per concentration, rows in cycle order
        rows = np.flatnonzero(which == k)
        if rows.size:
            w = rng.dirichlet(np.maximum(prior[live] * strength, 1e-3), size=rows.size)  # tiny alphas give NaN
            out[np.ix_(rows, np.flatnonzero(live))] = w / w.sum(axis=1, keepdims=True)
    return out


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


def regmix_weights(W, loss, *, model: str = "quadratic", ridge: float = 1e-8, n_search: int = 100_000,
                   top_k: int = 100, refine: bool = True, seed: int = 0, prior: np.ndarray | None = None,
                   prior_spec: PriorSpec = PriorSpec()) -> RegMixResult:
    """Fit `model` (a name in REGRESSORS) to (W, loss) and return the mean of the `top_k` best
    of `n_search` candidates. `prior` (a mixture) centres the candidate Dirichlet as RegMix
    does; None draws them from a flat Dirichlet(1)."""
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
    if prior is None:
        cand = np.random.default_rng(seed).dirichlet(np.ones(m), size=n_search)
    else:
        cand = sample_mixtures(np.asarray(prior, float), n_search, seed=[int(seed), 1], spec=prior_spec)
    pred = reg.predict(cand)
    best = cand[np.argsort(pred, kind="stable")[:top_k]].mean(axis=0)
    it = 0
    if refine and model == "quadratic":
        lin = coef[:m]
        Q = np.zeros((m, m))
        i, j = np.triu_indices(m, k=1)
        Q[i, j] = coef[m:]
        Q = Q + Q.T                      # f(w) = lin.w + 0.5 w'Qw
        lo, hi = feasible_bounds(m, 1.0)
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
