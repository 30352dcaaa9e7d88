"""DDO at one scale: fit, solve, bootstrap, judge, write (and the gain lines people read)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mixer.core.errors import MixerError
from mixer.solver.ddo_model import DDO, Z_DECISION
from mixer.solver.runs import DDOData, Run
from mixer.solver.verdict import HeldOut, ddo_verdict


from mixer.solver.solutions.written import Solution, plot_path, write_solution


def ddo_solution(data: DDOData, out: Path, *, estimator: DDO, provenance: Mapping[str, Any] | None = None,
                 plots: bool = True, hint: str = "", held_out: Mapping[str, Run] | None = None) -> Solution:
    """DDO at one scale: fit every domain's power law with `estimator` (an unfitted `DDO`, which
    holds the fit's settings), solve, bootstrap, judge, write. `held_out`: runs of other mixtures
    the fit does not see, by name; their measured loss is compared with the prediction
    (`mixer.solver.verdict`)."""
    out = Path(out)
    form, units, floor, cap = estimator.form, estimator.units, estimator.floor, estimator.cap
    try:
        est = estimator.fit(data)
    except ValueError as exc:
        raise MixerError(f"{out}: DDO fit failed ({exc}){'; ' + hint if hint else ''}") from None
    check = None
    if held_out:
        runs = list(held_out.values())
        check = HeldOut(names=tuple(held_out), measured=est.measure_runs(runs), predicted=est.predict_runs(runs),
                        sigma=est.noise_.sigma)
    verdict = ddo_verdict(est, check)
    prov = {**(provenance or {}), "factors": list(data.factors), "floor": floor, "cap": cap, **est.summary(),
            "held_out": None if check is None else check.to_json()}
    intervals = dict(est.intervals_)
    weights = write_solution(out, est.weights_, "ddo", data.budget_tokens, prov, intervals, verdict)
    fits = est.fits_
    columns = {"n0": [f"{fits[d].n0:.3g}" for d in data.domains], "b": [f"{fits[d].b:.3g}" for d in data.domains],
               "c": [f"{fits[d].c:.3g}" for d in data.domains],
               "fit rmse": [f"{fits[d].rmse:.2g}" + (" (interp.)" if fits[d].interpolates else "")
                            for d in data.domains],
               "effect / noise": [("n/a" if est.effects_[d].z is None
                                   else f"{est.effects_[d].z:+.1f} ({est.effects_[d].direction})")
                                  for d in data.domains]}
    notes = tuple(gain_lines(est)) + tuple(f"warning: {w}" for w in est.warnings_)
    if est.bootstrap_.method == "none":
        notes += (f"note: {est.bootstrap_.message}",)
    drawn: tuple[Path, ...] = ()
    if plots:
        from mixer.solver.plots import plot_fits, plot_predicted_vs_measured

        name = "perplexity" if data.metric == "perplexity" else "loss (nats/token)"
        m = len(data.domains)
        kw = ({"ylabel": f"held-out {name} relative to the base mixture", "tokens_per_unit": data.budget_tokens / m}
              if units == "authors" else {"ylabel": f"mean held-out {name}", "tokens_per_unit": 1.0})
        scale = f"{data.budget_tokens:,} tokens per proxy run"
        drawn = (plot_fits(est.points_, fits, plot_path(out, "fits"), optimum=dict(zip(data.domains, est.result_.x)),
                           title=f"DDO power-law fits, {scale} ({m} domains)", weights=weights, **kw),
                 plot_predicted_vs_measured(est.predicted_, est.measured_, plot_path(out, "pred_vs_meas"),
                                            held_out=None if check is None else (check.predicted, check.measured),
                                            axis=kw["ylabel"], title=f"DDO fit at {scale}"))
    return Solution(weights=weights, path=out, method="ddo", budget_tokens=data.budget_tokens, intervals=intervals,
                    provenance=prov, title=f"DDO at {data.budget_tokens:,} tokens ({form}, {units} units)",
                    columns=columns, notes=notes, plots=drawn, estimator=est, verdict=verdict)


def gain_lines(est) -> list[str]:
    """The decision in numbers: the predicted gain of the returned weights over each reference."""
    out = []
    for g in est.gains_.values():
        line = f"predicted gain over {g.against}: {g.describe(est.metric_)}"
        if g.sd == g.sd:
            line += f" ({g.corrected / g.sd if g.sd > 0 else float('inf'):.1f} standard errors; supported needs > {Z_DECISION:g})"
        out.append(line)
    return out


