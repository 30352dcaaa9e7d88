"""`mixer solve ddo|autoscale|regmix|mixing-laws|doremi`: run.json files in, weights.json out.

Each sub-command parses its options and calls one `mixer.solver.solutions` function (the same one
`mixer loop` calls), then prints the weights with their intervals as a table. Library code is
imported inside the commands to keep `mixer -h` fast.
"""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._options import (
    LocalPath,
    plots_option,
    regressor_option,
    usage_options,
)
from mixer.core.errors import MixerError
from mixer.loop.defaults import DEFAULTS


def _show(solution) -> None:
    """The weights, their 95 % intervals and any extra columns as a table; then notes and plots."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=solution.title)
    table.add_column("domain")
    table.add_column("weight", justify="right")
    table.add_column("95% interval", justify="right")
    for name in solution.columns:
        table.add_column(name, justify="right")
    for i, (d, w) in enumerate(solution.weights.items()):
        lo, hi = solution.intervals.get(d, (float("nan"), float("nan")))
        interval = "n/a" if lo != lo else f"[{lo:.4f}, {hi:.4f}]"
        table.add_row(d, f"{w:.4f}", interval, *[col[i] for col in solution.columns.values()])
    console = Console(width=140)
    console.print(table)
    console.print(f"wrote {solution.path}", soft_wrap=True)
    for note in solution.notes:
        click.echo(note, err=True)
    if solution.verdict is not None:
        from mixer.cli.commands.loop import print_verdict

        print_verdict(console, solution.verdict, **_fallback(solution))


def _fallback(solution) -> dict:
    """AutoScale names the choice it recommends instead; the others keep the default."""
    if solution.recommended is None:
        return {}
    from mixer.solver.verdict import Recommendation

    return {"fallback": Recommendation(solution.recommended, solution.recommended_weights or {}, "").label,
            "versus": Recommendation.VERSUS}


def _runs(paths):
    from mixer.solver.runs import read_runs

    return read_runs(paths)


@click.group("solve")
def command() -> None:
    """Turn measured losses (run.json files) into mixture weights (weights.json)."""


@command.command("ddo")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", required=True, type=LocalPath(dir_okay=False, path_type=Path), help="weights.json to write")
@click.option("--form", type=click.Choice(["shifted", "plain"]), default="shifted", show_default=True,
              help="shifted: (n0 + x)^-b + c (paper eq. 2); plain: x^-b + c (Algorithm 1)")
@click.option("--units", type=click.Choice(["authors", "raw"]), default="authors", show_default=True,
              help="authors: x = tokens/(N/m), y = loss/base loss; raw: tokens and loss")
@click.option("--floor", type=float, default=None, help="minimum weight of every domain (overrides --floor-uniform)")
@click.option("--floor-uniform", type=float, default=DEFAULTS.floor_uniform, show_default=True,
              help="minimum weight as a fraction of 1/m (the authors' 0.2; 0: none)")
@click.option("--metric", type=click.Choice(["perplexity", "loss"]), default=DEFAULTS.metric, show_default=True,
              help="what the power laws fit: mean held-out perplexity (the paper's) or cross-entropy")
@click.option("--cap", type=float, default=None, help="maximum weight of every domain")
@click.option("--bootstrap", "n_bootstrap", type=int, default=DEFAULTS.n_bootstrap, show_default=True,
              help="replicates for intervals")
@click.option("--noise", type=float, default=None, help="std of loss/base loss, when runs are not repeated")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap draws.")
@plots_option()
@click.option("--eval-domains", default=None, metavar="A,B,...",
              help="held-out domains whose mean metric is optimised (default: every domain)")
@click.option("--for-autoscale", is_flag=True,
              help="refit every bootstrap replicate from all 30 grid starts (slower): AutoScale reads these "
                   "curves at its target, far from their points, where 2 starts understate the spread")
@click.option("--independent-seeds", is_flag=True,
              help="leave each seed's offset shared by all its runs in the noise (default: taken off first, "
                   "the runs of one seed share its model and data seeds)")
def ddo_cmd(runs, out, form, units, floor, floor_uniform, metric, cap, n_bootstrap, noise, seed, plots,
            eval_domains, for_autoscale, independent_seeds) -> None:
    """DDO: base + perturbed runs of one scale -> optimal weights at that scale."""
    from mixer.cli.commands._options import domain_list
    from mixer.solver.ddo_model import DDO, REPLICATE_STARTS, TARGET_REPLICATE_STARTS, Starts
    from mixer.solver.runs import group_ddo
    from mixer.solver.solutions import ddo_solution

    data = group_ddo(_runs(runs), metric=metric, eval_domains=domain_list(eval_domains, "--eval-domains"),
                     seed_blocks=not independent_seeds)
    if floor is None and floor_uniform:
        floor = floor_uniform / len(data.domains)
    prov = {"runs": [r.path for r in data.base] + [r.path for d in data.domains for r in data.perturbed[d]],
            "corpus_sha256": data.base[0].corpus_sha256}
    starts = Starts(replicates=TARGET_REPLICATE_STARTS if for_autoscale else REPLICATE_STARTS)
    estimator = DDO(form=form, units=units, floor=floor, cap=cap, n_bootstrap=n_bootstrap, noise=noise, seed=seed,
                    starts=starts)
    _show(ddo_solution(data, out, estimator=estimator, provenance=prov, plots=plots))


def _read_optimum(path: Path):
    from mixer.formats.weights import load_weights
    from mixer.solver.solutions import ScaleOptimum
    from mixer.solver.verdict import Verdict

    if path.is_dir():
        found = sorted(path.rglob("weights.json"))
        if len(found) != 1:
            raise MixerError(f"{path}: expected one weights.json in this folder, found {len(found)}; pass the file")
        path = found[0]
    mw = load_weights(path)
    if not mw.budget_tokens:
        raise MixerError(f"{path}: no budget_tokens; AutoScale needs the scale each optimum was solved at")
    tokens = mw.provenance.get("tokens_per_domain") or {d: w * mw.budget_tokens for d, w in mw.weights.items()}
    return ScaleOptimum(source=str(path), budget_tokens=int(mw.budget_tokens),
                        tokens={d: float(tokens[d]) for d in mw.weights},
                        replicates=mw.provenance.get("bootstrap_weights") or [],
                        intervals={d: tuple(v) for d, v in mw.intervals.items()},
                        verdict=None if mw.verdict is None else Verdict(mw.verdict == "supported", tuple(mw.reasons)),
                        metric=mw.provenance.get("metric"), floor=_floor(mw.provenance.get("floor")),
                        curves=mw.provenance.get("curves"))


def _floor(value) -> float | None:
    """DDO's floor from its provenance: one weight for every domain (a per-domain mapping is not
    one floor: AutoScale then holds nothing at a floor)."""
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


@command.command("autoscale")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--target", required=True, help="target budget in tokens, e.g. 10B")
@click.option("--out", required=True, type=LocalPath(dir_okay=False, path_type=Path), help="weights.json to write")
@click.option("--validate-scale", default=None,
              help="One input's budget, e.g. 4M (3+ scales): fit without it and check its prediction.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws of DDO replicates per scale.")
@plots_option()
def autoscale_cmd(inputs, target, out, validate_scale, seed, plots) -> None:
    """AutoScale: DDO weights.json at >= 2 scales -> weights at --target (any positive budget)."""
    from mixer.core.units import parse_count
    from mixer.solver.solutions import autoscale_solution

    n_target = parse_count(target, "--target")
    held = None if validate_scale is None else parse_count(validate_scale, "--validate-scale")
    if len(inputs) < 2:
        raise MixerError("autoscale: give DDO weights.json files (or folders) at two or more scales")
    optima = [_read_optimum(Path(p)) for p in inputs]
    metrics = {o.metric for o in optima}
    prov = {"inputs": [o.source for o in sorted(optima, key=lambda o: o.budget_tokens)],
            "metric": metrics.pop() if len(metrics) == 1 else "mixed"}
    _show(autoscale_solution(optima, n_target, out, provenance=prov, plots=plots, validate_scale=held, seed=seed))


@command.command("regmix")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", required=True, type=LocalPath(dir_okay=False, path_type=Path), help="weights.json to write")
@regressor_option()
@click.option("--eval-domains", default=None, metavar="A,B,...",
              help="held-out domains whose mean loss is the regression's target (default: every domain; "
                   "the authors regress one domain's)")
@click.option("--corpus", type=LocalPath(file_okay=False, path_type=Path), default=None,
              help="The runs' prepared corpus: candidates drawn around its token distribution within the usage "
                   "bound, as published (default: a flat Dirichlet, no bound)")
@usage_options(given="With --corpus: ")
@click.option("--bootstrap", "n_bootstrap", type=int, default=100, show_default=True,
              help="Bootstrap replicates for the weights' intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap draws.")
@plots_option()
def regmix_cmd(runs, out, regressor, eval_domains, corpus, max_usage, usage_tokens, n_bootstrap, seed, plots) -> None:
    """RegMix: many random-mixture runs -> regression -> best mixture."""
    from mixer.cli.commands._options import domain_list
    from mixer.core.units import parse_count
    from mixer.solver.baselines.regmix import RegMixSettings
    from mixer.solver.solutions import regmix_corpus_bounds, regmix_solution

    prior = upper = None
    if corpus is not None:
        prior, upper = regmix_corpus_bounds(corpus, max_usage=max_usage, usage_tokens=None if usage_tokens is None
                                            else parse_count(usage_tokens, "--usage-tokens"))
    settings = RegMixSettings(model=regressor, n_bootstrap=n_bootstrap, seed=seed)
    _show(regmix_solution(_runs(runs), out, settings=settings, space=(prior, upper), plots=plots,
                          eval_domains=domain_list(eval_domains, "--eval-domains")))


@command.command("mixing-laws")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", required=True, type=LocalPath(dir_okay=False, path_type=Path), help="weights.json to write")
@click.option("--bootstrap", "n_bootstrap", type=int, default=50, show_default=True,
              help="Bootstrap replicates for the weights' intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap draws.")
@plots_option()
def mixing_laws_cmd(runs, out, n_bootstrap, seed, plots) -> None:
    """Data Mixing Laws: per-domain L_i(r) = c_i + k_i exp(t_i . r) fitted, then minimised."""
    from mixer.solver.solutions import mixing_laws_solution

    _show(mixing_laws_solution(_runs(runs), out, n_bootstrap=n_bootstrap, seed=seed, plots=plots))


@command.command("doremi")
@click.option("--proxy", "proxy_path", required=True, help="run.json of the proxy, with loss_history")
@click.option("--reference", "ref_path", required=True, help="run.json of the reference model")
@click.option("--out", required=True, type=LocalPath(dir_okay=False, path_type=Path), help="weights.json to write")
@click.option("--eta", type=float, default=1.0, show_default=True, help="Group DRO step size (official default).")
@click.option("--smoothing", type=float, default=1e-3, show_default=True,
              help="Mix the weights with uniform by this share after every step (official default).")
def doremi_cmd(proxy_path, ref_path, out, eta, smoothing) -> None:
    """DoReMi: replay Group DRO over the proxy's logged per-domain losses."""
    from mixer.solver.runs import read_run
    from mixer.solver.solutions import doremi_solution

    _show(doremi_solution(read_run(proxy_path), read_run(ref_path), out, eta=eta, smoothing=smoothing))


