"""Baselines' measured runs -> weights.json, intervals and plots (RegMix, Data Mixing Laws and
their nested form, DoReMi offline and online): the same writer and `Solution` as DDO and AutoScale
(`mixer.solver.solutions`), so `mixer solve` and `mixer loop` give the same file from the same runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mixer.core.errors import MixerError
from mixer.solver.runs import Run, mixture_table
from mixer.solver.solutions.written import Solution, plot_path, write_solution
from mixer.formats.corpus_handle import as_corpus
from mixer.solver.baselines import doremi_weights, mixing_laws_weights
from mixer.solver.baselines.doremi import aligned_histories
from mixer.solver.baselines.mixing_laws import HUBER_DELTA
from mixer.solver.baselines.nested_laws import SIZE_DELTA, STEP_DELTA
from mixer.solver.baselines.regmix import RegMixSettings, regmix_weights, spearman, token_prior, usage_bound
from mixer.solver.intervals import mixing_laws_replicates, quantile_intervals, regmix_replicates
from mixer.solver.nested_runs import nested_table
from mixer.solver.plots import plot_predicted_vs_measured, plot_weight_trajectory


def _one_budget(runs: Sequence[Run]) -> int | None:
    budgets = {r.budget_tokens for r in runs}
    return budgets.pop() if len(budgets) == 1 else None


def regmix_solution(runs: Sequence[Run], out: Path, *, settings: RegMixSettings = RegMixSettings(),
                    space: tuple[Mapping[str, float] | None, Mapping[str, float] | None] = (None, None),
                    plots: bool = True, held_out: Sequence[Run] = (), eval_domains: Sequence[str] | None = None,
                    provenance: Mapping[str, Any] | None = None) -> Solution:
    """RegMix: regression of the target loss on the mixture (`settings.model`: lightgbm, the
    authors', or quadratic, linear), the mean of the `top_k` best of `n_search` candidates drawn
    from `space` = (prior, upper): around `prior` (the token distribution; None: a flat
    Dirichlet) within `upper` (each domain's usage bound; None: none); `held_out` runs are
    predicted, not fitted, and their Spearman rank correlation with the measured loss is
    reported. The target is the mean held-out loss over `eval_domains` (None: every domain; the
    authors regress one domain's, their Pile-CC)."""
    prior, upper = space
    model, n_bootstrap, top_k, n_search = settings.model, settings.n_bootstrap, settings.top_k, settings.n_search

    out = Path(out)
    domains, W, L = mixture_table(list(runs))
    target = _target_columns(domains, eval_domains, runs[0].path)
    y = L[:, target].mean(axis=1)
    p = None if prior is None else np.array([float(prior.get(d, 0.0)) for d in domains])
    u = None if upper is None else np.array([float(upper.get(d, 1.0)) for d in domains])
    try:
        res = regmix_weights(W, y, settings, prior=p, upper=u)
    except ValueError as exc:
        raise MixerError(f"{runs[0].path}: {exc}") from None
    intervals = quantile_intervals(domains, regmix_replicates(W, y, settings, prior=p, upper=u))
    prov: dict[str, Any] = {**(provenance or {}), "runs": [r.path for r in runs], "model": model, "r2": res.r2,
                            "predicted_loss": res.fun, "top_k": top_k, "n_search": n_search,
                            "target": "mean held-out loss over "
                                      + (", ".join(domains[i] for i in target) if eval_domains else "every domain"),
                            "eval_domains": None if eval_domains is None else [domains[i] for i in target],
                            "prior": None if p is None else dict(zip(domains, p.tolist())),
                            "usage_bound": None if u is None else dict(zip(domains, u.tolist())),
                            "interval_method": f"bootstrap over runs ({n_bootstrap} resamples)"}
    notes: list[str] = []
    if held_out:
        _, Wh, Lh = mixture_table(list(held_out))
        pred, meas = res.model.predict(Wh), Lh[:, target].mean(axis=1)
        rho = spearman(pred, meas)
        prov["held_out"] = {"runs": [r.path for r in held_out], "predicted": pred.tolist(), "measured": meas.tolist(),
                            "spearman": rho}
        notes.append(f"held-out rank correlation (Spearman) {rho:.3f} on {len(held_out)} mixtures" if rho is not None
                     else f"held-out rank correlation undefined on {len(held_out)} mixtures (need 3+ distinct)")
    prov["notes"] = notes
    weights = write_solution(out, dict(zip(domains, res.x)), "regmix", _one_budget(runs), prov, intervals)
    drawn: tuple[Path, ...] = ()
    if plots:

        ho = (np.array(prov["held_out"]["predicted"]), np.array(prov["held_out"]["measured"])) if held_out else None
        drawn = (plot_predicted_vs_measured(y + res.residuals, y, plot_path(out, "pred_vs_meas"), held_out=ho),)
    return Solution(weights=weights, path=out, method="regmix", budget_tokens=_one_budget(runs), intervals=intervals,
                    provenance=prov, title=f"RegMix ({res.message})", plots=drawn, estimator=res, notes=tuple(notes))


def regmix_corpus_bounds(corpus: str | Path, *, temperature: float = 0.5, max_usage: float = 15.0,
                         usage_tokens: float | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """`(prior, upper)` from a prepared corpus's training tokens: the candidates' Dirichlet centre
    (token shares ^ temperature) and each domain's usage bound (`regmix.usage_bound`)."""

    tokens = as_corpus(corpus).manifest.tokens("train")
    counts = [tokens[d] for d in tokens]
    try:
        p, u = token_prior(counts, temperature), usage_bound(counts, max_usage=max_usage, train_tokens=usage_tokens)
    except ValueError as exc:
        raise MixerError(f"{corpus}: {exc}") from None
    return dict(zip(tokens, map(float, p))), dict(zip(tokens, map(float, u)))


def _target_columns(domains: Sequence[str], eval_domains: Sequence[str] | None, path: str) -> list[int]:
    """Indices of the evaluated domains (all when None); an unknown name is one line naming it."""
    if eval_domains is None:
        return list(range(len(domains)))
    names = list(dict.fromkeys(eval_domains))
    unknown = [d for d in names if d not in domains]
    if unknown or not names:
        raise MixerError(f"--eval-domains: {unknown[0] if unknown else '(none)'!r} is not a domain of {path} "
                         f"(its domains: {', '.join(domains)}); name domains the runs report")
    return [list(domains).index(d) for d in names]


def mixing_laws_solution(runs: Sequence[Run], out: Path, *, n_bootstrap: int = 50, seed: int = 0,
                         plots: bool = True) -> Solution:
    """Data Mixing Laws: per-domain L_i(r) = c_i + k_i exp(t_i . r) fitted, then minimised."""

    out = Path(out)
    domains, W, L = mixture_table(list(runs))
    try:
        res = mixing_laws_weights(W, L)
    except ValueError as exc:
        raise MixerError(f"{runs[0].path}: {exc}") from None
    intervals = quantile_intervals(domains, mixing_laws_replicates(W, L, n_boot=n_bootstrap, seed=seed))
    prov: dict[str, Any] = {"runs": [r.path for r in runs], "fit_loss": "huber", "huber_delta": HUBER_DELTA,
                            "c": res.c.tolist(), "k": res.k.tolist(),
                            "t": res.t.tolist(), "predicted_loss": res.fun,
                            "interval_method": f"bootstrap over runs ({n_bootstrap} resamples)"}
    weights = write_solution(out, dict(zip(domains, res.x)), "mixing-laws", _one_budget(runs), prov, intervals)
    drawn: tuple[Path, ...] = ()
    if plots:

        drawn = (plot_predicted_vs_measured((L + res.residuals).ravel(), L.ravel(), plot_path(out, "pred_vs_meas")),)
    return Solution(weights=weights, path=out, method="mixing-laws", budget_tokens=_one_budget(runs),
                    intervals=intervals, provenance=prov, title=f"Data Mixing Laws ({res.message})", plots=drawn,
                    estimator=res)


def doremi_solution(proxy: Run, reference: Run, out: Path, *, eta: float = 1.0, smoothing: float = 1e-3) -> Solution:
    """DoReMi replayed over the proxy's logged per-domain losses against the reference's."""

    out = Path(out)
    domains, P, R = aligned_histories(proxy, reference)
    try:
        res = doremi_weights(P, R, eta=eta, smoothing=smoothing)
    except ValueError as exc:
        raise MixerError(f"{proxy.path}: {exc}") from None
    prov = {"proxy": proxy.path, "reference": reference.path, "eta": eta, "smoothing": smoothing,
            "steps": res.iterations, "final_weights": dict(zip(domains, map(float, res.trajectory[-1]))),
            "interval_method": "none: one proxy run"}
    weights = write_solution(out, dict(zip(domains, res.x)), "doremi", proxy.budget_tokens, prov, {})
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
    weights = write_solution(out, dict(zip(domains, avg)), "doremi", budget_tokens, prov, {})
    drawn: tuple[Path, ...] = ()
    if plots:

        drawn = (plot_weight_trajectory(traj, list(domains), plot_path(out, "trajectory"), average=avg / avg.sum()),)
    return Solution(weights=weights, path=out, method="doremi", budget_tokens=budget_tokens, intervals={},
                    provenance=prov, title=f"DoReMi online over {traj.shape[0]} steps (eta={eta}, smoothing={smoothing})",
                    plots=drawn)


def nested_mixing_laws_solution(paths: Sequence[str | Path], out: Path, *, target_steps: float,
                                target_size: float | None = None, plots: bool = True) -> Solution:
    """Data Mixing Laws with the nested laws: each run's loss curve read at `target_steps` (step
    law), across model sizes at `target_size` (size law), then the mixture law on those."""

    out = Path(out)
    domains, R, L, sizes = nested_table(paths, target_steps, target_size)
    try:
        res = mixing_laws_weights(R, L)
    except ValueError as exc:
        raise MixerError(f"{out}: {exc}") from None
    prov: dict[str, Any] = {"runs": [str(p) for p in paths], "fit_loss": "huber", "huber_delta": HUBER_DELTA,
                            "step_law_delta": STEP_DELTA, "size_law_delta": SIZE_DELTA,
                            "target_steps": target_steps, "target_size": target_size, "sizes": sizes,
                            "predicted_losses": L.tolist(), "mixtures": R.tolist(), "c": res.c.tolist(),
                            "k": res.k.tolist(), "t": res.t.tolist(), "predicted_loss": res.fun,
                            "interval_method": "none"}
    weights = write_solution(out, dict(zip(domains, res.x)), "mixing-laws", None, prov, {})
    drawn: tuple[Path, ...] = ()
    if plots:

        drawn = (plot_predicted_vs_measured((L + res.residuals).ravel(), L.ravel(), plot_path(out, "pred_vs_meas")),)
    return Solution(weights=weights, path=out, method="mixing-laws", budget_tokens=None, intervals={},
                    provenance=prov, title=f"Data Mixing Laws, nested ({len(sizes)} sizes -> {target_size}, "
                    f"steps -> {target_steps:g}; {res.message})", plots=drawn, estimator=res)
