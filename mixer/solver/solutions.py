"""Measured runs -> weights.json, intervals and plots: the one path that `mixer solve` and
`mixer loop` share, so the same runs give the same file whichever command solved them.

Each `*_solution` function fits its method, writes `out` (weights normalised onto the simplex,
provenance with the fit, the intervals and how they were obtained) and the PNG plots beside it
(`<out stem>.<plot>.png`), and returns a `Solution` the caller prints or builds on. A fit that
cannot be made is one `MixerError` naming `out` (or the run at fault) and the fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mixer.core.errors import MixerError
from mixer.formats.weights import MixtureWeights, save_weights
from mixer.solver.ddo_model import Z_DECISION
from mixer.solver.runs import DDOData, Run, mixture_table
from mixer.solver.verdict import HeldOut, ScaleCheck, Verdict, autoscale_verdict, ddo_verdict, recommend


@dataclass(frozen=True)
class Solution:
    weights: dict[str, float]  # on the simplex, as written
    path: Path  # the weights.json written
    method: str
    budget_tokens: int | None
    intervals: dict[str, tuple[float, float]]  # {} where the method or the data allow none
    provenance: dict[str, Any]
    title: str = ""
    columns: dict[str, list[str]] = field(default_factory=dict)  # extra per-domain columns for a table
    notes: tuple[str, ...] = ()  # warnings and caveats for people (also in the provenance)
    plots: tuple[Path, ...] = ()
    estimator: Any = None  # the fitted model, where there is one (DDO)
    verdict: Verdict | None = None  # None: the method is not judged (baselines)
    recommended: str | None = None  # AutoScale: "autoscale", "direct-transfer" or "uniform" (`verdict.recommend`)
    recommended_weights: dict[str, float] | None = None  # the weights of that choice


@dataclass(frozen=True)
class ScaleOptimum:
    """One scale's DDO optimum, AutoScale's input."""
    source: str  # where it came from (a weights.json, a loop folder), for messages and provenance
    budget_tokens: int
    tokens: dict[str, float]  # optimal tokens per domain at this budget
    replicates: list = field(default_factory=list)  # DDO bootstrap replicate weights, columns in `tokens` order
    intervals: dict = field(default_factory=dict)  # {domain: (lo, hi)} of the DDO weights
    verdict: Verdict | None = None  # the DDO verdict at this scale (None: not judged, e.g. an old file)
    metric: str | None = None  # what the DDO fit (None: not recorded)
    floor: float | None = None  # DDO's weight floor at this scale (None: none); floored domains stay floored


def plot_path(out: Path, name: str) -> Path:
    return Path(out).with_name(f"{Path(out).stem}.{name}.png")


def _write(out: Path, weights: Mapping[str, float], method: str, budget: int | None, provenance: dict,
           intervals: Mapping[str, tuple[float, float]], verdict: Verdict | None = None) -> dict[str, float]:
    total = math.fsum(float(w) for w in weights.values())
    normalised = {d: float(w) / total for d, w in weights.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    iv = {d: [float(v[0]), float(v[1])] for d, v in intervals.items() if v[0] == v[0]}
    save_weights(out, MixtureWeights(weights=normalised, method=method, budget_tokens=budget, provenance=provenance,
                                     intervals=iv, verdict=None if verdict is None else verdict.label,
                                     reasons=[] if verdict is None else list(verdict.reasons)))
    return normalised


def ddo_solution(data: DDOData, out: Path, *, form: str, units: str, floor: float | None = None,
                 cap: float | None = None, n_bootstrap: int = 200, noise: float | None = None,
                 n_starts: int | None = None, seed: int = 0, provenance: Mapping[str, Any] | None = None,
                 plots: bool = True, hint: str = "", held_out: Sequence[Run] = (),
                 held_out_names: Sequence[str] = ()) -> Solution:
    """DDO at one scale: fit every domain's power law, solve, bootstrap, judge, write.
    `held_out`: runs of other mixtures the fit does not see; their measured loss is compared with
    the prediction (`mixer.solver.verdict`)."""
    from mixer.solver.ddo_model import DDO

    out = Path(out)
    try:
        est = DDO(form=form, units=units, floor=floor, cap=cap, n_bootstrap=n_bootstrap, noise=noise,
                  n_starts=n_starts, seed=seed).fit(data)
    except ValueError as exc:
        raise MixerError(f"{out}: DDO fit failed ({exc}){'; ' + hint if hint else ''}") from None
    check = None
    if held_out:
        names = tuple(held_out_names) or tuple(Path(r.path).parent.name for r in held_out)
        check = HeldOut(names=names, measured=est.measure_runs(held_out), predicted=est.predict_runs(held_out),
                        sigma=est.noise_.sigma)
    verdict = ddo_verdict(est, check)
    prov = {**(provenance or {}), "factors": list(data.factors), "floor": floor, "cap": cap, **est.summary(),
            "held_out": None if check is None else check.to_json()}
    intervals = dict(est.intervals_)
    weights = _write(out, est.weights_, "ddo", data.budget_tokens, prov, intervals, verdict)
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
    for name, g in est.gains_.items():
        what = "uniform" if name == "uniform" else "the base mixture"
        if g.sd != g.sd:
            out.append(f"predicted gain over {what}: {g.estimate:+.4g} of the base {est.metric_} (no interval)")
        else:
            out.append(f"predicted gain over {what}: {g.corrected:+.4g} of the base {est.metric_}, 95 % interval "
                       f"[{g.low:+.4g}, {g.high:+.4g}] ({g.corrected / g.sd if g.sd > 0 else float('inf'):.1f} standard "
                       f"errors; supported needs > {Z_DECISION:g})")
    return out


def autoscale_curve(fit, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted weights over `grid` (`fit`: a `FlooredFit`), leaving out budgets below the
    smallest one the fit reaches (a domain shrinking with scale puts a floor under the budgets
    the model can express)."""
    from mixer.solver.autoscale import predict_floored

    keep, rows = [], []
    for n in grid:
        try:
            rows.append(predict_floored(fit, float(n)).weights)
            keep.append(n)
        except ValueError:
            continue
    return np.array(keep), np.array(rows)


