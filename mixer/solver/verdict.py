"""The verdict: are the weights supported by the runs behind them?

`supported` only when every check passes; otherwise `unsupported` with one reason per failed
check, each naming the domain or scale and what would fix it. The checks:

DDO (one scale):
  1. the run-to-run noise is known (seed repeats, `--noise`, or residuals of fits with more
     points than parameters): without it no effect can be told from chance;
  2. every domain's effect (y at its fewest tokens minus y at its most) is at least
     `Z_SUPPORTED` = 2 standard errors (`mixer.solver.noise`);
  3. no fit is ill-posed or ambiguous (`mixer.solver.powerlaw`);
  4. no fit misses its group means by more than `LACK_OF_FIT_MAX` = 3 noise units;
  5. the bootstrap gave an interval for every weight;
  6. held-out runs, when there are any, are predicted within `HELDOUT_Z_MAX` = 3 standard
     deviations of one run's noise.
AutoScale (several scales): every scale's DDO verdict is supported; with three or more scales
the log-linear fit passes through every scale's interval; and no extrapolated weight's 95 %
interval spans more than `UNDETERMINED_SPAN` = 0.5 of the simplex.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mixer.solver.noise import Z_SUPPORTED

LACK_OF_FIT_MAX = 3.0
HELDOUT_Z_MAX = 3.0
UNDETERMINED_SPAN = 0.5


@dataclass(frozen=True)
class Verdict:
    supported: bool
    reasons: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return "supported" if self.supported else "unsupported"

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.label, "reasons": list(self.reasons)}

    def lines(self, fallback: str = "uniform") -> list[str]:
        """What to print: the verdict, its reasons and, when unsupported, the safer choice."""
        if self.supported:
            return ["verdict: supported (effects beyond noise, fits checked, intervals on every weight)"]
        out = [f"verdict: UNSUPPORTED: the runs do not support these weights; {fallback} is the safer choice, because:"]
        out += [f"  - {r}" for r in self.reasons]
        return out


@dataclass(frozen=True)
class HeldOut:
    """Held-out runs: measured and predicted y (fit units), judged against one run's noise."""
    names: tuple[str, ...]
    measured: np.ndarray
    predicted: np.ndarray
    sigma: float | None

    @property
    def z(self) -> np.ndarray | None:
        if self.sigma is None or self.sigma <= 0:
            return None
        return (self.measured - self.predicted) / self.sigma

    def to_json(self) -> dict[str, Any]:
        z = self.z
        return {"runs": list(self.names), "measured": self.measured.tolist(), "predicted": self.predicted.tolist(),
                "sigma": self.sigma, "z": None if z is None else z.tolist(),
                "max_abs_z_allowed": HELDOUT_Z_MAX}


def ddo_verdict(est, held_out: HeldOut | None = None) -> Verdict:
    """Apply checks 1-6 of the module docstring to a fitted `mixer.solver.ddo_model.DDO`."""
    reasons: list[str] = []
    noise = est.noise_
    if noise.sigma is None:
        reasons.append("run-to-run noise not measured: every fit passes exactly through its points, so nothing "
                       "tells an effect from chance; repeat the runs with other seeds (--seeds 2) or add factors")
    for d, e in est.effects_.items():
        if e.within_noise:
            reasons.append(f"domain {d!r}: its tokens moved the {est.metric_} by {e.delta:+.3g} (relative to the "
                           f"base run), within run-to-run noise (standard error {e.se:.2g}, z = {e.z:+.2f}, "
                           f"needs |z| >= {Z_SUPPORTED:g}); use larger perturbations, proxies, or more seeds")
    for d, f in est.fits_.items():
        if f.ill_posed:
            reasons.append(f"domain {d!r}: power-law fit ill-posed ({f.message})")
        if f.ambiguous:
            reasons.append(f"domain {d!r}: {len(f.alternatives) + 1} power-law fits pass equally well through the "
                           "points, and they disagree; add a factor so that one of them is ruled out")
        lof = est.lack_of_fit_.get(d)
        if lof is not None and lof > LACK_OF_FIT_MAX:
            reasons.append(f"domain {d!r}: the power law misses the measured means by {lof:.1f} noise units "
                           f"(allowed {LACK_OF_FIT_MAX:g}); the curve does not describe these runs")
    if est.bootstrap_.method == "none" or any(lo != lo for lo, _ in est.intervals_.values()):
        reasons.append(f"no interval on the weights ({est.bootstrap_.message})")
    if held_out is not None and len(held_out.names):
        z = held_out.z
        if z is None:
            reasons.append("held-out runs cannot be judged: the noise is unknown")
        else:
            for name, zi, meas, pred in zip(held_out.names, z, held_out.measured, held_out.predicted):
                if abs(zi) > HELDOUT_Z_MAX:
                    reasons.append(f"held-out run {name!r}: predicted {pred:.4g}, measured {meas:.4g} "
                                   f"({zi:+.1f} noise units; allowed {HELDOUT_Z_MAX:g})")
    return Verdict(supported=not reasons, reasons=tuple(reasons))


def autoscale_verdict(scale_verdicts: Mapping[str, Verdict], domains: Sequence[str],
                      intervals: Mapping[str, tuple[float, float]], fitted_weights: np.ndarray | None = None,
                      scale_intervals: Sequence[Mapping[str, tuple[float, float]]] = (),
                      scale_names: Sequence[str] = ()) -> Verdict:
    """The AutoScale checks: each scale supported, the trend through every scale's interval, the
    extrapolated weights determined. `fitted_weights[s]` is the log-linear fit's weights at scale s."""
    reasons: list[str] = []
    for name, v in scale_verdicts.items():
        if not v.supported:
            reasons.append(f"scale {name}: DDO optimum unsupported ({'; '.join(v.reasons[:2])}"
                           f"{'; ...' if len(v.reasons) > 2 else ''})")
    if fitted_weights is not None and len(scale_intervals) >= 3:
        for s, (name, iv) in enumerate(zip(scale_names, scale_intervals)):
            for j, d in enumerate(domains):
                lo, hi = iv.get(d, (np.nan, np.nan))
                w = float(fitted_weights[s, j])
                if lo == lo and not lo - 1e-9 <= w <= hi + 1e-9:
                    reasons.append(f"scale {name}: the log-linear trend gives {d!r} {w:.3f}, outside its DDO "
                                   f"interval [{lo:.3f}, {hi:.3f}]; the optima disagree with one trend")
    if not intervals:
        reasons.append("no interval on the extrapolated weights (the DDO inputs carry no bootstrap replicates)")
    for d, (lo, hi) in intervals.items():
        if hi - lo > UNDETERMINED_SPAN:
            reasons.append(f"domain {d!r}: extrapolated weight undetermined, 95 % interval [{lo:.2f}, {hi:.2f}]")
    return Verdict(supported=not reasons, reasons=tuple(reasons))
