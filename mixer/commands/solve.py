"""`mixer solve ddo|autoscale|regmix|mixing-laws|doremi`: run.json files in, weights.json out.

Each sub-command reads its inputs, calls one `solver` function or estimator, prints the weights
with their intervals as a table and writes `--out` plus PNG plots beside it
(`<out stem>.<plot>.png`). Library code is imported inside the commands to keep `mixer -h` fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import click

from mixer.errors import MixerError


def _plot_path(out: Path, name: str) -> Path:
    return out.with_name(f"{out.stem}.{name}.png")


def _finish(out: Path, weights: Mapping[str, float], method: str, budget: int | None, provenance: dict,
            intervals: Mapping[str, tuple[float, float]] | None, title: str,
            extra: Mapping[str, Sequence[str]] | None = None) -> None:
    """Normalise, save weights.json, print the table."""
    from rich.console import Console
    from rich.table import Table

    from mixer.weights import MixtureWeights, save_weights

    total = sum(weights.values())
    weights = {d: float(w) / total for d, w in weights.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(out, MixtureWeights(weights=weights, method=method, budget_tokens=budget, provenance=provenance))
    table = Table(title=title)
    table.add_column("domain")
    table.add_column("weight", justify="right")
    table.add_column("95% interval", justify="right")
    for name in (extra or {}):
        table.add_column(name, justify="right")
    for i, (d, w) in enumerate(weights.items()):
        lo, hi = (intervals or {}).get(d, (float("nan"), float("nan")))
        interval = "n/a" if lo != lo else f"[{lo:.4f}, {hi:.4f}]"
        table.add_row(d, f"{w:.4f}", interval, *[col[i] for col in (extra or {}).values()])
    console = Console(width=140)
    console.print(table)
    console.print(f"wrote {out}")


def _runs(paths: Sequence[str]):
    from solver.runs import read_runs

    return read_runs(paths)


@click.group("solve")
def command() -> None:
    """Turn measured losses (run.json files) into mixture weights (weights.json)."""


@command.command("ddo")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="weights.json to write")
@click.option("--form", type=click.Choice(["shifted", "plain"]), default="shifted", show_default=True,
              help="shifted: (n0 + x)^-b + c (paper eq. 2); plain: x^-b + c (Algorithm 1)")
@click.option("--units", type=click.Choice(["authors", "raw"]), default="authors", show_default=True,
              help="authors: x = tokens/(N/m), y = loss/base loss; raw: tokens and loss")
@click.option("--floor", type=float, default=None, help="minimum weight of every domain")
@click.option("--floor-uniform", type=float, default=None, help="minimum weight as a fraction of 1/m (authors: 0.2)")
@click.option("--cap", type=float, default=None, help="maximum weight of every domain")
@click.option("--bootstrap", "n_bootstrap", type=int, default=200, show_default=True, help="replicates for intervals")
@click.option("--noise", type=float, default=None, help="std of loss/base loss, when runs are not repeated")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plots/--no-plots", default=True, show_default=True)
def ddo_cmd(runs, out, form, units, floor, floor_uniform, cap, n_bootstrap, noise, seed, plots) -> None:
    """DDO: base + perturbed runs of one scale -> optimal weights at that scale."""
    from solver.ddo_model import DDO
    from solver.runs import group_ddo

    data = group_ddo(_runs(runs))
    m = len(data.domains)
    if floor is not None and floor_uniform is not None:
        raise MixerError("--floor and --floor-uniform: give one of them")
    if floor_uniform is not None:
        floor = floor_uniform / m
    try:
        est = DDO(form=form, units=units, floor=floor, cap=cap, n_bootstrap=n_bootstrap, noise=noise, seed=seed).fit(data)
    except ValueError as exc:
        raise MixerError(f"{out}: {exc}") from None
    prov = {"runs": [r.path for r in data.base] + [r.path for d in data.domains for r in data.perturbed[d]],
            "corpus_sha256": data.base[0].corpus_sha256, "factors": list(data.factors), "floor": floor, "cap": cap,
            **est.summary()}
    fits = est.fits_
    extra = {"n0": [f"{fits[d].n0:.3g}" for d in data.domains], "b": [f"{fits[d].b:.3g}" for d in data.domains],
             "c": [f"{fits[d].c:.3g}" for d in data.domains],
             "fit rmse": [f"{fits[d].rmse:.2g}" + (" (interp.)" if fits[d].interpolates else "") for d in data.domains]}
    _finish(out, est.weights_, "ddo", data.budget_tokens, prov, est.intervals_,
            f"DDO at {data.budget_tokens:,} tokens ({form}, {units} units)", extra)
    for w in est.warnings_:
        click.echo(f"warning: {w}", err=True)
    if est.bootstrap_.method == "none":
        click.echo(f"note: {est.bootstrap_.message}", err=True)
    if plots:
        from solver.plots import plot_fits, plot_predicted_vs_measured

        opt = dict(zip(data.domains, est.result_.x))
        plot_fits(est.points_, fits, _plot_path(out, "fits"), optimum=opt,
                  **({} if units == "authors" else {"xlabel": "tokens", "ylabel": "loss"}))
        plot_predicted_vs_measured(est.predicted_, est.measured_, _plot_path(out, "pred_vs_meas"))


def _read_optimum(path: Path) -> tuple[Path, int, dict[str, float], list]:
    from mixer.weights import load_weights

    if path.is_dir():
        found = sorted(path.rglob("weights.json"))
        if len(found) != 1:
            raise MixerError(f"{path}: expected one weights.json in this folder, found {len(found)}; pass the file")
        path = found[0]
    mw = load_weights(path)
    if not mw.budget_tokens:
        raise MixerError(f"{path}: no budget_tokens; AutoScale needs the scale each optimum was solved at")
    tokens = mw.provenance.get("tokens_per_domain") or {d: w * mw.budget_tokens for d, w in mw.weights.items()}
    return path, int(mw.budget_tokens), {d: float(tokens[d]) for d in mw.weights}, mw.provenance.get("bootstrap_weights") or []


@command.command("autoscale")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--target", required=True, help="target budget in tokens, e.g. 10B")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--plots/--no-plots", default=True, show_default=True)
def autoscale_cmd(inputs, target, out, plots) -> None:
    """AutoScale: DDO weights.json at >= 2 scales -> weights at --target."""
    import numpy as np

    from mixer.units import parse_count
    from solver.autoscale import fit_autoscale, predict, weights_curve

    n_target = parse_count(target, "--target")
    if len(inputs) < 2:
        raise MixerError("autoscale: give DDO weights.json files (or folders) at two or more scales")
    found = sorted((_read_optimum(Path(p)) for p in inputs), key=lambda t: t[1])
    domains = list(found[0][2])
    for path, budget, tokens, _ in found[1:]:
        if set(tokens) != set(domains):
            odd = sorted(set(tokens) ^ set(domains))[0]
            raise MixerError(f"{path}: domain {odd!r} is not in every input; solve all scales on the same domains")
    budgets = [b for _, b, _, _ in found]
    if len(set(budgets)) != len(budgets):
        raise MixerError(f"{found[0][0]}: two inputs share budget {budgets[0]}; AutoScale needs different scales")
    N = np.array([[t[d] for d in domains] for _, _, t, _ in found])
    try:
        fit = fit_autoscale(N)
        res = predict(fit, float(n_target))
    except ValueError as exc:
        raise MixerError(f"{found[0][0]}: {exc}") from None
    intervals, boots = {}, [s for *_, s in found]
    if all(len(s) for s in boots):   # pair the DDO bootstrap replicates of each scale
        n = min(len(s) for s in boots)
        preds = []
        for k in range(n):
            try:
                preds.append(predict(fit_autoscale([np.asarray(s[k]) * b for s, b in zip(boots, budgets)]),
                                     float(n_target)).weights)
            except ValueError:
                continue
        if len(preds) >= 10:
            lo, hi = np.quantile(np.array(preds), [0.025, 0.975], axis=0)
            intervals = {d: (float(lo[i]), float(hi[i])) for i, d in enumerate(domains)}
    weights = dict(zip(domains, map(float, res.weights)))
    prov = {"inputs": [str(p) for p, *_ in found], "budgets": budgets, "t_target": res.t,
            "t_inputs": fit.t.tolist(), "log_n1": fit.alpha.tolist(), "log_r": fit.beta.tolist(),
            "rms_log_residual": fit.rms_residual, "residuals": fit.residuals.tolist(),
            "tokens_per_domain": dict(zip(domains, map(float, res.x))), "intervals": {d: list(v) for d, v in intervals.items()}}
    extra = {f"w @ {b:.3g}": [f"{N[i, j] / N[i].sum():.4f}" for j in range(len(domains))] for i, b in enumerate(budgets)}
    _finish(out, weights, "autoscale", n_target, prov, intervals, f"AutoScale to {n_target:,} tokens (t = {res.t:.3g})", extra)
    if len(budgets) > 2:
        click.echo(f"log-linear fit over {len(budgets)} scales: rms residual of log N* = {fit.rms_residual:.3g}")
    if plots:
        from solver.plots import plot_weights_curve

        grid = np.geomspace(min(budgets) / 2, max(n_target, max(budgets)) * 2, 80)
        plot_weights_curve(grid, weights_curve(fit, grid), domains, _plot_path(out, "weights_vs_scale"),
                           marks=[*budgets, n_target])


def _bootstrap_rows(n_runs: int, n_boot: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n_runs, n_runs)


def _intervals(domains, samples) -> dict:
    import numpy as np

    if len(samples) < 10:
        return {}
    lo, hi = np.quantile(np.array(samples), [0.025, 0.975], axis=0)
    return {d: (float(lo[i]), float(hi[i])) for i, d in enumerate(domains)}


def _one_budget(runs) -> int | None:
    budgets = {r.budget_tokens for r in runs}
    return budgets.pop() if len(budgets) == 1 else None


@command.command("regmix")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", type=click.Choice(["quadratic", "linear"]), default="quadratic", show_default=True)
@click.option("--bootstrap", "n_bootstrap", type=int, default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plots/--no-plots", default=True, show_default=True)
def regmix_cmd(runs, out, model, n_bootstrap, seed, plots) -> None:
    """RegMix: many random-mixture runs -> regression -> best mixture."""
    import numpy as np

    from solver.baselines import regmix_weights
    from solver.runs import mixture_table

    rs = _runs(runs)
    domains, W, L = mixture_table(rs)
    y = L.mean(axis=1)
    try:
        res = regmix_weights(W, y, model=model, seed=seed)
    except ValueError as exc:
        raise MixerError(f"{rs[0].path}: {exc}") from None
    samples = []
    for idx in _bootstrap_rows(len(rs), n_bootstrap, seed + 1):
        try:
            samples.append(regmix_weights(W[idx], y[idx], model=model, n_search=20_000, seed=seed).x)
        except (ValueError, np.linalg.LinAlgError):
            continue
    intervals = _intervals(domains, samples)
    prov = {"runs": [r.path for r in rs], "model": model, "r2": res.r2, "predicted_loss": res.fun,
            "intervals": {d: list(v) for d, v in intervals.items()}}
    _finish(out, dict(zip(domains, res.x)), "regmix", _one_budget(rs), prov, intervals, f"RegMix ({res.message})")
    if plots:
        from solver.plots import plot_predicted_vs_measured

        plot_predicted_vs_measured(y + res.residuals, y, _plot_path(out, "pred_vs_meas"))


@command.command("mixing-laws")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bootstrap", "n_bootstrap", type=int, default=50, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plots/--no-plots", default=True, show_default=True)
def mixing_laws_cmd(runs, out, n_bootstrap, seed, plots) -> None:
    """Data Mixing Laws: per-domain L_i(r) = c_i + k_i exp(t_i . r) fitted, then minimised."""
    from solver.baselines import mixing_laws_weights
    from solver.runs import mixture_table

    rs = _runs(runs)
    domains, W, L = mixture_table(rs)
    try:
        res = mixing_laws_weights(W, L)
    except ValueError as exc:
        raise MixerError(f"{rs[0].path}: {exc}") from None
    samples = []
    for idx in _bootstrap_rows(len(rs), n_bootstrap, seed):
        try:
            samples.append(mixing_laws_weights(W[idx], L[idx], tol=1e-9).x)
        except ValueError:
            continue
    intervals = _intervals(domains, samples)
    prov: dict[str, Any] = {"runs": [r.path for r in rs], "c": res.c.tolist(), "k": res.k.tolist(), "t": res.t.tolist(),
                            "predicted_loss": res.fun, "intervals": {d: list(v) for d, v in intervals.items()}}
    _finish(out, dict(zip(domains, res.x)), "mixing-laws", _one_budget(rs), prov, intervals,
            f"Data Mixing Laws ({res.message})")
    if plots:
        from solver.plots import plot_predicted_vs_measured

        plot_predicted_vs_measured((L + res.residuals).ravel(), L.ravel(), _plot_path(out, "pred_vs_meas"))


@command.command("doremi")
@click.option("--proxy", "proxy_path", required=True, help="run.json of the proxy, with loss_history")
@click.option("--reference", "ref_path", required=True, help="run.json of the reference model")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--eta", type=float, default=1.0, show_default=True)
@click.option("--smoothing", type=float, default=1e-3, show_default=True)
def doremi_cmd(proxy_path, ref_path, out, eta, smoothing) -> None:
    """DoReMi: replay Group DRO over the proxy's logged per-domain losses."""
    import numpy as np

    from solver.baselines import doremi_weights
    from solver.runs import read_run

    proxy, ref = read_run(proxy_path), read_run(ref_path)
    domains = list(proxy.domains)
    if set(ref.domains) != set(domains):
        raise MixerError(f"{ref.path}: its domains differ from {proxy.path}; use a reference of the same corpus")
    if not proxy.loss_history:
        raise MixerError(f"{proxy.path}: no loss_history (per-step, per-domain losses); DoReMi needs the proxy's log")

    def history(run) -> np.ndarray:
        rows = [run.loss_history.get(d) for d in domains]
        if any(r is None for r in rows) or len({len(r) for r in rows}) != 1:
            raise MixerError(f"{run.path}: loss_history needs one equally long list per domain")
        return np.array([[np.nan if v is None else v for v in r] for r in rows], float).T  # null: no tokens

    P = history(proxy)
    R = history(ref) if ref.loss_history else np.array([ref.final_loss[d] for d in domains])
    if R.ndim == 2 and R.shape != P.shape:
        raise MixerError(f"{ref.path}: loss_history has {R.shape[0]} steps, the proxy {P.shape[0]}; log the same steps")
    R = np.broadcast_to(R, P.shape)
    P = np.where(np.isnan(P) | np.isnan(R), R, P)   # a domain not seen at a step: no excess, no update
    R = np.where(np.isnan(R), 0.0, R)
    P = np.where(np.isnan(P), 0.0, P)
    try:
        res = doremi_weights(P, R, eta=eta, smoothing=smoothing)
    except ValueError as exc:
        raise MixerError(f"{proxy.path}: {exc}") from None
    prov = {"proxy": proxy.path, "reference": ref.path, "eta": eta, "smoothing": smoothing, "steps": res.iterations,
            "final_weights": dict(zip(domains, map(float, res.trajectory[-1])))}
    _finish(out, dict(zip(domains, res.x)), "doremi", proxy.budget_tokens, prov, None,
            f"DoReMi over {res.iterations} steps (eta={eta}, smoothing={smoothing})")
