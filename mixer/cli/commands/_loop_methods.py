"""`mixer loop regmix` and `mixer loop doremi`: the published baselines run by the same loop
(cache, resume, Ray) as `mixer loop ddo`. Registered on the `loop` group by
`mixer/cli/commands/loop.py`; kept apart so the DDO options (factors, seeds, floors) do not
appear on commands that have no use for them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mixer.cli.commands._options import (
    LocalPath,
    StoragePath,
    loop_out_option,
    model_options,
    plots_option,
    quiet_option,
    ray_option,
    regressor_option,
    train_spec,
    trainer_options,
    usage_options,
    weights_table,
)
from mixer.core.urls import is_remote


def loop_corpus_option():
    return click.option("--corpus", required=True, type=StoragePath(file_okay=False, path_type=Path),
                        help="Prepared corpus (`mixer prepare`), a folder or URL (downloaded once into $MIXER_CACHE).")


def loop_corpus(corpus: Any) -> Any:
    """The loops' `--corpus`: a folder as given, or a URL opened now (fetched once into the
    cache: `mixer.formats.corpus_handle.fetch_corpus`; the handle keeps the URL for Ray workers)."""
    if not is_remote(corpus):
        return corpus
    from mixer.core.urls import as_typed
    from mixer.formats.corpus_handle import Corpus

    return Corpus.open(as_typed(corpus))


def run_loop_out(out: Any, run: Any, *, finish: Any = None) -> tuple[Any, str]:
    """`run(folder)`: a loop writing its output into `folder`; `finish(folder)` then writes
    loop.toml. `out` a URL: the loop runs in a local staging folder kept until the upload
    succeeds (an interrupted sweep resumes from its finished runs), then every file is uploaded,
    weights.json last (`mixer.core.urls.publish_folder`). Returns (result, where it was written)."""
    def local(folder):
        res = run(folder)
        if finish is not None:
            finish(folder)
        return res

    if not is_remote(out):
        return local(out), str(out)
    from mixer.core.urls import as_typed, publish_folder

    url = as_typed(out)
    return publish_folder(url, local, marker="weights.json", overwrite=True, fresh=False), url


def published_path(path: Any, where: str) -> str:
    """`path` (a file the loop wrote in its staging folder) as its URL under `where`; a local
    output's path unchanged."""
    if not is_remote(where):
        return str(path)
    from mixer.core.urls import staging_folder

    rel = Path(path).relative_to(staging_folder(where) / "out").as_posix()
    return f"{where.rstrip('/')}/{rel}"


