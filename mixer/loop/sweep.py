"""`mixer loop ddo`: plan the proxy runs, run them (cached), fit, solve, write weights.json.

    cfg = LoopConfig(corpus="corpus/", out="loop/", train=TrainSpec(model="gpt2", preset="tiny"))
    result = loop_ddo(cfg, budget_tokens=2_000_000)
    result.weights            # {domain: w}, on the simplex
    result.weights_path       # loop/weights.json (+ weights.fits.png, weights.pred_vs_meas.png)

Layout of `out`::

    runs/<scale>/<role>-<domain>-x<factor>-s<seed>-<hash8>/run.json   # one folder per finished run
    runs/<scale>/<...>/spec.json   # its inputs; <hash8> = the start of their sha256 (RunSpec.key)
    weights.json              # the DDO optimum (or scale-<N>/weights.json for `loop autoscale`)

The cache: a run folder appears only complete (it is written under a temporary name and renamed,
run.json last), so `is_finished` is simply "run.json exists". A sweep that is interrupted and
started again skips every finished run and runs only the rest; changing anything that enters
the key (corpus, weights, budget, model, preset, seeds, trainer settings) runs afresh.
Runs execute one by one in this process, or as Ray tasks (`ray="local"|"auto"|ADDRESS`, see
`mixer.loop.ray_backend`); both give bitwise equal run.json losses and so the same weights.json.
"""
from __future__ import annotations

import os
from functools import partial
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from mixer.core.errors import MixerError
from mixer.core.lock import stale_siblings
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.loop.batched_backend import BatchedBackend
from mixer.loop.defaults import DEFAULTS
from mixer.loop.ray_backend import RayBackend
from mixer.loop.report import ddo_report
from mixer.loop.runner import RunSpec, TrainSpec, commit, execute, is_finished
from mixer.solver.ddo import plan
from mixer.solver.ddo_model import DDO, REPLICATE_STARTS, Starts
from mixer.solver.intervals import scale_seed
from mixer.solver.runs import group_ddo, read_run, read_runs
from mixer.solver.solutions import ddo_solution

# backend(specs) yields (spec, files) as each run finishes, in any order.
Backend = Callable[[Sequence[RunSpec]], Iterator[tuple[RunSpec, dict[str, bytes]]]]


@dataclass(frozen=True)
class LoopConfig:
    corpus: Path | Corpus  # prepared corpus (`mixer prepare`); the loops open it once (`with_corpus_opened`)
    out: Path  # weights.json, plots and the run cache go here
    train: TrainSpec = field(default_factory=TrainSpec)  # model, preset, seeds, trainer settings
    factors: tuple[float, ...] = DEFAULTS.factors  # DDO perturbations of each domain's weight (authors: 3 and 1/5)
    keep_total: bool = DEFAULTS.keep_total  # True: others rescaled, budget fixed (§2.2, biased); False: grown (Algorithm 1)
    eval_domains: tuple[str, ...] | None = None  # held-out domains the objective averages (None: all)
    base_weights: dict[str, float] | None = None  # None: uniform
    form: str | None = None  # "shifted" | "plain"; None: shifted with >= 2 factors, plain with one
    units: str = DEFAULTS.units  # fit x = tokens/(N/m), y = L/L_base (the authors'), or "raw"
    floor_uniform: float | None = DEFAULTS.floor_uniform  # weight floor as a fraction of 1/m (AutoScale needs > 0)
    n_bootstrap: int = DEFAULTS.n_bootstrap  # bootstrap replicates for intervals (when the fits allow any)
    metric: str = DEFAULTS.metric  # "perplexity" (the paper's) or "loss": what the power laws fit
    seeds: int = DEFAULTS.seeds  # every run repeated with model and data seeds seed+k, data_seed+k (k < seeds)
    validate: int = DEFAULTS.validate  # extra mixtures trained at each budget, held out of the fit, to check it
    n_starts: int | None = None  # power-law fit starts (None: all 30; fewer is faster but can miss an alternative exact fit)
    cache: Path | None = None  # run cache; None: out/runs (share one between sweeps to reuse runs)
    ray: str | None = None  # None: sequential; "local": start a local cluster; "auto" or an address: join
    ray_cpus: int | None = None  # CPUs of a local cluster (None: all)
    batch_proxies: int = 0  # > 0: train up to this many runs at once in one model (mixer.loop.batched_backend)
    plots: bool = True
    progress: bool = True
    report: bool = True  # write out/report.html (weights, verdict, plots, loss curves, how to reproduce)
    reproduce: tuple[str, ...] = ()  # the commands report.html gives to reproduce this run (the CLI's own)

    def __post_init__(self) -> None:
        if self.batch_proxies and self.train.trainer != "stacked":  # batched runs are the stacked trainer's
            object.__setattr__(self, "train", replace(self.train, trainer="stacked"))

    def floor(self, m: int) -> float | None:
        """DDO's weight floor on `m` domains: `floor_uniform` of the uniform share (None: none)."""
        return self.floor_uniform / m if self.floor_uniform else None

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache is not None else Path(self.out) / "runs"

    def fit_form(self) -> str:
        if self.form is not None:
            return self.form
        return "shifted" if len(set(self.factors)) >= 2 else "plain"