def _checked_optima(optima: Sequence[ScaleOptimum], target: int) -> tuple[list[ScaleOptimum], list[str], float | None]:
    """Sorted optima, their domains and their common floor; one MixerError per bad input."""
    optima = sorted(optima, key=lambda o: o.budget_tokens)
    if len(optima) < 2:
        raise MixerError("autoscale: give DDO optima at two or more scales")
    domains = list(optima[0].tokens)
    for o in optima[1:]:
        if set(o.tokens) != set(domains):
            odd = sorted(set(o.tokens) ^ set(domains))[0]
            raise MixerError(f"{o.source}: domain {odd!r} is not in every input; solve all scales on the same domains")
    budgets = [o.budget_tokens for o in optima]
    if len(set(budgets)) != len(budgets):
        raise MixerError(f"{optima[0].source}: two inputs share budget {budgets[0]}; AutoScale needs different scales")
    if target <= 0:
        raise MixerError(f"--target {target}: must be a positive number of tokens")
    floors = {o.floor or None for o in optima}
    if len(floors) > 1:
        odd = next(o for o in optima if (o.floor or None) != (optima[0].floor or None))
        raise MixerError(f"{odd.source}: DDO floor {odd.floor} differs from {optima[0].floor} at "
                         f"{optima[0].budget_tokens:,} tokens; solve every scale with the same floor")
    return optima, domains, floors.pop()


def _columns(o: ScaleOptimum, domains: list[str]) -> list:
    """`o.replicates` with columns in `domains` order (they come in `o.tokens` order)."""
    if not o.replicates:
        return []
    R = np.asarray(o.replicates, float)
    if R.ndim != 2 or R.shape[1] != len(o.tokens):
        raise MixerError(f"{o.source}: bootstrap replicates have shape {R.shape}, expected (n, {len(o.tokens)}); "
                         "solve this scale again")
    order = list(o.tokens)
    return R[:, [order.index(d) for d in domains]].tolist()


def _held_out_index(budgets: Sequence[int], validate_scale: int | None) -> int | None:
    if validate_scale is None:
        return None
    if len(budgets) < 3:
        raise MixerError(f"--validate-scale {validate_scale}: needs 3 or more scales (2 to fit, 1 to check), "
                         f"got {len(budgets)}; add a scale or leave the option out")
    if validate_scale not in budgets:
        raise MixerError(f"--validate-scale {validate_scale}: not one of the scales "
                         f"({', '.join(map(str, budgets))}); give one of them")
    return list(budgets).index(validate_scale)


