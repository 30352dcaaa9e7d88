"""The predicted loss of a mixture at another budget, and one mixture's gain over another there,
with its interval: AutoScale's verdict is about the target, not about the scales it measured.

Model: the largest measured scale's DDO curves, read in tokens. DDO fits each domain's held-out
metric (a fraction of that scale's base run) as f_j(x) = (n0_j + x)^(-b_j) + c_j, x = tokens_j /
(N/m); the additive model `y(w, T) = sum_j f_j(w_j T / (N/m))` predicts the metric of weights w at
a budget T (paper §2.2, and Theorem 1's premise: each domain's contribution is a power law in its
own tokens). The gain of mixture A over B at T is y(B, T) - y(A, T), in units of the largest
scale's base metric; > 0 means A is better.

Interval: a bootstrap of the whole chain. Chain replicate k takes DDO replicate r_k of the largest
scale (its curves and its optimum, which is direct transfer's weights in that replicate) and the
AutoScale weights extrapolated from one independent replicate of every scale
(`mixer.solver.intervals.autoscale_chain`). In the bootstrap's world the truth is the fitted
curves, so replicate k's error is its own predicted gain of the mixtures it chose minus the
fitted curves' gain of those same mixtures. The interval is centred on the fitted gain, with the
errors' root-mean-square as its standard error (bias and spread together), not corrected by their
mean as DDO's gain is: 8x beyond the fitted budget the correction moved the centre away from the
truth as often as towards it (simulated 2-scale studies, exact law: 87 % coverage corrected, 93 %
centred with the rms; `bench.calibration`). The verdict asks the same `Z_DECISION` of it.

What it does not carry: the error of the curves' form far from the budget they were fitted at.
`bench.calibration` measures that with a law whose exponents drift with scale ("bent").

The same curves also give a second model of the target optimum (`curves_optimum`): DDO's
solution of the largest scale's curves at the target budget, with one solution per bootstrap
replicate. AutoScale's weight intervals are the union of its own chain interval and this one
(`mixer.solver.solutions.autoscale`): the two models fail in different worlds, and either alone
covered the target optimum far too rarely in simulation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mixer.solver.ddo import solve_ddo
from mixer.solver.ddo_model import Gain, corrected_gain
from mixer.solver.powerlaw import FORMS, power_law_rows

@dataclass(frozen=True)
class ScaleCurves:
    """One scale's fitted DDO curves and its bootstrap replicates' (`DDO.curves_json`)."""
    form: str
    unit_tokens: float          # tokens per x unit at that scale (its budget / m)
    domains: tuple[str, ...]
    params: np.ndarray          # (m, p)
    replicates: np.ndarray      # (n, m, p), rows as the scale's bootstrap weights
    scales: np.ndarray          # (n,) each replicate's y scale

    @classmethod
    def from_json(cls, record: Mapping[str, Any] | None, domains: Sequence[str]) -> "ScaleCurves | None":
        """From weights.json's `curves` with columns in `domains` order; None when absent or not of
        this shape (an older file: AutoScale then says it cannot predict the gain)."""
        if not record or record.get("form") not in FORMS or set(record.get("domains", ())) != set(domains):
            return None
        order = [list(record["domains"]).index(d) for d in domains]
        p = len(FORMS[record["form"]])
        params = np.asarray(record["params"], float)
        reps = np.asarray(record.get("replicate_params") or np.empty((0, len(domains), p)), float)
        scales = np.asarray(record.get("replicate_scale") or np.ones(reps.shape[0]), float)
        if params.shape != (len(domains), p) or reps.ndim != 3 or reps.shape[1:] != (len(domains), p) \
                or scales.shape != (reps.shape[0],) or not float(record.get("unit_tokens", 0)) > 0:
            return None
        return cls(form=record["form"], unit_tokens=float(record["unit_tokens"]), domains=tuple(domains),
                   params=params[order], replicates=reps[:, order], scales=scales)

    def loss(self, weights: np.ndarray, target: float, theta: np.ndarray | None = None) -> float:
        """The additive model's metric (fit units, up to a constant) of `weights` at `target` tokens."""
        x = np.asarray(weights, float) * (float(target) / self.unit_tokens)
        return float(np.sum(power_law_rows(x, self.params if theta is None else theta, self.form)))


@dataclass(frozen=True)
class TargetGains:
    """The comparisons at the target ({name: Gain}) and the metric their units are a fraction of."""
    metric: str
    gains: dict

    def get(self, name: str) -> Gain | None:
        return self.gains.get(name)

    def items(self):
        return self.gains.items()

    def __bool__(self) -> bool:
        return bool(self.gains)


@dataclass(frozen=True)
class Mixture:
    """A mixture compared at the target: its weights and, per chain replicate, the weights that
    replicate chose (None: the same in every replicate, e.g. uniform)."""
    name: str
    weights: np.ndarray
    replicates: np.ndarray | None = None


def target_gain(curves: ScaleCurves, target: float, better: Mixture, reference: Mixture,
                rows: np.ndarray) -> Gain:
    """`better`'s predicted gain over `reference` at `target` (see the module docstring). `rows[k]`:
    the largest scale's replicate index used by chain replicate k (the rows of the mixtures'
    `replicates`)."""
    estimate = curves.loss(reference.weights, target) - curves.loss(better.weights, target)
    rows = np.asarray(rows, int)
    if curves.replicates.shape[0] == 0:
        return Gain(reference.name, estimate)
    errors = []
    for k, r in enumerate(rows):
        wa = better.weights if better.replicates is None else better.replicates[k]
        wb = reference.weights if reference.replicates is None else reference.replicates[k]
        theta, s = curves.replicates[r], curves.scales[r]
        own = (curves.loss(wb, target, theta) - curves.loss(wa, target, theta)) / s
        errors.append(own - (curves.loss(wb, target) - curves.loss(wa, target)))
    return corrected_gain(reference.name, estimate, np.asarray(errors), rms=True)


@dataclass(frozen=True)
class CurvesOptimum:
    """DDO's optimum of the largest scale's curves at the target budget, and every bootstrap
    replicate's (rows of `replicates`; replicates whose curves cannot be solved are left out)."""
    weights: np.ndarray
    replicates: np.ndarray


def _solve_curves(curves: ScaleCurves, theta: np.ndarray, total: float, floor: float | None) -> np.ndarray:
    theta = np.asarray(theta, float)
    n0 = np.maximum(theta[:, 0], 0.0) if curves.form == "shifted" else np.zeros(theta.shape[0])
    lower = None if not floor else np.full(theta.shape[0], floor * total)
    return solve_ddo(n0, np.maximum(theta[:, -2], 0.0), total, lower=lower).weights


def curves_optimum(curves: ScaleCurves | None, target: float, floor: float | None = None) -> CurvesOptimum | None:
    """The weights that minimise the additive model of `curves` at `target` tokens, with the same
    `floor` (a fraction of the budget per domain) as the DDO fits; None without curves or when the
    fitted curves cannot be solved."""
    if curves is None:
        return None
    total = float(target) / curves.unit_tokens
    try:
        weights = _solve_curves(curves, curves.params, total, floor)
    except ValueError:
        return None
    reps = []
    for theta in curves.replicates:
        try:
            reps.append(_solve_curves(curves, theta, total, floor))
        except ValueError:
            continue
    return CurvesOptimum(weights=weights, replicates=np.asarray(reps, float).reshape(-1, len(curves.domains)))