def _train_options(f):
    """Corpus, output and trainer options shared by the baseline loops."""
    opts = [
        loop_corpus_option(),
        click.option("--tokens", required=True, help="Budget of every proxy run, e.g. 2M."),
        loop_out_option(),
        *model_options(),
        *trainer_options(),
        quiet_option(),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@click.command("regmix")
@_train_options
@click.option("--runs", type=int, default=32, show_default=True, help="Proxy mixtures fitted (the authors: 512).")
@click.option("--held-out", type=int, default=8, show_default=True,
              help="Further mixtures trained but not fitted: the held-out rank correlation.")
@regressor_option()
@click.option("--top-k", type=int, default=100, show_default=True, help="Best predicted candidates averaged.")
@click.option("--search", "n_search", type=int, default=100_000, show_default=True, help="Candidates scored.")
@click.option("--temperature", type=float, default=0.5, show_default=True,
              help="Token distribution ^ T centres the candidate Dirichlet.")
@click.option("--eval-domains", default=None, metavar="A,B,...",
              help="Held-out domains whose mean loss is the regression's target (default: every domain).")
@usage_options(given="")
@click.option("--bootstrap", "n_bootstrap", type=int, default=50, show_default=True,
              help="Bootstrap replicates for the weights' intervals (each refits the regressor).")
@click.option("--cache", type=LocalPath(file_okay=False, path_type=Path), default=None,
              help="Run cache (default OUT/runs); share it with other loops to reuse runs.")
@ray_option("each proxy")
@click.option("--ray-cpus", type=int, default=None, help="CPUs of a --ray local cluster (default: all).")
@plots_option()
def regmix_cmd(tokens, runs, held_out, regressor, top_k, n_search, temperature, eval_domains, max_usage, usage_tokens,
               n_bootstrap, cache, ray, ray_cpus, plots, **kw) -> None:
    """RegMix: random mixtures around the token distribution -> proxies -> regression -> top-k mean."""
    from rich.console import Console

    from mixer.cli.commands._options import domain_list
    from mixer.core.units import parse_count
    from mixer.loop.regmix import RegMixConfig, loop_regmix
    from mixer.loop.sweep import LoopConfig

    corpus = loop_corpus(kw["corpus"])

    def run(out):
        loop = LoopConfig(corpus=corpus, out=out, train=train_spec(kw), n_bootstrap=n_bootstrap, cache=cache,
                          ray=ray, ray_cpus=ray_cpus, plots=plots, progress=not kw["quiet"],
                          eval_domains=domain_list(eval_domains, "--eval-domains"))
        cfg = RegMixConfig(loop=loop, runs=runs, held_out=held_out, regressor=regressor, top_k=top_k,
                           n_search=n_search, temperature=temperature, max_usage=max_usage,
                           usage_tokens=None if usage_tokens is None else parse_count(usage_tokens, "--usage-tokens"))
        return loop_regmix(cfg, parse_count(tokens, "--tokens"))

    res, where = run_loop_out(kw["out"], run)
    console = Console(width=120)
    console.print(weights_table(f"RegMix ({regressor}) at {res.budget_tokens:,} tokens (weight [95 % interval])",
                                {"prior": res.prior, "weight": res.weights}, {"weight": res.intervals}))
    total = len(res.runs) + len(res.held_out)
    console.print(f"{len(res.runs)} runs + {len(res.held_out)} held out, {res.ran} trained now, "
                  f"{total - res.ran} from the cache")
    for note in res.notes:
        console.print(note, soft_wrap=True, markup=False)
    console.print(f"wrote {published_path(res.weights_path, where)}"
                  + "".join(f"\nplot: {published_path(p, where)}" for p in res.plots), soft_wrap=True)


@click.command("doremi")
@_train_options
@click.option("--eta", type=float, default=1.0, show_default=True, help="Group DRO step size (official default).")
@click.option("--smoothing", type=float, default=1e-3, show_default=True,
              help="Mix the weights with uniform by this share after every step (official default).")
@click.option("--mode", type=click.Choice(["reweight", "resample"]), default="reweight", show_default=True,
              help="reweight: proxy batches at the base weights, loss weighted by the DRO weights (the official "
                   "code); resample: batches drawn by the current weights.")
@click.option("--cache", type=LocalPath(file_okay=False, path_type=Path), default=None,
              help="Run cache (default OUT/runs).")
@plots_option()
def doremi_cmd(tokens, eta, smoothing, mode, cache, plots, **kw) -> None:
    """DoReMi online: a reference at uniform, then a proxy with the Group DRO update every step."""
    from rich.console import Console

    from mixer.core.units import parse_count
    from mixer.loop.doremi import DoReMiConfig, loop_doremi

    corpus = loop_corpus(kw["corpus"])
    res, where = run_loop_out(kw["out"], lambda out: loop_doremi(
        DoReMiConfig(corpus=corpus, out=out, train=train_spec(kw), eta=eta, smoothing=smoothing, mode=mode, cache=cache,
                     plots=plots, progress=not kw["quiet"]), parse_count(tokens, "--tokens")))
    final = dict(zip(res.domains, map(float, res.trajectory[-1])))
    console = Console(width=120)
    console.print(weights_table(f"DoReMi online at {res.budget_tokens:,} tokens ({len(res.trajectory)} steps)",
                                {"average (answer)": res.weights, "last step": final}))
    console.print(f"{res.ran} runs trained now, {2 - res.ran} from the cache")
    console.print(f"wrote {published_path(res.weights_path, where)}"
                  + "".join(f"\nplot: {published_path(p, where)}" for p in res.plots), soft_wrap=True)


COMMANDS = (regmix_cmd, doremi_cmd)