@command.command("power")
@click.option("--domains", "m", type=click.IntRange(min=2), required=True, help="number of domains in the sweep")
@click.option("--noise", type=float, required=True,
              help="run-to-run std of the mean held-out metric, as a fraction of it (e.g. 0.005; the noise.sigma "
                   "of an earlier weights.json's provenance)")
@click.option("--gain", type=float, required=True,
              help="the gain over uniform you expect the true optimum to have, as a fraction of the metric (e.g. 0.02)")
@click.option("--seeds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Seeds per run of the simulated sweeps (as `mixer loop --seeds`).")
@click.option("--factors", default=",".join(repr(float(f)) for f in DEFAULTS.factors), show_default=True,
              help="the sweep's perturbation factors (grown totals)")
@click.option("--sweeps", type=click.IntRange(min=10), default=100, show_default=True,
              help="simulated sweeps per row (more: tighter figures, longer)")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=20), default=100, show_default=True,
              help="Bootstrap replicates of each simulated fit.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="processes simulating sweeps (the figures do not depend on it)")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulation.")
def power_cmd(m, noise, gain, seeds, factors, sweeps, n_bootstrap, workers, seed) -> None:
    """Size a DDO sweep before paying for it: simulate it from known laws (mixer.solver.simulation)
    and print how often the verdict would say `supported`, with the true gain and with none."""
    from rich.console import Console
    from rich.table import Table

    from mixer.solver.simulation.sweeps import Setting, simulate_setting

    try:
        fs = tuple(float(x) for x in factors.split(","))
    except ValueError:
        raise MixerError(f"--factors {factors!r}: expected numbers separated by commas, e.g. 0.333,2,4") from None
    if not (noise >= 0 and gain > 0):
        raise MixerError(f"--noise {noise} / --gain {gain}: the noise must be >= 0 and the gain > 0")
    rows = [("your gain", Setting("gain", m=m, noise=noise, seeds=seeds, gain=gain, factors=fs)),
            ("no gain (identical domains)", Setting("identical", m=m, noise=noise, seeds=seeds, factors=fs))]
    table = Table(title=f"{sweeps} simulated sweeps per row: {m} domains, {seeds} seeds, factors "
                        f"{', '.join(f'{f:g}' for f in fs)} (grown totals), noise {noise:g}")
    for col in ("true optimum", "supported", "gain's standard error", "gain / SE", "weight intervals cover"):
        table.add_column(col, justify="right")
    for label, setting in rows:
        try:
            s = simulate_setting(setting, sweeps, seed=seed, n_bootstrap=n_bootstrap, workers=workers)
        except ValueError as exc:
            raise MixerError(f"--gain {gain}: {exc}") from None
        ratio = s.optimum_gain / s.gain_se if s.gain_se > 0 else float("nan")
        table.add_row(label, f"{s.supported:.0%}", f"{s.gain_se:.3g}", f"{ratio:.1f}", f"{s.coverage:.0%}")
    Console(width=140).print(table)
    click.echo("supported >= 80 % of the time needs a gain of about 4 standard errors or more (docs/solver.md)")
