"""AutoScale: DDO optima at two or more scales -> the optimum at the target, with its intervals,
held-out scale check, verdict and recommended choice."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mixer.core.errors import MixerError
from mixer.solver.verdict import ScaleCheck, autoscale_verdict, recommend

from mixer.solver.solutions.written import ScaleOptimum, Solution, plot_path, write_solution
from mixer.solver.autoscale import fit_floored, predict_floored
from mixer.solver.intervals import autoscale_chain, quantile_intervals, union_intervals
from mixer.solver.ddo_model import TARGET_REPLICATE_STARTS, Gain
from mixer.solver.target_gain import (CurvesOptimum, Mixture, ScaleCurves, TargetGains, curves_optimum,
                                      target_gain)
from mixer.solver.plots import plot_weights_curve


def autoscale_curve(fit, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted weights over `grid` (`fit`: a `FlooredFit`), leaving out budgets below the
    smallest one the fit reaches (a domain shrinking with scale puts a floor under the budgets
    the model can express)."""

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
    columns_ = [_columns(o, domains) for o in optima]
    reps, rows = autoscale_chain(columns_, budgets, target, floor=floor, seed=seed)
    chain_iv = quantile_intervals(domains, reps)
    curves = ScaleCurves.from_json(optima[-1].curves, domains)  # None: an older file, solved before them
    at_target = curves_optimum(curves, float(target), floor)
    curves_iv = {} if at_target is None else quantile_intervals(domains, list(at_target.replicates))
    intervals = union_intervals(chain_iv, curves_iv)
    try:
        at_scales = np.array([predict_floored(ff, float(b)).weights for b in budgets])
    except ValueError:
        at_scales = None
    check = None if h is None else _scale_check(N, optima, domains, h, floor)
    auto_w = dict(zip(domains, map(float, res.weights)))
    direct = {d: float(N[-1, j] / N[-1].sum()) for j, d in enumerate(domains)}
    gains = TargetGains(optima[-1].metric or "metric",
                        target_gains(curves, domains, float(target), res.weights, N[-1] / N[-1].sum(), reps,
                                     rows, columns_[-1]))
    verdict = autoscale_verdict({f"{o.budget_tokens:,}": o.verdict for o in optima}, domains, intervals, at_scales,
                                [o.intervals for o in optima], [f"{b:,}" for b in budgets], held_out=check,
                                gains=gains)
    rec = recommend(verdict, auto_w, optima[-1].verdict, direct, f"{budgets[-1]:,} tokens",
                    gains.get(DT_OVER_UNIFORM))
    prov = {**(provenance or {}), **_autoscale_provenance(ff, res, domains, budgets, floor, chain_iv, curves_iv),
            "curves_at_target": _curves_at_target_json(at_target, domains, curves_iv),
            "validate_scale": None if check is None else check.to_json(),
            "direct_transfer": direct, "recommended": rec.to_json(),
            "target_gain": {name: g.to_json() for name, g in gains.items()}}
    columns = {f"w @ {b:.3g}": [f"{N[i, j] / N[i].sum():.4f}" for j in range(len(domains))]
               for i, b in enumerate(budgets)}
    notes: tuple[str, ...] = ()
    if len(budgets) > 2 and ff.fit is not None:
        notes = (f"log-linear fit over {len(budgets)} scales: rms residual of log N* = {ff.fit.rms_residual:.3g}",)
    floored = [d for d, f in zip(domains, ff.free) if not f]
    if floored:
        notes += (f"held at the DDO floor {floor:.4g} at every scale, kept there at the target: {', '.join(floored)}",)
    notes += _curves_note(at_target, domains, curves_iv, f"{budgets[-1]:,}")
    notes += (() if check is None else _check_notes(check)) + _direct_transfer_note(intervals, direct)
    notes += target_gain_lines(gains, target, f"{budgets[-1]:,}", optima[-1].metric or "metric",
                               int((optima[-1].curves or {}).get("replicate_starts", 0)))
    notes += (f"recommended: {rec.choice} ({rec.why})",)
    prov["notes"] = list(notes)
    weights = write_solution(out, auto_w, "autoscale", int(target), prov, intervals, verdict)
    drawn: tuple[Path, ...] = ()
    if plots:

        grid, curve = autoscale_curve(ff, np.geomspace(min(budgets[0], target) / 2, max(budgets[-1], target) * 2, 80))
        drawn = (plot_weights_curve(grid, curve, domains, plot_path(out, "weights_vs_scale"), marks=budgets,
                                    measured=(budgets, N / N.sum(axis=1, keepdims=True)), target=target,
                                    title=f"AutoScale: predicted weights up to the target of {target:,} tokens"),)
    t = "n/a" if res.t != res.t else f"{res.t:.3g}"
    return Solution(weights=weights, path=out, method="autoscale", budget_tokens=int(target), intervals=intervals,
                    provenance=prov, title=f"AutoScale to {target:,} tokens (t = {t})", columns=columns,
                    notes=notes, plots=drawn, estimator=ff.fit, verdict=verdict, recommended=rec.choice,
                    recommended_weights=rec.weights)


