"""`mixer loop ddo|autoscale`: the closed loop in one command (plan, mix, train, measure, fit, solve).

    mixer loop ddo --corpus corpus/ --model gpt2 --preset tiny --tokens 2M --out loop/ [--ray local]
    mixer loop autoscale --corpus corpus/ --scales 2M,4M --target 64M --out loop/ [--train-target]

Finished runs are cached under OUT/runs/<scale>/<role>-<domain>-x<factor>-s<seed>-<hash8>/; run
the same command again after an interruption and it trains only what is missing (`--show` lists
the planned runs and their state). `--config loop.toml` reads the options from a file; every run
writes its resolved options to OUT/loop.toml and a self-contained OUT/report.html. See docs/loop.md.
"""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._loop_methods import (
    loop_corpus,
    loop_corpus_option,
    published_path,
    run_loop_out,
)
from mixer.cli.commands._options import (
    LocalPath,
    command_line,
    config_options,
    domain_list,
    loop_out_option,
    model_options,
    quiet_option,
    ray_option,
    train_spec,
    trainer_options,
    weights_table,
    write_config,
)
from mixer.loop.defaults import DEFAULTS


def _common(f):
    opts = [
        loop_corpus_option(),
        *model_options(),
        loop_out_option(),
        click.option("--perturb", type=float, default=3.0, show_default=True,
                     help="Factor on each domain's weight in its perturbed run."),
        click.option("--both-directions", is_flag=True,
                     help="Also run each domain at weight / --perturb (3 points per fit: the shifted power law)."),
        click.option("--factors", default=",".join(repr(float(f)) for f in DEFAULTS.factors), show_default=True,
                     help="Factors on each domain's weight in its perturbed runs, e.g. 3,0.2 (the authors'); "
                          "'' to use --perturb [--both-directions]."),
        click.option("--seeds", type=int, default=DEFAULTS.seeds, show_default=True,
                     help="Repeat every run with K model and data seeds: measures the run-to-run noise, gives "
                          "the fits points to check and the weights intervals (2 or more recommended)."),
        click.option("--metric", type=click.Choice(["perplexity", "loss"]), default=DEFAULTS.metric,
                     show_default=True, help="What the power laws fit: mean held-out perplexity (the paper's) "
                                             "or mean cross-entropy."),
        click.option("--bootstrap", "n_bootstrap", type=int, default=DEFAULTS.n_bootstrap, show_default=True,
                     help="Bootstrap replicates for the weights' intervals."),
        click.option("--validate", type=int, default=DEFAULTS.validate, show_default=True,
                     help="Train N extra mixtures per budget, held out of the fit, and check its predictions."),
        click.option("--total", "total", type=click.Choice(["grown", "fixed"]),
                     default="fixed" if DEFAULTS.keep_total else "grown", show_default=True,
                     help="grown: a perturbed run keeps the other domains' tokens (Algorithm 1; unbiased); fixed: "
                          "rescales them to keep the budget (§2.2; each fit absorbs the others' changes: biased)."),
        click.option("--eval-domains", default=None, metavar="A,B,...",
                     help="Held-out domains whose mean metric the mixture optimises (default: every domain), "
                          "e.g. the domains you care about, apart from those trained on."),
        click.option("--floor-uniform", type=float, default=DEFAULTS.floor_uniform, show_default=True,
                     help="Weight floor as a fraction of 1/m (the authors' 0.2; 0: none)."),
        *trainer_options(),
        click.option("--cache", type=LocalPath(file_okay=False, path_type=Path), default=None,
                     help="Run cache (default OUT/runs); share it between sweeps to reuse runs."),
        ray_option("each proxy run"),
        click.option("--ray-cpus", type=int, default=None, help="CPUs of a --ray local cluster (default: all)."),
        click.option("--batch-proxies", type=click.IntRange(min=0), default=0, show_default=True, metavar="K",
                     help="Train up to K runs (GPT-2 or BERT) of equal budget at once in one stacked model "
                          "(fills a GPU; 0: one by one). Runs are cached apart from unbatched ones."),
        quiet_option(),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return config_options(f)


def _reproduce(out: Path) -> tuple[str, ...]:
    """The commands that replay this run: its written config, and the same as one command line."""
    ctx = click.get_current_context()
    return (f"mixer loop {ctx.command.name} --config {Path(out) / 'loop.toml'}", command_line(ctx.command, ctx.params))


def _show(kw: dict, specs_of) -> None:
    """--show: the planned runs with their state and folder; nothing is trained."""
    from rich.console import Console
    from rich.table import Table

    from mixer.core.urls import as_typed, is_remote, staging_folder
    from mixer.loop.sweep import show_plan

    out = kw["out"]  # a URL: its runs are staged locally (`run_loop_out`)
    cfg = _config(kw, out=staging_folder(as_typed(out)) / "out" if is_remote(out) else None,
                  corpus=loop_corpus(kw["corpus"]))
    rows = show_plan(specs_of(cfg), cfg.cache_dir)
    table = Table(title=f"planned runs (folders under {cfg.cache_dir})")
    for col in ("run", "state", "folder"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        style = {"finished": "green", "partial": "yellow"}.get(r.state)
        table.add_row(r.name, r.state, str(r.folder.relative_to(cfg.cache_dir)), style=style)
    console = Console(width=160)
    console.print(table)
    counts = {s: sum(r.state == s for r in rows) for s in ("finished", "missing", "partial")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(rows)} planned runs; nothing trained")


def _finish(out: Path) -> None:
    """After a successful run: OUT/loop.toml, the resolved options that replay it."""
    ctx = click.get_current_context()
    write_config(ctx.command, ctx.params, out)


def _config(kw: dict, out=None, corpus=None):
    """The LoopConfig of the options; `out` / `corpus` where the CLI resolved them."""
    from mixer.core.errors import MixerError
    from mixer.loop.sweep import LoopConfig
    if kw["factors"]:
        try:
            factors = tuple(float(x) for x in kw["factors"].split(","))
        except ValueError:
            raise MixerError(f"--factors {kw['factors']!r}: expected numbers separated by commas, e.g. 3,0.2") from None
    else:
        factors = (kw["perturb"], 1 / kw["perturb"]) if kw["both_directions"] else (kw["perturb"],)
    train = train_spec(kw)
    return LoopConfig(corpus=kw["corpus"] if corpus is None else corpus, out=kw["out"] if out is None else out,
                      train=train, factors=factors,
                      keep_total=kw["total"] == "fixed", floor_uniform=kw["floor_uniform"] or None,
                      eval_domains=domain_list(kw["eval_domains"], "--eval-domains"),
                      metric=kw["metric"], seeds=kw["seeds"], validate=kw["validate"], n_bootstrap=kw["n_bootstrap"],
                      cache=kw["cache"], ray=kw["ray"], ray_cpus=kw["ray_cpus"], progress=not kw["quiet"],
                      reproduce=_reproduce(kw["out"]), batch_proxies=kw["batch_proxies"])


def print_verdict(console, verdict, fallback: str = "uniform (or your base mixture)", versus: str | None = None) -> None:
    """The verdict and its reasons, always printed (not only stored in weights.json)."""
    if verdict is None:
        return
    style = "green" if verdict.supported else "bold red"
    for i, line in enumerate(verdict.lines(fallback, versus)):
        console.print(line, style=style if i == 0 else None, soft_wrap=True, markup=False, highlight=False)


@click.group("loop")
def command() -> None:
    """The closed loop: plan proxy runs, train them (cached, optionally on Ray), fit, write weights."""


@command.command("ddo")
@_common
@click.option("--tokens", required=True, help="Budget of every proxy run, e.g. 2M.")
def ddo_cmd(tokens, **kw) -> None:
    """One DDO sweep: base + perturbed runs at --tokens -> OUT/weights.json."""
    from rich.console import Console

    from mixer.core.units import parse_count
    from mixer.loop.sweep import loop_ddo, plan_sweep, plan_validation

    budget = parse_count(tokens, "--tokens")
    if kw.pop("show"):
        return _show(kw, lambda cfg: [*plan_sweep(cfg, budget), *plan_validation(cfg, budget)])
    corpus = loop_corpus(kw["corpus"])
    cfg = _config(kw, corpus=corpus)
    res, where = run_loop_out(kw["out"], lambda out: loop_ddo(_config(kw, out, corpus), budget), finish=_finish)
    console = Console(width=120)
    console.print(weights_table(f"DDO at {res.budget_tokens:,} tokens ({cfg.metric}; weight [95 % interval])",
                                {"weight": res.weights}, {"weight": res.intervals}))
    total = len(res.runs) + len(res.held_out)
    held = f" + {len(res.held_out)} held out" if res.held_out else ""
    console.print(f"{len(res.runs)} runs{held}, {res.ran} trained now, {total - res.ran} from the cache")
    from mixer.solver.solutions import gain_lines

    for line in gain_lines(res.estimator):
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    for w in res.estimator.warnings_:
        console.print(f"warning: {w}", soft_wrap=True, markup=False)
    held = res.held_out_check or {}
    for name, pred, meas, z in zip(held.get("runs", []), held.get("predicted", []), held.get("measured", []),
                                   held.get("z") or [None] * len(held.get("runs", []))):
        zs = "" if z is None else f" ({z:+.1f} noise units)"
        console.print(f"held-out {name}: predicted {pred:.4f}, measured {meas:.4f}{zs}", soft_wrap=True)
    print_verdict(console, res.verdict)
    _wrote(console, res, where)


def _wrote(console, res, where: str) -> None:
    def at(p):
        return published_path(p, where)

    lines = [f"wrote {at(res.weights_path)}",
             *([f"wrote {at(res.schedule_path)}"] if getattr(res, "schedule_path", None) else []),
             *(f"plot: {at(p)}" for p in res.plots)]
    if res.report is not None:
        lines.append(f"report: {at(res.report)}")
    lines.append(f"config: {at(res.weights_path.parent / 'loop.toml')}")
    console.print("\n".join(lines), soft_wrap=True)


@command.command("autoscale")
@_common
@click.option("--scales", required=True, help="Two or more small budgets, e.g. 2M,4M[,8M].")
@click.option("--target", required=True, help="Target budget, e.g. 64M.")
@click.option("--train-target", is_flag=True,
              help="Also train at --target with the predicted weights, the schedule and uniform weights.")
@click.option("--validate-scale", default=None,
              help="One of --scales, e.g. 4M (3+ scales): fit without it and check its prediction.")
@click.option("--stage-tokens", default=None,
              help="Stage length of OUT/schedule.json, e.g. 8M [default: the smallest scale, at most 64 stages].")
def autoscale_cmd(scales, target, train_target, validate_scale, stage_tokens, **kw) -> None:
    """DDO at each --scales budget, AutoScale to --target -> OUT/weights.json and OUT/schedule.json."""
    from rich.console import Console

    from mixer.core.units import format_count, parse_count
    from mixer.loop.autoscale import loop_autoscale, plan_autoscale

    budgets = [parse_count(s, "--scales") for s in scales.split(",")]
    n_target = parse_count(target, "--target")
    held = None if validate_scale is None else parse_count(validate_scale, "--validate-scale")
    if kw.pop("show"):
        return _show(kw, lambda cfg: plan_autoscale(cfg, budgets, n_target, validate_scale=held))
    corpus = loop_corpus(kw["corpus"])
    cfg = _config(kw, corpus=corpus)
    step = None if stage_tokens is None else parse_count(stage_tokens, "--stage-tokens")
    res, where = run_loop_out(kw["out"], lambda out: loop_autoscale(
        _config(kw, out, corpus), budgets, n_target, train_target=train_target, validate_scale=held, stage_tokens=step),
        finish=_finish)
    cols = {f"DDO @ {format_count(r.budget_tokens)}": r.weights for r in res.scales}
    ivs = {f"DDO @ {format_count(r.budget_tokens)}": r.intervals for r in res.scales}
    cols[f"AutoScale @ {format_count(res.target)}"] = res.weights
    ivs[f"AutoScale @ {format_count(res.target)}"] = res.intervals
    console = Console(width=160)
    console.print(weights_table(f"AutoScale (t = {res.t:.3g}; {cfg.metric}; weight [95 % interval])", cols, ivs))
    console.print(f"{res.ran} runs trained now")
    for r in res.scales:
        if not r.verdict.supported:
            console.print(f"DDO @ {format_count(r.budget_tokens)}: unsupported", style="red")
    for note in res.notes:
        console.print(note, soft_wrap=True, markup=False, highlight=False)
    print_verdict(console, res.verdict, res.recommendation.label, res.recommendation.VERSUS)
    if res.comparison:
        for name, c in res.comparison.items():
            console.print(f"{name:>18}: mean held-out loss {c['mean_loss']:.4f}, mean perplexity {c['mean_perplexity']:.2f}")
    _wrote(console, res, where)


def _add_baselines() -> None:
    """`loop regmix` / `loop doremi` (mixer/cli/commands/_loop_methods.py)."""
    from mixer.cli.commands._loop_methods import COMMANDS

    for cmd in COMMANDS:
        command.add_command(cmd)


_add_baselines()
