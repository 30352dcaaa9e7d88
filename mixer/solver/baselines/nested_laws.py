"""The nested laws of Data Mixing Laws (Ye et al. 2024, §4): predict the loss of a large, long
training run at every proxy mixture from small, short ones, then fit the mixture law on those
predictions, so the optimum is chosen for the target run rather than for the proxies.

Per mixture and evaluated domain:
1. **Steps** (`fit_step_law`): `L(S) = E + B · S^(−β)` fitted on the loss curve of each small
   model (the held-out loss at several steps), then read at the target step count S*.
2. **Size** (`fit_size_law`): `L(N) = E + A · N^(−α)` fitted across the model sizes N of the
   step-extrapolated losses, then read at the target size N*.
3. **Mixture**: the laws of `mixer.solver.baselines.mixing_laws` on the predicted losses at (N*, S*).

Every law is fitted under the Huber loss, as the authors do, at their thresholds: 0.05 for the
step law (`STEP_DELTA`; yegcjs/mixinglaws `pipeline/steplaw.py` line 128, the per-mixture fit
`pipeline/run.sh` runs) and 0.08 for the size law (`SIZE_DELTA`; `pipeline/sizelaw.py` line 63),
from a grid of exponents (the law is linear in (E, B) once β is fixed, which gives each start).
With one model size step 2 is skipped (the losses at S* are used as they are).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares

STEP_DELTA = 0.05  # Huber threshold of the step law (the authors' steplaw.py)
SIZE_DELTA = 0.08  # of the size law (the authors' sizelaw.py)


@dataclass(frozen=True)
class PowerLaw:
    """L(x) = e + a · x^(−alpha)."""
    e: float
    a: float
    alpha: float
    cost: float

    def __call__(self, x) -> np.ndarray:
        return self.e + self.a * np.power(np.asarray(x, float), -self.alpha)


def fit_power_law(x, y, *, delta: float = STEP_DELTA, loss: str = "huber") -> PowerLaw:
    """Fit `y = e + a x^(−alpha)` (a ≥ 0, alpha in [0, 5]) under the Huber loss; needs 3+ points."""
    if loss not in ("huber", "linear"):
        raise ValueError(f"loss {loss!r}: expected 'huber' (the authors') or 'linear' (least squares)")
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 3:
        raise ValueError(f"a power law needs 3 or more (x, y) points, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(x <= 0):
        raise ValueError("power-law points must be finite with x > 0")
    scale = float(np.max(x))
    u = x / scale  # fit in x / max x: the amplitude stays of order one

    def resid(th):
        return th[0] + th[1] * np.power(u, -th[2]) - y

    bounds = ([-np.inf, 0.0, 0.0], [np.inf, np.inf, 5.0])
    best = None
    for alpha in (0.05, 0.2, 0.5, 1.0, 2.0):
        A = np.stack([np.ones_like(u), np.power(u, -alpha)], axis=1)
        (e0, a0), *_ = np.linalg.lstsq(A, y, rcond=None)
        r = least_squares(resid, [e0, max(a0, 1e-9), alpha], bounds=bounds, xtol=1e-12, ftol=1e-12, gtol=1e-12,
                          max_nfev=5000)
        if best is None or r.cost < best.cost:
            best = r
    if loss == "huber":  # the starts find the basin under least squares; the Huber optimum from there
        best = least_squares(resid, best.x, bounds=bounds, loss="huber", f_scale=delta, xtol=1e-12, ftol=1e-12,
                             gtol=1e-12, max_nfev=5000)
    e, a_u, alpha = map(float, best.x)
    return PowerLaw(e=e, a=a_u * scale ** alpha, alpha=alpha, cost=float(best.cost))


def fit_step_law(steps, losses, *, delta: float = STEP_DELTA) -> PowerLaw:
    """L(S) = E + B S^(−β) on one run's loss curve."""
    return fit_power_law(steps, losses, delta=delta)


def fit_size_law(sizes, losses, *, delta: float = SIZE_DELTA) -> PowerLaw:
    """L(N) = E + A N^(−α) across model sizes (non-embedding parameters)."""
    return fit_power_law(sizes, losses, delta=delta)


def predict_target_losses(curves: Sequence[Sequence[tuple[Sequence[float], Sequence[float]]]],
                          sizes: Sequence[float], target_steps: float, target_size: float | None = None,
                          *, delta: float | None = None) -> np.ndarray:
    """`curves[s][i] = (steps, losses)`: the loss curve of the model of size `sizes[s]` trained
    on mixture i (one evaluated domain). Returns the predicted loss of every mixture at
    (`target_size`, `target_steps`): the step law per curve, then the size law across sizes
    (with one size, the step-law prediction itself). `delta`: one Huber threshold for both
    laws; None: the authors' (`STEP_DELTA`, `SIZE_DELTA`)."""
    step_delta, size_delta = (STEP_DELTA, SIZE_DELTA) if delta is None else (delta, delta)
    if len(curves) != len(sizes) or not curves:
        raise ValueError(f"give one list of curves per model size: {len(curves)} lists for {len(sizes)} sizes")
    n_mix = {len(c) for c in curves}
    if len(n_mix) != 1:
        raise ValueError(f"every model size needs a curve per mixture, got {sorted(n_mix)} mixtures")
    at_steps = np.array([[fit_step_law(s, l, delta=step_delta)(target_steps) for s, l in per_size]
                         for per_size in curves])  # (sizes, mixtures)
    if len(sizes) == 1:
        return at_steps[0]
    if target_size is None:
        raise ValueError("several model sizes need a target_size to extrapolate to")
    if len(sizes) < 3:
        raise ValueError(f"the size law has 3 parameters; give 3 or more model sizes, got {len(sizes)}")
    return np.array([fit_size_law(sizes, at_steps[:, i], delta=size_delta)(target_size) for i in range(at_steps.shape[1])])