def _scale_check(N: np.ndarray, optima: Sequence[ScaleOptimum], domains: list[str], h: int,
                 floor: float | None) -> ScaleCheck:
    """Fit on every scale but `h`, predict scale `h`, compare with its DDO optimum and interval."""
    from mixer.solver.autoscale import fit_floored, predict_floored

    budget = optima[h].budget_tokens
    measured = N[h] / N[h].sum()
    try:
        pred = predict_floored(fit_floored(np.delete(N, h, axis=0), floor), float(budget)).weights
        msg = ""
    except ValueError as exc:
        pred, msg = None, str(exc)
    iv = {d: tuple(v) for d, v in optima[h].intervals.items() if v[0] == v[0]}
    return ScaleCheck(budget=budget, domains=tuple(domains), predicted=pred, measured=measured, intervals=iv,
                      message=msg)


def _check_notes(check: ScaleCheck) -> tuple[str, ...]:
    if check.predicted is None:
        return (f"held-out scale {check.budget:,}: not predicted ({check.message})",)
    inside = check.inside
    head = (f"held-out scale {check.budget:,}: fitted on the other scales, predicted vs measured max |diff| "
            f"{check.max_abs_diff:.4f}")
    rows = tuple(f"  {d}: predicted {p:.4f}, measured {m:.4f}"
                 + ("" if d not in check.intervals else
                    f" [{check.intervals[d][0]:.4f}, {check.intervals[d][1]:.4f}] "
                    f"{'inside' if inside[d] else 'OUTSIDE'}")
                 for d, p, m in zip(check.domains, check.predicted, check.measured))
    return (head, *rows)


def _direct_transfer_note(intervals: Mapping[str, tuple[float, float]], direct: Mapping[str, float]) -> tuple[str, ...]:
    """The note when the extrapolation cannot be told from using the largest scale's weights as they are."""
    if intervals and all(not (lo - 1e-6 > direct[d] or direct[d] > hi + 1e-6) for d, (lo, hi) in intervals.items()):
        return ("note: the extrapolation is indistinguishable from direct transfer at this target (every domain's "
                "largest-scale DDO weight lies inside its AutoScale interval)",)
    return ()


def autoscale_solution(optima: Sequence[ScaleOptimum], target: int, out: Path, *,
                       provenance: Mapping[str, Any] | None = None, plots: bool = True,
                       validate_scale: int | None = None, seed: int = 0) -> Solution:
    """AutoScale: DDO optima at two or more scales -> the optimum at `target` (paper §3, Algorithm 2;
    any positive target, between the scales or beyond), with intervals from DDO bootstrap
    replicates drawn independently per scale (`seed`). Domains at the DDO floor at every scale
    stay at the floor. `validate_scale` (one of the budgets, 3+ scales): fit without it and
    check its prediction against its DDO interval. The result also says which weights the
    evidence favours (`verdict.recommend`): AutoScale's, the largest scale's, or uniform."""
    from mixer.solver.autoscale import fit_floored, predict_floored
    from mixer.solver.intervals import autoscale_replicates, quantile_intervals

    out = Path(out)
    optima, domains, floor = _checked_optima(optima, target)
    budgets = [o.budget_tokens for o in optima]
    h = _held_out_index(budgets, validate_scale)
    N = np.array([[o.tokens[d] for d in domains] for o in optima])
    try:
        ff = fit_floored(N, floor)
        res = predict_floored(ff, float(target))
    except ValueError as exc:
        raise MixerError(f"{out}: AutoScale failed ({exc})") from None
    reps = autoscale_replicates([_columns(o, domains) for o in optima], budgets, target, floor=floor, seed=seed)
    intervals = quantile_intervals(domains, reps)
    try:
        at_scales = np.array([predict_floored(ff, float(b)).weights for b in budgets])
    except ValueError:
        at_scales = None
    check = None if h is None else _scale_check(N, optima, domains, h, floor)
    verdict = autoscale_verdict({f"{o.budget_tokens:,}": o.verdict for o in optima}, domains, intervals, at_scales,
                                [o.intervals for o in optima], [f"{b:,}" for b in budgets], held_out=check)
    auto_w = dict(zip(domains, map(float, res.weights)))
    direct = {d: float(N[-1, j] / N[-1].sum()) for j, d in enumerate(domains)}
    rec = recommend(verdict, auto_w, optima[-1].verdict, direct, f"{budgets[-1]:,} tokens")
    prov = {**(provenance or {}), **_autoscale_provenance(ff, res, domains, budgets, floor, intervals),
            "validate_scale": None if check is None else check.to_json(),
            "direct_transfer": direct, "recommended": rec.to_json()}
    columns = {f"w @ {b:.3g}": [f"{N[i, j] / N[i].sum():.4f}" for j in range(len(domains))]
               for i, b in enumerate(budgets)}
    notes: tuple[str, ...] = ()
    if len(budgets) > 2 and ff.fit is not None:
        notes = (f"log-linear fit over {len(budgets)} scales: rms residual of log N* = {ff.fit.rms_residual:.3g}",)
    floored = [d for d, f in zip(domains, ff.free) if not f]
    if floored:
        notes += (f"held at the DDO floor {floor:.4g} at every scale, kept there at the target: {', '.join(floored)}",)
    notes += (() if check is None else _check_notes(check)) + _direct_transfer_note(intervals, direct)
    notes += (f"recommended: {rec.choice} ({rec.why})",)
    prov["notes"] = list(notes)
    weights = _write(out, auto_w, "autoscale", int(target), prov, intervals, verdict)
    drawn: tuple[Path, ...] = ()
    if plots:
        from mixer.solver.plots import plot_weights_curve

        grid, curve = autoscale_curve(ff, np.geomspace(min(budgets[0], target) / 2, max(budgets[-1], target) * 2, 80))
        drawn = (plot_weights_curve(grid, curve, domains, plot_path(out, "weights_vs_scale"), marks=budgets,
                                    measured=(budgets, N / N.sum(axis=1, keepdims=True)), target=target,
                                    title=f"AutoScale: predicted weights up to the target of {target:,} tokens"),)
    t = "n/a" if res.t != res.t else f"{res.t:.3g}"
    return Solution(weights=weights, path=out, method="autoscale", budget_tokens=int(target), intervals=intervals,
                    provenance=prov, title=f"AutoScale to {target:,} tokens (t = {t})", columns=columns,
                    notes=notes, plots=drawn, estimator=ff.fit, verdict=verdict, recommended=rec.choice,
                    recommended_weights=rec.weights)


