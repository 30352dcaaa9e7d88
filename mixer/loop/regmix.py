"""`mixer loop regmix`: RegMix as published, run by the same loop as DDO.

    cfg = RegMixConfig(loop=LoopConfig(corpus="corpus/", out="loop/"), runs=64, held_out=16)
    result = loop_regmix(cfg, budget_tokens=1_000_000)
    result.weights, result.spearman        # the top-k mean, the held-out rank correlation

The `runs + held_out` mixtures are drawn around the corpus's token distribution
(`mixer.solver.baselines.regmix.sample_mixtures`, seeded by the data seed and the budget), within
the authors' usage bound (no domain above `max_usage` = 15 epochs of a `usage_tokens` run; None:
the corpus's size, their `15 × token share`) and rounded to 2e-4, trained as
`RunSpec`s through the DDO sweep's machinery (`mixer.loop.sweep.run_all`: the run cache, resume
after a kill, the sequential or Ray backend), and the fit is `mixer.solver.solutions.regmix_solution`,
the path `mixer solve regmix` takes: LightGBM by default, the mean of the top-k predicted
candidates (drawn within the same bound), Spearman on the held-out mixtures, bootstrap
intervals. The regression's target is the mean held-out loss over `loop.eval_domains`
(`--eval-domains`; None: every domain, the objective DDO and the benchmarks use; the authors
regress one domain's loss, their Pile-CC). Why a loop of its own: the
DDO sweep plans perturbations of one base mixture, RegMix random mixtures of the whole simplex.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mixer.core.errors import MixerError
from mixer.loop.runner import RunSpec
from mixer.loop.sweep import (
    Backend,
    LoopConfig,
    _relative,
    corpus_identity,
    make_backend,
    run_all,
    with_corpus_opened,
)
from mixer.solver.baselines.regmix import (
    REGRESSORS,
    PriorSpec,
    RegMixSettings,
    sample_mixtures,
)
from mixer.solver.runs import read_runs
from mixer.solver.solutions import regmix_corpus_bounds, regmix_solution


@dataclass(frozen=True)
class RegMixConfig:
    loop: LoopConfig  # corpus, out, trainer settings, cache, Ray, bootstrap, plots, progress
    runs: int = 32  # proxy mixtures fitted (the authors: 512)
    held_out: int = 8  # further mixtures, trained but never fitted: the rank-correlation check
    regressor: str = "lightgbm"  # "lightgbm" (the authors'), "quadratic" (ridge) or "linear"
    top_k: int = 100  # candidates averaged for the answer
    n_search: int = 100_000  # candidates scored by the regression
    temperature: float = 0.5  # the token distribution ^ temperature centres the Dirichlet
    min_strength: float = 0.1  # Dirichlet concentrations cycled between these two
    max_strength: float = 5.0
    min_weight: float = 1e-3  # every domain keeps this share (run.json needs tokens from each domain)
    max_usage: float = 15.0  # epochs a domain may be seen in the final run (the authors' MAXIMUM_USAGE)
    usage_tokens: int | None = None  # the final run's tokens for that bound; None: the corpus's (the authors' form)


@dataclass(frozen=True)
class RegMixLoopResult:
    weights: dict[str, float]
    weights_path: Path
    budget_tokens: int
    runs: dict[str, Path]  # run name -> run.json (fitted)
    held_out: dict[str, Path]  # held-out run name -> run.json
    spearman: float | None  # rank correlation of predicted and measured loss on the held-out runs
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    plots: tuple[Path, ...] = ()
    ran: int = 0  # runs trained now (the rest came from the cache)
    prior: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _check(cfg: RegMixConfig) -> None:

    if cfg.regressor not in REGRESSORS:
        raise MixerError(f"--regressor {cfg.regressor!r}: choose one of {', '.join(REGRESSORS)}")
    if cfg.runs < 4:
        raise MixerError(f"--runs {cfg.runs}: RegMix needs at least 4 mixtures to fit (the authors train 512)")
    if cfg.held_out < 0:
        raise MixerError(f"--held-out {cfg.held_out}: give 0 or more held-out mixtures")
    if not 1 <= cfg.top_k <= cfg.n_search:
        raise MixerError(f"--top-k {cfg.top_k}: need 1 <= top-k <= {cfg.n_search} (the candidates searched)")
    if not 0 < cfg.min_strength <= cfg.max_strength:
        raise MixerError(f"Dirichlet strengths {cfg.min_strength}..{cfg.max_strength}: need 0 < min <= max")
    if not 0 <= cfg.min_weight < 1.0 / 64:
        raise MixerError(f"min_weight {cfg.min_weight}: give a share in [0, 1/64)")
    if not (cfg.max_usage > 0 and cfg.max_usage == cfg.max_usage):
        raise MixerError(f"--max-usage {cfg.max_usage}: give the epochs a domain may be used, > 0 (the authors: 15)")
    if cfg.usage_tokens is not None and cfg.usage_tokens <= 0:
        raise MixerError(f"--usage-tokens {cfg.usage_tokens}: give the final run's tokens, > 0")
    if cfg.temperature < 0:
        raise MixerError(f"--temperature {cfg.temperature}: give a value >= 0 (0: a flat prior, 1: the token shares)")


def prior_of(cfg: RegMixConfig) -> dict[str, float]:
    """The Dirichlet's centre: the corpus's training-token shares ^ temperature, normalised."""

    return regmix_corpus_bounds(cfg.loop.corpus, temperature=cfg.temperature, max_usage=cfg.max_usage,
                                usage_tokens=cfg.usage_tokens)[0]


def bound_of(cfg: RegMixConfig) -> dict[str, float]:
    """Each domain's largest weight under the usage bound (`regmix.usage_bound`)."""

    return regmix_corpus_bounds(cfg.loop.corpus, temperature=cfg.temperature, max_usage=cfg.max_usage,
                                usage_tokens=cfg.usage_tokens)[1]