@dataclass(frozen=True)
class DDOLoopResult:
    weights: dict[str, float]
    weights_path: Path
    budget_tokens: int
    tokens: dict[str, float]  # optimal tokens per domain at this budget (AutoScale's input)
    runs: dict[str, Path]  # run name -> run.json
    estimator: Any  # the fitted mixer.solver.ddo_model.DDO
    ran: int  # runs trained now (the rest came from the cache)
    plots: tuple[Path, ...] = ()
    verdict: Any = None  # mixer.solver.verdict.Verdict
    held_out: dict[str, Path] = field(default_factory=dict)  # held-out run name -> run.json (not fitted)
    held_out_check: dict | None = None  # predicted vs measured on them (mixer.solver.verdict.HeldOut.to_json)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95 % bootstrap intervals
    report: Path | None = None  # out/report.html, where written


# --- planning -----------------------------------------------------------------------------------

def corpus_identity(corpus: Corpus | Path) -> tuple[list[str], str]:
    """The corpus's domains and manifest sha256 (a folder is opened here; a handle is read)."""
    opened = as_corpus(corpus)
    return opened.domain_names, opened.sha256


def _seeded(spec: RunSpec, k: int) -> RunSpec:
    """Repeat k of a run: model and data seeds moved by k (repeat 0 is the run itself)."""
    if k == 0:
        return spec
    train = replace(spec.train, seed=spec.train.seed + k, data_seed=spec.train.data_seed + k)
    return replace(spec, name=f"{spec.name}~s{k}", train=train, provenance={**spec.provenance, "repeat": k})


def plan_sweep(cfg: LoopConfig, budget_tokens: int, tag: str = "") -> list[RunSpec]:
    """The base run and one run per (domain, factor) at this budget (`mixer.solver.ddo.plan`), each
    repeated `cfg.seeds` times with other seeds."""

    if cfg.seeds < 1:
        raise MixerError(f"--seeds {cfg.seeds}: need at least 1 (2 or more measure the run-to-run noise)")
    domains, sha = corpus_identity(cfg.corpus)
    try:
        planned = plan(domains, budget_tokens, base_weights=cfg.base_weights, factors=cfg.factors,
                       keep_total=cfg.keep_total)
    except ValueError as exc:
        raise MixerError(f"loop ddo: {exc}") from None
    specs = [RunSpec(corpus=str(cfg.corpus), corpus_sha256=sha, name=f"{tag}{p.name}", weights=p.weights,
                     budget_tokens=p.budget_tokens, train=cfg.train, provenance=dict(p.provenance))
             for p in planned]
    return [_seeded(s, k) for s in specs for k in range(cfg.seeds)]