def _autoscale_provenance(ff, res, domains: list[str], budgets: list[int], floor: float | None,
                          intervals: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """The fit in weights.json: per-domain law parameters (None for floored domains)."""
    def per_domain(values) -> list[float | None]:
        it = iter(map(float, values))
        return [next(it) if f else None for f in ff.free]

    fit = ff.fit
    return {"budgets": budgets, "t_target": None if res.t != res.t else res.t,
            "t_inputs": None if fit is None else fit.t.tolist(),
            "log_n1": per_domain(() if fit is None else fit.alpha),
            "log_r": per_domain(() if fit is None else fit.beta),
            "rms_log_residual": None if fit is None else fit.rms_residual,
            "residuals": None if fit is None else fit.residuals.tolist(),
            "floor": floor, "floored_domains": [d for d, f in zip(domains, ff.free) if not f],
            "tokens_per_domain": dict(zip(domains, map(float, res.x))),
            "interval_method": ("DDO bootstrap replicates drawn independently at every scale" if intervals
                                else "none: the DDO inputs carry too few bootstrap replicates")}


def _one_budget(runs: Sequence[Run]) -> int | None:
    budgets = {r.budget_tokens for r in runs}
    return budgets.pop() if len(budgets) == 1 else None


def regmix_solution(runs: Sequence[Run], out: Path, *, model: str = "quadratic", n_bootstrap: int = 100,
                    seed: int = 0, plots: bool = True, prior: Mapping[str, float] | None = None,
                    held_out: Sequence[Run] = (), top_k: int = 100, n_search: int = 100_000,
                    provenance: Mapping[str, Any] | None = None) -> Solution:
    """RegMix: regression of the mean held-out loss on the mixture (`model`: lightgbm, quadratic
    or linear), the mean of the `top_k` best of `n_search` candidates drawn around `prior` (the
    token distribution; None: a flat Dirichlet); `held_out` runs are predicted, not fitted, and
    their Spearman rank correlation with the measured loss is reported."""
    from mixer.solver.baselines.regmix import spearman, regmix_weights
    from mixer.solver.intervals import quantile_intervals, regmix_replicates

    out = Path(out)
    domains, W, L = mixture_table(list(runs))
    y = L.mean(axis=1)
    p = None if prior is None else np.array([float(prior.get(d, 0.0)) for d in domains])
    try:
        res = regmix_weights(W, y, model=model, seed=seed, prior=p, top_k=top_k, n_search=n_search)
    except ValueError as exc:
        raise MixerError(f"{runs[0].path}: {exc}") from None
    intervals = quantile_intervals(domains, regmix_replicates(W, y, model=model, n_boot=n_bootstrap, seed=seed,
                                                              prior=p, top_k=top_k))
    prov: dict[str, Any] = {**(provenance or {}), "runs": [r.path for r in runs], "model": model, "r2": res.r2,
                            "predicted_loss": res.fun, "top_k": top_k, "n_search": n_search,
                            "prior": None if p is None else dict(zip(domains, p.tolist())),
                            "interval_method": f"bootstrap over runs ({n_bootstrap} resamples)"}
    notes: list[str] = []
    if held_out:
        _, Wh, Lh = mixture_table(list(held_out))
        pred, meas = res.model.predict(Wh), Lh.mean(axis=1)
        rho = spearman(pred, meas)
        prov["held_out"] = {"runs": [r.path for r in held_out], "predicted": pred.tolist(), "measured": meas.tolist(),
                            "spearman": rho}
        notes.append(f"held-out rank correlation (Spearman) {rho:.3f} on {len(held_out)} mixtures" if rho is not None
                     else f"held-out rank correlation undefined on {len(held_out)} mixtures (need 3+ distinct)")
    prov["notes"] = notes
    weights = _write(out, dict(zip(domains, res.x)), "regmix", _one_budget(runs), prov, intervals)
    drawn: tuple[Path, ...] = ()
    if plots:
        from mixer.solver.plots import plot_predicted_vs_measured

        ho = (np.array(prov["held_out"]["predicted"]), np.array(prov["held_out"]["measured"])) if held_out else None
        drawn = (plot_predicted_vs_measured(y + res.residuals, y, plot_path(out, "pred_vs_meas"), held_out=ho),)
    return Solution(weights=weights, path=out, method="regmix", budget_tokens=_one_budget(runs), intervals=intervals,
                    provenance=prov, title=f"RegMix ({res.message})", plots=drawn, estimator=res, notes=tuple(notes))


def mixing_laws_solution(runs: Sequence[Run], out: Path, *, n_bootstrap: int = 50, seed: int = 0,
                         plots: bool = True) -> Solution:
    """Data Mixing Laws: per-domain L_i(r) = c_i + k_i exp(t_i . r) fitted, then minimised."""
    from mixer.solver.baselines import mixing_laws_weights
    from mixer.solver.intervals import mixing_laws_replicates, quantile_intervals

    out = Path(out)
    domains, W, L = mixture_table(list(runs))
    try:
        res = mixing_laws_weights(W, L)
    except ValueError as exc:
        raise MixerError(f"{runs[0].path}: {exc}") from None
    intervals = quantile_intervals(domains, mixing_laws_replicates(W, L, n_boot=n_bootstrap, seed=seed))
    prov: dict[str, Any] = {"runs": [r.path for r in runs], "fit_loss": "huber", "huber_delta": 1e-3,
                            "c": res.c.tolist(), "k": res.k.tolist(),
                            "t": res.t.tolist(), "predicted_loss": res.fun,
                            "interval_method": f"bootstrap over runs ({n_bootstrap} resamples)"}
    weights = _write(out, dict(zip(domains, res.x)), "mixing-laws", _one_budget(runs), prov, intervals)
    drawn: tuple[Path, ...] = ()
    if plots:
        from mixer.solver.plots import plot_predicted_vs_measured

        drawn = (plot_predicted_vs_measured((L + res.residuals).ravel(), L.ravel(), plot_path(out, "pred_vs_meas")),)
    return Solution(weights=weights, path=out, method="mixing-laws", budget_tokens=_one_budget(runs),
                    intervals=intervals, provenance=prov, title=f"Data Mixing Laws ({res.message})", plots=drawn,
                    estimator=res)


def doremi_solution(proxy: Run, reference: Run, out: Path, *, eta: float = 1.0, smoothing: float = 1e-3) -> Solution:
    """DoReMi replayed over the proxy's logged per-domain losses against the reference's."""
    from mixer.solver.baselines import doremi_weights
    from mixer.solver.baselines.doremi import aligned_histories

    out = Path(out)
    domains, P, R = aligned_histories(proxy, reference)
    try:
        res = doremi_weights(P, R, eta=eta, smoothing=smoothing)
    except ValueError as exc:
        raise MixerError(f"{proxy.path}: {exc}") from None
    prov = {"proxy": proxy.path, "reference": reference.path, "eta": eta, "smoothing": smoothing,
            "steps": res.iterations, "final_weights": dict(zip(domains, map(float, res.trajectory[-1]))),
            "interval_method": "none: one proxy run"}
    weights = _write(out, dict(zip(domains, res.x)), "doremi", proxy.budget_tokens, prov, {})
    return Solution(weights=weights, path=out, method="doremi", budget_tokens=proxy.budget_tokens, intervals={},
                    provenance=prov, title=f"DoReMi over {res.iterations} steps (eta={eta}, smoothing={smoothing})",
                    estimator=res)


def doremi_online_solution(domains: Sequence[str], trajectory: np.ndarray, out: Path, *, eta: float, smoothing: float,
                           budget_tokens: int | None, provenance: Mapping[str, Any] | None = None,
                           plots: bool = True) -> Solution:
    """DoReMi run online (`mixer loop doremi`): the average of the per-step weights, with the
    trajectory and the final step's weights in the provenance and a plot of the trajectory."""
    out = Path(out)
    traj = np.asarray(trajectory, float)
    if traj.ndim != 2 or traj.shape[0] == 0 or traj.shape[1] != len(domains):
        raise MixerError(f"{out}: the DoReMi trajectory has shape {traj.shape}, expected (steps >= 1, {len(domains)}); "
                         "re-run the proxy")
    avg = traj.mean(axis=0)
    prov = {**(provenance or {}), "eta": eta, "smoothing": smoothing, "steps": int(traj.shape[0]),
            "final_weights": dict(zip(domains, map(float, traj[-1]))), "trajectory": traj.tolist(),
            "interval_method": "none: one proxy run"}
    weights = _write(out, dict(zip(domains, avg)), "doremi", budget_tokens, prov, {})
    drawn: tuple[Path, ...] = ()
    if plots:
        from mixer.solver.plots import plot_weight_trajectory

        drawn = (plot_weight_trajectory(traj, list(domains), plot_path(out, "trajectory"), average=avg / avg.sum()),)
    return Solution(weights=weights, path=out, method="doremi", budget_tokens=budget_tokens, intervals={},
                    provenance=prov, title=f"DoReMi online over {traj.shape[0]} steps (eta={eta}, smoothing={smoothing})",
                    plots=drawn)


def nested_mixing_laws_solution(paths: Sequence[str | Path], out: Path, *, target_steps: float,
                                target_size: float | None = None, plots: bool = True) -> Solution:
    """Data Mixing Laws with the nested laws: each run's loss curve read at `target_steps` (step
    law), across model sizes at `target_size` (size law), then the mixture law on those."""
    from mixer.solver.baselines import mixing_laws_weights
    from mixer.solver.nested_runs import nested_table

    out = Path(out)
    domains, R, L, sizes = nested_table(paths, target_steps, target_size)
    try:
        res = mixing_laws_weights(R, L)
    except ValueError as exc:
        raise MixerError(f"{out}: {exc}") from None
    prov: dict[str, Any] = {"runs": [str(p) for p in paths], "fit_loss": "huber", "huber_delta": 1e-3,
                            "target_steps": target_steps, "target_size": target_size, "sizes": sizes,
                            "predicted_losses": L.tolist(), "mixtures": R.tolist(), "c": res.c.tolist(),
                            "k": res.k.tolist(), "t": res.t.tolist(), "predicted_loss": res.fun,
                            "interval_method": "none"}
    weights = _write(out, dict(zip(domains, res.x)), "mixing-laws", None, prov, {})
    drawn: tuple[Path, ...] = ()
    if plots:
        from mixer.solver.plots import plot_predicted_vs_measured

        drawn = (plot_predicted_vs_measured((L + res.residuals).ravel(), L.ravel(), plot_path(out, "pred_vs_meas")),)
    return Solution(weights=weights, path=out, method="mixing-laws", budget_tokens=None, intervals={},
                    provenance=prov, title=f"Data Mixing Laws, nested ({len(sizes)} sizes -> {target_size}, "
                    f"steps -> {target_steps:g}; {res.message})", plots=drawn, estimator=res)
