"""The verdict: should the user train on these weights instead of uniform (or their base mixture)?

`supported` means the evidence backs that decision; otherwise `unsupported` with one reason per
failed check, each naming the domain or scale and what would fix it. A check that cannot be
made (noise unknown or zero, a failed fit, a missing statistic) is a reason, never a pass.

DDO (one scale), all of:
  1. the run-to-run noise is known and not zero (seed repeats, `--noise`, or residuals of fits
     with more points than parameters): without it nothing can be told from chance;
  2. the predicted gain of the returned weights over uniform (and over the base mixture, when it
     is not uniform), corrected for the optimism of choosing the weights on the same fits, is
     more than `Z_DECISION` = 2.5 of its standard errors above 0 (so its 95 % interval excludes
     0 with room; `mixer.solver.ddo_model`, calibrated in `bench.calibration`). This
     is the decision itself; each domain's effect is reported beside it, but an effect alone
     decides nothing (with grown totals every domain "helps" by the budget it adds);
  3. the design is unbiased: grown totals (Algorithm 1). With fixed totals each domain's curve
     absorbs the other domains' changes, and the optimum is off even without noise;
  4. no fit is ambiguous where it interpolates its points. A fit whose parameters are poorly
     pinned down (b at a bound, a rank-deficient Jacobian: typical of a flat, useless domain) is
     a warning, not a reason: what matters is whether the decision survives it, and the
     bootstrap's refits carry that uncertainty into the gain's interval (a veto on it fired on
     most sweeps with a useless domain, whose right answer, its floor, was found);
  5. the curves pass the lack-of-fit test against the seed-to-seed noise (p >= 0.001,
     `mixer.solver.noise.lack_of_fit_test`);
  6. every weight and the gain have an interval, and at most `MAX_FAILED_SHARE` of the bootstrap
     replicates failed numerically;
  7. held-out runs, when there are any, are predicted within `HELDOUT_Z_MAX` = 3 standard
     deviations of one run's noise;
  8. the proxies are not undertrained: the base runs' loss fell over their last fifth of steps
     (`mixer.solver.noise.tail_drop`) by less than the domains' measured effects differ (the
     largest effect minus the smallest: what the sweep measures that decides the mixture).
AutoScale (several scales): every scale's DDO verdict is supported (a scale not judged is not);
with three or more scales the log-linear fit passes through every scale's interval; a scale held
out of the fit (`--validate-scale`), when given, is predicted inside its DDO interval; no
extrapolated weight's 95 % interval spans more than `UNDETERMINED_SPAN` = 0.25 of the simplex; and
at the target the predicted gain of the extrapolated weights over uniform and over direct transfer
(the largest scale's curves read at the target budget, the whole chain bootstrapped:
`mixer.solver.target_gain`) each exceeds `Z_DECISION` of its standard errors.
"Outside an interval" means outside by more than `OUTSIDE_TOL` (1e-6), and the numbers are
printed with enough digits to show it.

What to use instead (`recommend`): AutoScale's weights only when its verdict is supported;
otherwise direct transfer (the largest scale's DDO weights) when that scale's DDO verdict is
supported and its predicted gain over uniform at the target clears the same bar; otherwise uniform.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mixer.solver.ddo_model import Z_DECISION
from mixer.solver.noise import LOF_ALPHA, ZERO_NOISE

HELDOUT_Z_MAX = 3.0
UNDETERMINED_SPAN = 0.25
OUTSIDE_TOL = 1e-6
MAX_FAILED_SHARE = 0.1


@dataclass(frozen=True)
class Verdict:
    supported: bool
    reasons: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return "supported" if self.supported else "unsupported"

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.label, "reasons": list(self.reasons)}

    def lines(self, fallback: str = "uniform", versus: str | None = None) -> list[str]:
        """What to print: the verdict, its reasons and, when unsupported, the safer choice
        (`fallback`); `versus` names what a supported answer was judged against (default: the
        fallback, as for DDO; AutoScale's is uniform and direct transfer at the target)."""
        if self.supported:
            return [f"verdict: supported (the predicted gain over {versus or fallback} exceeds its 95 % interval's "
                    "noise; fits checked)"]
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


def _gain_reason(g, subject: str, metric: str, advice: str) -> str | None:
    """The reason a predicted gain (`mixer.solver.ddo_model.Gain`) does not back the decision, or None."""
    if g is None or g.sd != g.sd:
        return f"no interval on the predicted gain {subject}, so it cannot be told from noise"
    if not g.clears:
        return (f"the predicted gain {subject} is {g.describe(metric)}: less than {Z_DECISION:g} of its standard "
                f"errors ({g.sd:.2g}); {advice}")
    return None


def _gain_reasons(est) -> list[str]:
    advice = ("within the run-to-run noise; use larger perturbations, longer proxies or more seeds "
              "(`mixer solve power` sizes a sweep)")
    found = (_gain_reason(g, f"over {g.against}", est.metric_, advice) for g in est.gains_.values())
    return [r for r in found if r]


def effect_spread(est) -> tuple[float, str, str] | None:
    """The largest difference between two domains' measured effects (fit units) and the two domains:
    what the sweep measures that decides the mixture. With grown totals every domain's effect also
    holds what any extra tokens would do, the same for every domain, so only differences count."""
    known = {d: e.delta for d, e in est.effects_.items() if e.delta == e.delta}
    if len(known) < 2:
        return None
    hi, lo = max(known, key=known.get), min(known, key=known.get)
    return known[hi] - known[lo], hi, lo


def undertrained_reason(est) -> str | None:
    """Check 8: the base runs' loss still falls, over their last fifth of steps, by more than the
    effects being measured differ (`effect_spread`); then the sweep measures where training stopped
    as much as the data. None when it does not (or when there are no curves to read)."""
    tail, spread = est.tail_, effect_spread(est)
    if tail is None or spread is None or not tail.drop > max(spread[0], 0.0):
        return None
    need = tail.tokens_needed(est.budget_tokens_, spread[0])
    fix = (f"train proxies on about {need:,} tokens or more" if need else
           "train the proxies much longer (the effects are too small to say how much)")
    return (f"undertrained proxies: the base run's {est.metric_} still fell by {tail.drop:.3g} (of the base) over its "
            f"last fifth of steps, more than the domains' measured effects differ ({spread[0]:.3g}, between "
            f"{spread[1]!r} and {spread[2]!r}); {fix}")


def ddo_verdict(est, held_out: HeldOut | None = None) -> Verdict:
    """Apply checks 1-8 of the module docstring to a fitted `mixer.solver.ddo_model.DDO`."""
    reasons: list[str] = []
    noise = est.noise_
    if noise.sigma is None:
        reasons.append("run-to-run noise not measured: every fit passes exactly through its points, so nothing "
                       "tells an effect from chance; repeat the runs with other seeds (--seeds 2) or add factors")
    elif not noise.sigma > ZERO_NOISE:
        reasons.append(f"run-to-run noise measured as 0 (from {noise.source}): repeats gave identical losses, so "
                       "nothing tells an effect from chance; check that the seeds change the model and data order")
    reasons += _gain_reasons(est)
    if est.design_ == "fixed":
        reasons.append("fixed totals: each perturbed run also shrinks every other domain, so each domain's curve "
                       "absorbs the others' changes and the optimum is biased even without noise; use grown totals "
                       "(the default design)")
    for d, f in est.fits_.items():
        if f.ambiguous and f.interpolates:
            reasons.append(f"domain {d!r}: {len(f.alternatives) + 1} power-law fits pass equally well through the "
                           "points, and they disagree; add a factor so that one of them is ruled out")
    lof = est.lack_of_fit_test_
    if lof is not None and lof.p < LOF_ALPHA:
        reasons.append(f"the power laws miss the measured means beyond the seed-to-seed noise (lack-of-fit F = "
                       f"{lof.f:.2f} on {lof.dof} dof, p = {lof.p:.2g}; worst domain {lof.worst!r}): the curves do "
                       "not describe these runs")
    boot = est.bootstrap_
    if boot.method == "none" or any(lo != lo for lo, _ in est.intervals_.values()):
        reasons.append(f"no interval on the weights ({boot.message})")
    elif boot.n_boot and boot.failures > MAX_FAILED_SHARE * boot.n_boot:
        reasons.append(f"{boot.failures} of {boot.n_boot} bootstrap refits failed numerically; the interval "
                       "would describe only the replicates that fit")
    if held_out is not None and len(held_out.names):
        z = held_out.z
        if z is None:
            reasons.append("held-out runs cannot be judged: the noise is unknown or zero")
        else:
            for name, zi, meas, pred in zip(held_out.names, z, held_out.measured, held_out.predicted):
                if abs(zi) > HELDOUT_Z_MAX:
                    reasons.append(f"held-out run {name!r}: predicted {pred:.4g}, measured {meas:.4g} "
                                   f"({zi:+.1f} noise units; allowed {HELDOUT_Z_MAX:g})")
    said = undertrained_reason(est)
    if said:
        reasons.append(said)
    return Verdict(supported=not reasons, reasons=tuple(reasons))


def outside(w: float, lo: float, hi: float) -> bool:
    """`w` outside [lo, hi] by more than `OUTSIDE_TOL` (solver round-off is not a finding)."""
    return lo == lo and not lo - OUTSIDE_TOL <= w <= hi + OUTSIDE_TOL


def show_outside(w: float, lo: float, hi: float) -> tuple[str, str, str]:
    """`w`, `lo`, `hi` with 4 significant digits, more where fewer would print `w` equal to the
    bound it is outside of (a reason must not read "0.050, outside [0.050, 0.103]")."""
    bound = lo if w < lo else hi
    for digits in range(4, 13):
        a, b = f"{w:.{digits}g}", f"{bound:.{digits}g}"
        if a != b:
            break
    return a, f"{lo:.{digits}g}", f"{hi:.{digits}g}"


@dataclass(frozen=True)
class ScaleCheck:
    """A scale left out of the AutoScale fit: the other scales' prediction of its weights against
    its measured DDO optimum and 95 % interval. `predicted` is None when they cannot reach it."""
    budget: int
    domains: tuple[str, ...]
    predicted: np.ndarray | None
    measured: np.ndarray
    intervals: Mapping[str, tuple[float, float]]
    message: str = ""

    @property
    def inside(self) -> dict[str, bool | None]:
        """{domain: predicted weight inside the DDO interval} (None: no interval or prediction)."""
        if self.predicted is None:
            return {d: None for d in self.domains}
        out: dict[str, bool | None] = {}
        for d, w in zip(self.domains, self.predicted):
            lo, hi = self.intervals.get(d, (np.nan, np.nan))
            out[d] = None if lo != lo else not outside(float(w), lo, hi)
        return out

    @property
    def max_abs_diff(self) -> float | None:
        return None if self.predicted is None else float(np.max(np.abs(self.predicted - self.measured)))

    def to_json(self) -> dict[str, Any]:
        pred = None if self.predicted is None else dict(zip(self.domains, map(float, self.predicted)))
        return {"budget_tokens": self.budget, "predicted": pred,
                "measured": dict(zip(self.domains, map(float, self.measured))),
                "intervals": {d: [float(v[0]), float(v[1])] for d, v in self.intervals.items()},
                "inside": self.inside, "max_abs_diff": self.max_abs_diff, "message": self.message}

    def reasons(self) -> list[str]:
        name = f"{self.budget:,}"
        if self.predicted is None:
            return [f"held-out scale {name}: the other scales cannot predict it ({self.message})"]
        if not self.intervals:
            return [f"held-out scale {name}: its DDO optimum has no interval to judge the prediction against; "
                    "solve it with a bootstrap"]
        out = []
        for d, w, meas in zip(self.domains, self.predicted, self.measured):
            lo, hi = self.intervals.get(d, (np.nan, np.nan))
            if outside(float(w), lo, hi):
                a, b, c = show_outside(float(w), lo, hi)
                out.append(f"held-out scale {name}: the other scales predict {d!r} {a}, outside its DDO 95 % "
                           f"interval [{b}, {c}] (measured {meas:.4g}); the trend does not carry to this scale")
        return out


def autoscale_verdict(scale_verdicts: Mapping[str, Verdict | None], domains: Sequence[str],
                      intervals: Mapping[str, tuple[float, float]], fitted_weights: np.ndarray | None = None,
                      scale_intervals: Sequence[Mapping[str, tuple[float, float]]] = (),
                      scale_names: Sequence[str] = (), held_out: ScaleCheck | None = None,
                      gains: Mapping[str, Any] | None = None) -> Verdict:
    """The AutoScale checks: each scale supported, the trend through every scale's interval, the
    held-out scale predicted, the extrapolated weights determined, and at the target the
    predicted gain over uniform and over direct transfer each clearing `Z_DECISION` of its
    standard errors (`gains`, `mixer.solver.target_gain`; None: not judged, as before those
    were computed). `fitted_weights[s]` is the log-linear fit's weights at scale s."""
    reasons: list[str] = []
    for name, v in scale_verdicts.items():
        if v is None:
            reasons.append(f"scale {name}: DDO optimum not judged (no verdict in its weights.json); "
                           "solve it again with `mixer solve ddo`")
        elif not v.supported:
            reasons.append(f"scale {name}: DDO optimum unsupported ({'; '.join(v.reasons[:2])}"
                           f"{'; ...' if len(v.reasons) > 2 else ''})")
    if fitted_weights is not None and len(scale_intervals) >= 3:
        for s, (name, iv) in enumerate(zip(scale_names, scale_intervals)):
            for j, d in enumerate(domains):
                lo, hi = iv.get(d, (np.nan, np.nan))
                w = float(fitted_weights[s, j])
                if outside(w, lo, hi):
                    a, b, c = show_outside(w, lo, hi)
                    reasons.append(f"scale {name}: the log-linear trend gives {d!r} {a}, outside its DDO "
                                   f"interval [{b}, {c}]; the optima disagree with one trend")
    if held_out is not None:
        reasons += held_out.reasons()
    if not intervals:
        reasons.append("no interval on the extrapolated weights (the DDO inputs carry no bootstrap replicates)")
    if gains is not None:
        reasons += _target_reasons(gains)
    for d, (lo, hi) in intervals.items():
        if hi - lo > UNDETERMINED_SPAN:
            reasons.append(f"domain {d!r}: extrapolated weight undetermined, 95 % interval [{lo:.2f}, {hi:.2f}] "
                           f"spans more than {UNDETERMINED_SPAN:g}")
    return Verdict(supported=not reasons, reasons=tuple(reasons))


def _target_reasons(gains: Mapping[str, Any]) -> list[str]:
    if not gains:
        return ["no predicted loss at the target: the largest scale's weights.json carries no fitted curves; "
                "solve that scale again"]
    found = (_gain_reason(gains.get(name), f"of {name} at the target", getattr(gains, "metric", "metric"),
                          "the runs do not show the extrapolation to be better")
             for name in ("autoscale over uniform", "autoscale over direct transfer"))
    return [r for r in found if r]


@dataclass(frozen=True)
class Recommendation:
    """Which weights the evidence favours at the target, and why."""
    choice: str  # "autoscale", "direct-transfer" or "uniform"
    weights: dict[str, float]
    why: str

    VERSUS = "uniform and over direct transfer at the target"  # what a supported AutoScale was judged against

    @property
    def label(self) -> str:
        """How to name the choice in a sentence ("... is the safer choice")."""
        return {"autoscale": "AutoScale", "direct-transfer": "direct transfer (the largest scale's DDO weights)",
                "uniform": "uniform"}[self.choice]

    def to_json(self) -> dict[str, Any]:
        return {"choice": self.choice, "weights": dict(self.weights), "why": self.why}


def recommend(autoscale: Verdict, autoscale_weights: Mapping[str, float], largest: Verdict | None,
              largest_weights: Mapping[str, float], largest_name: str, direct_gain: Any = None) -> Recommendation:
    """AutoScale when its verdict is supported; else direct transfer of the largest scale's DDO
    weights when that scale's verdict is supported and, where the target's loss is predicted
    (`direct_gain`: its gain over uniform there), that gain clears `Z_DECISION` of its standard
    errors; else uniform. Nothing cleverer: a choice the runs do not support is not made better
    by weighing it against another."""
    if autoscale.supported:
        return Recommendation("autoscale", dict(autoscale_weights),
                              "the AutoScale verdict is supported: every check passed")
    if largest is not None and largest.supported and direct_gain is not None and not direct_gain.clears:
        domains = list(largest_weights or autoscale_weights)
        return Recommendation("uniform", {d: 1 / len(domains) for d in domains},
                              f"the DDO optimum at the largest scale ({largest_name}) is supported there, but its "
                              f"predicted gain over uniform at the target is {direct_gain.describe('metric')}, "
                              "within the noise; AutoScale's verdict is unsupported")
    if largest is not None and largest.supported:
        return Recommendation("direct-transfer", dict(largest_weights),
                              f"the AutoScale verdict is unsupported, the DDO optimum at the largest scale "
                              f"({largest_name}) is supported: use it unchanged at the target")
    domains = list(largest_weights or autoscale_weights)
    why = ("neither the AutoScale extrapolation nor the DDO optimum at the largest scale "
           f"({largest_name}) is supported by its runs")
    return Recommendation("uniform", {d: 1 / len(domains) for d in domains}, why)