def plan_validation(cfg: LoopConfig, budget_tokens: int, tag: str = "") -> list[RunSpec]:
    """`cfg.validate` held-out mixtures at this budget, drawn around the base weights
    (Dirichlet with concentration 10 per domain, seeded by the data seed), never fitted."""

    if cfg.validate < 0:
        raise MixerError(f"--validate {cfg.validate}: give 0 or more held-out mixtures")
    domains, sha = corpus_identity(cfg.corpus)
    base = np.array([(cfg.base_weights or {}).get(d, 1.0) for d in domains], float)
    base /= base.sum()
    rng = np.random.default_rng([cfg.train.data_seed, int(budget_tokens), 7])
    out = []
    for i in range(cfg.validate):
        w = rng.dirichlet(10.0 * len(domains) * base)
        out.append(RunSpec(corpus=str(cfg.corpus), corpus_sha256=sha, name=f"{tag}heldout-{i}",
                           weights={d: float(x) for d, x in zip(domains, w)}, budget_tokens=int(budget_tokens),
                           train=cfg.train, provenance={"role": "validation", "domain": None, "factor": None,
                                                        "total": None}))
    return out


# --- running, with the cache ----------------------------------------------------------------------

def sequential_backend(specs: Sequence[RunSpec], corpus: Corpus | None = None
                       ) -> Iterator[tuple[RunSpec, dict[str, bytes]]]:
    """The runs one after another in this process, sharing one opened handle per corpus
    (`corpus`: the sweep's, already opened)."""
    opened: dict[str, Corpus] = {} if corpus is None else {str(corpus.folder): corpus}
    for spec in specs:
        if spec.corpus not in opened:
            opened[spec.corpus] = Corpus.open(spec.corpus)
        yield spec, execute(spec, corpus=opened[spec.corpus])


def make_backend(cfg: LoopConfig) -> Backend:
    if cfg.batch_proxies:
        if cfg.ray is not None:
            raise MixerError("--batch-proxies trains the runs in this process; drop --ray (or --batch-proxies)")

        return BatchedBackend(cfg.batch_proxies)
    if cfg.ray is None:
        return partial(sequential_backend, corpus=cfg.corpus if isinstance(cfg.corpus, Corpus) else None)

    url = cfg.corpus.url if isinstance(cfg.corpus, Corpus) else None  # opened from a URL: workers open it too
    return RayBackend(cfg.ray, num_cpus=cfg.ray_cpus, corpus_url=url)


def run_folder(cache: Path, spec: RunSpec) -> Path:
    """`cache/<scale>/<role>-<domain>-x<factor>-s<seed>-<hash8>` (`RunSpec.folder`)."""
    return Path(cache) / spec.folder()


def run_state(cache: Path, spec: RunSpec) -> str:
    """"finished" (run.json there), "partial" (a folder or a temporary sibling left by a killed
    commit, no run.json: the next sweep cleans it up and trains the run) or "missing"."""

    folder = run_folder(cache, spec)
    if is_finished(folder):
        return "finished"
    return "partial" if folder.exists() or stale_siblings(folder) else "missing"


@dataclass(frozen=True)
class PlannedRun:
    name: str
    folder: Path
    state: str  # see `run_state`
    budget_tokens: int


def show_plan(specs: Iterable[RunSpec], cache: Path) -> list[PlannedRun]:
    """The planned runs (deduplicated by key, in plan order) and their state, training nothing."""
    unique = {s.key(): s for s in specs}
    return [PlannedRun(s.name, run_folder(cache, s), run_state(cache, s), int(s.budget_tokens))
            for s in unique.values()]


def run_all(specs: Iterable[RunSpec], cache: Path, backend: Backend, progress: bool = True,
            desc: str = "runs") -> tuple[dict[str, Path], int]:
    """Run every spec not finished in `cache`; commit each as it finishes. -> ({key: run.json}, runs trained)."""
    from tqdm.auto import tqdm

    unique = {s.key(): s for s in specs}
    done = {k: run_folder(cache, s) / "run.json" for k, s in unique.items()
            if is_finished(run_folder(cache, s))}
    todo = [s for k, s in unique.items() if k not in done]
    with tqdm(total=len(unique), initial=len(done), desc=desc, unit="run", disable=not progress,
              dynamic_ncols=True) as bar:
        for spec, files in backend(todo):
            done[spec.key()] = commit(files, run_folder(cache, spec), spec)
            bar.set_postfix_str(spec.name)
            bar.update(1)
    missing = [s.name for k, s in unique.items() if k not in done]
    if missing:
        raise MixerError(f"run {missing[0]!r} did not finish; start the loop again to resume it")
    return done, len(todo)