def plan_regmix(cfg: RegMixConfig, budget_tokens: int) -> tuple[list[RunSpec], list[RunSpec]]:
    """(fitted runs, held-out runs): mixtures drawn around the token prior, one stream of draws
    seeded by the data seed and the budget, so the held-out mixtures come from the same law; the
    first `runs + held_out` distinct ones (rounding to 2e-4 makes corner draws repeat; the
    authors deduplicate too, `sort_and_deduplicate`)."""


    _check(cfg)
    domains, sha = corpus_identity(cfg.loop.corpus)
    odd = [d for d in (cfg.loop.eval_domains or ()) if d not in domains]
    if odd:  # before any run is trained
        raise MixerError(f"--eval-domains: {odd[0]!r} is not a domain of {cfg.loop.corpus} "
                         f"(its domains: {', '.join(domains)})")
    prior, upper = prior_of(cfg), bound_of(cfg)
    spec = PriorSpec(temperature=cfg.temperature, min_strength=cfg.min_strength, max_strength=cfg.max_strength)
    n = cfg.runs + cfg.held_out
    drawn = sample_mixtures(np.array([prior[d] for d in domains]), 10 * n,
                            seed=[cfg.loop.train.data_seed, int(budget_tokens), 18], spec=spec,
                            upper=np.array([upper[d] for d in domains]))
    _, first = np.unique(drawn, axis=0, return_index=True)  # rounded draws repeat: the authors deduplicate
    if first.size < n:
        raise MixerError(f"--runs {cfg.runs} + --held-out {cfg.held_out}: only {first.size} distinct mixtures "
                         f"among {10 * n} draws; ask for fewer runs or raise the Dirichlet strengths")
    W = drawn[np.sort(first)[:n]]
    W = (1.0 - len(domains) * cfg.min_weight) * W + cfg.min_weight  # a floor that keeps rows on the simplex

    def run(i: int, role: str) -> RunSpec:
        name = f"regmix-{i:03d}" if role == "regmix" else f"regmix-heldout-{i - cfg.runs:03d}"
        return RunSpec(corpus=str(cfg.loop.corpus), corpus_sha256=sha, name=name,
                       weights={d: float(x) for d, x in zip(domains, W[i])}, budget_tokens=int(budget_tokens),
                       train=cfg.loop.train, provenance={"role": role, "domain": None, "factor": None, "total": None})

    fitted = [run(i, "regmix") for i in range(cfg.runs)]
    held = [run(i, "validation") for i in range(cfg.runs, cfg.runs + cfg.held_out)]
    return fitted, held


def loop_regmix(cfg: RegMixConfig, budget_tokens: int, backend: Backend | None = None) -> RegMixLoopResult:
    """Plan, run (resuming from the cache), fit and search; weights.json in `cfg.loop.out`."""

    cfg = replace(cfg, loop=with_corpus_opened(cfg.loop))  # corpus.json read once for the sweep
    fitted, held = plan_regmix(cfg, budget_tokens)
    lc = cfg.loop
    paths, ran = run_all([*fitted, *held], lc.cache_dir, backend or make_backend(lc), lc.progress,
                         desc=f"RegMix @ {budget_tokens:,}")
    out = Path(lc.out)
    prior = prior_of(cfg)
    prov: dict[str, Any] = {"loop": "regmix", "corpus_sha256": fitted[0].corpus_sha256, "train": lc.train.to_json(),
                            "temperature": cfg.temperature, "strengths": [cfg.min_strength, cfg.max_strength],
                            "max_usage": cfg.max_usage, "usage_tokens": cfg.usage_tokens,
                            "run_names": {s.name: _relative(paths[s.key()], out) for s in [*fitted, *held]}}
    settings = RegMixSettings(model=cfg.regressor, n_search=cfg.n_search, top_k=cfg.top_k, seed=lc.train.seed,
                              n_bootstrap=lc.n_bootstrap)
    sol = regmix_solution(read_runs([paths[s.key()] for s in fitted]), out / "weights.json", settings=settings,
                          space=(prior, bound_of(cfg)), plots=lc.plots, eval_domains=lc.eval_domains,
                          held_out=read_runs([paths[s.key()] for s in held]) if held else (), provenance=prov)
    rho = sol.provenance.get("held_out", {}).get("spearman")
    return RegMixLoopResult(weights=sol.weights, weights_path=sol.path, budget_tokens=int(budget_tokens),
                            runs={s.name: paths[s.key()] for s in fitted},
                            held_out={s.name: paths[s.key()] for s in held}, spearman=rho,
                            intervals=sol.intervals, plots=sol.plots, ran=ran, prior=prior, notes=sol.notes)