AUTO_OVER_UNIFORM, AUTO_OVER_DT, DT_OVER_UNIFORM = ("autoscale over uniform", "autoscale over direct transfer",
                                                   "direct transfer over uniform")


def target_gains(curves: ScaleCurves | None, domains: list[str], target: float, auto_w: np.ndarray,
                 direct_w: np.ndarray, reps: list, rows: np.ndarray, largest_reps: list) -> dict[str, Gain]:
    """The three comparisons at the target (`mixer.solver.target_gain`), from the largest scale's
    curves (columns in `domains` order): {} when its weights.json carries none (solved before
    they were written)."""
    if curves is None:
        return {}
    m = len(domains)
    paired = bool(len(reps)) and curves.replicates.shape[0] == len(largest_reps) and rows.size > 0
    at_l = rows[:, -1] if paired else np.zeros(0, int)
    uniform = Mixture("uniform", np.full(m, 1.0 / m))
    direct = Mixture("direct transfer", np.asarray(direct_w, float),
                     np.asarray(largest_reps, float)[at_l] if paired else None)
    auto = Mixture("AutoScale", np.asarray(auto_w, float), np.asarray(reps, float) if paired else None)
    return {AUTO_OVER_UNIFORM: target_gain(curves, target, auto, uniform, at_l),
            AUTO_OVER_DT: target_gain(curves, target, auto, direct, at_l),
            DT_OVER_UNIFORM: target_gain(curves, target, direct, uniform, at_l)}


def target_gain_lines(gains: TargetGains, target: int, largest: str, metric: str,
                      starts: int) -> tuple[str, ...]:
    """What people read: each comparison at the target with its interval."""
    if not gains:
        return ("no loss model at the target: the largest scale's weights.json has no fitted curves (solved by "
                "an older version); solve it again to get the predicted gains",)
    head = ()
    if starts < TARGET_REPLICATE_STARTS:
        head = (f"note: the {largest}-token scale's bootstrap refits tried {starts} grid starts; the gains' intervals "
                "at the target are then too narrow (about half the spread in simulation): solve it with "
                "`mixer solve ddo --for-autoscale`",)
    head += (f"predicted at the target ({target:,} tokens; the {largest}-token scale's curves, in units of its base "
            f"{metric}; > 0: the first is better):",)
    return head + tuple(f"  {name}: {g.describe(metric)}" for name, g in gains.items())


def _curves_at_target_json(at_target: CurvesOptimum | None, domains: list[str],
                           intervals: Mapping[str, tuple[float, float]]) -> dict[str, Any] | None:
    """The second model of the target optimum in weights.json (None without curves)."""
    if at_target is None:
        return None
    return {"weights": dict(zip(domains, map(float, at_target.weights))),
            "intervals": {d: list(v) for d, v in intervals.items()}, "replicates": int(len(at_target.replicates))}


def _curves_note(at_target: CurvesOptimum | None, domains: list[str], intervals: Mapping[str, tuple[float, float]],
                 largest: str) -> tuple[str, ...]:
    if at_target is None:
        return ()
    cells = ", ".join(f"{d} {w:.4f}" + (f" [{intervals[d][0]:.4f}, {intervals[d][1]:.4f}]" if d in intervals else "")
                      for d, w in zip(domains, at_target.weights))
    return (f"the {largest}-token scale's curves solved at the target (the second model in the intervals): {cells}",)


def _autoscale_provenance(ff, res, domains: list[str], budgets: list[int], floor: float | None,
                          chain_iv: Mapping[str, tuple[float, float]],
                          curves_iv: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
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
            "chain_intervals": {d: list(v) for d, v in chain_iv.items()},
            "interval_method": _interval_method(chain_iv, curves_iv)}


def _interval_method(chain_iv: Mapping, curves_iv: Mapping) -> str:
    if not chain_iv:
        return "none: the DDO inputs carry too few bootstrap replicates"
    chain = "DDO bootstrap replicates drawn independently at every scale, through the log-linear law"
    if not curves_iv:
        return chain + " (the largest scale carries no curve replicates: one model only)"
    return ("union of two models' 95 % intervals: " + chain + "; and the largest scale's curves solved at "
            "the target, one solution per bootstrap replicate (bench.calibration: either alone covered the "
            "target optimum far too rarely)")