# --- fitting and solving ---------------------------------------------------------------------------

def solve_runs(cfg: LoopConfig, specs: Sequence[RunSpec], paths: dict[str, Path], out: Path,
               held_out: Sequence[RunSpec] = (), replicate_starts: int = REPLICATE_STARTS) -> DDOLoopResult:
    """Fit the DDO power laws on a finished sweep; write `out/weights.json` and its plots
    (`mixer.solver.solutions.ddo_solution`, the same path as `mixer solve ddo`); `held_out` runs are
    predicted, not fitted, and enter the verdict. `replicate_starts`: grid starts per bootstrap
    refit (AutoScale's scales use `TARGET_REPLICATE_STARTS`: their curves are read at the target)."""

    run_paths = {s.name: paths[s.key()] for s in specs}
    data = group_ddo(read_runs(list(run_paths.values())), metric=cfg.metric, eval_domains=cfg.eval_domains)
    checks = [read_run(paths[s.key()]) for s in held_out]
    floor = cfg.floor(len(data.domains))
    prov = {"runs": {name: _relative(p, out) for name, p in run_paths.items()},
            "corpus_sha256": specs[0].corpus_sha256, "keep_total": cfg.keep_total, "train": cfg.train.to_json(),
            "seeds": cfg.seeds, "eval_domains": None if cfg.eval_domains is None else list(cfg.eval_domains)}
    estimator = DDO(form=cfg.fit_form(), units=cfg.units, floor=floor, n_bootstrap=cfg.n_bootstrap,
                    starts=Starts(fit=cfg.n_starts, replicates=replicate_starts),
                    seed=scale_seed(cfg.train.seed, data.budget_tokens))  # independent streams per scale
    sol = ddo_solution(data, Path(out) / "weights.json", estimator=estimator, provenance=prov, plots=cfg.plots,
                       hint="add a factor (--both-directions) or more budget",
                       held_out={s.name: run for s, run in zip(held_out, checks)})
    return DDOLoopResult(weights=sol.weights, weights_path=sol.path, budget_tokens=data.budget_tokens,
                         tokens={d: w * data.budget_tokens for d, w in sol.weights.items()}, runs=run_paths,
                         estimator=sol.estimator, ran=0, plots=sol.plots, intervals=sol.intervals,
                         verdict=sol.verdict, held_out={s.name: paths[s.key()] for s in held_out},
                         held_out_check=sol.provenance.get("held_out"))


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


# --- the command --------------------------------------------------------------------------------------

def with_corpus_opened(cfg: LoopConfig) -> LoopConfig:
    """`cfg` with its corpus opened (corpus.json read once for the whole sweep; a handle is kept)."""
    return cfg if isinstance(cfg.corpus, Corpus) else replace(cfg, corpus=Corpus.open(cfg.corpus))


def loop_ddo(cfg: LoopConfig, budget_tokens: int, backend: Backend | None = None) -> DDOLoopResult:
    """Plan, run (resuming from the cache), fit and solve one DDO sweep; weights.json in `cfg.out`."""
    cfg = with_corpus_opened(cfg)
    specs = plan_sweep(cfg, budget_tokens)
    checks = plan_validation(cfg, budget_tokens)
    backend = backend or make_backend(cfg)
    paths, ran = run_all([*specs, *checks], cfg.cache_dir, backend, cfg.progress, desc=f"DDO @ {budget_tokens:,}")
    result = replace(solve_runs(cfg, specs, paths, Path(cfg.out), held_out=checks), ran=ran)
    if cfg.report:

        result = replace(result, report=ddo_report(result, Path(cfg.out) / "report.html", cfg))
    return result
