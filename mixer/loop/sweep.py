"""`mixer loop ddo`: plan the proxy runs, run them (cached), fit, solve, write weights.json.

    cfg = LoopConfig(corpus="corpus/", out="loop/", train=TrainSpec(model="gpt2", preset="tiny"))
    result = loop_ddo(cfg, budget_tokens=2_000_000)
    result.weights            # {domain: w}, on the simplex
    result.weights_path       # loop/weights.json (+ weights.fits.png, weights.pred_vs_meas.png)

Layout of `out`::

    runs/<key>/run.json       # one folder per finished run; <key> = sha256 of its inputs (RunSpec.key)
    runs/<key>/spec.json      #   the inputs themselves, for people
    weights.json              # the DDO optimum (or scale-<N>/weights.json for `loop autoscale`)

The cache: a run folder appears only complete (it is written under a temporary name and renamed,
run.json last), so `is_finished` is simply "run.json exists". A sweep that is interrupted and
started again skips every finished run and runs only the rest; changing anything that enters
the key (corpus, weights, budget, model, preset, seeds, trainer settings) runs afresh.
Runs execute one by one in this process, or as Ray tasks (`ray="local"|"auto"|ADDRESS`, see
`mixer.loop.ray_backend`); both give bitwise equal run.json losses and so the same weights.json.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from mixer.core.errors import MixerError
from mixer.loop.runner import RunSpec, TrainSpec, commit, execute, is_finished

# backend(specs) yields (spec, files) as each run finishes, in any order.
Backend = Callable[[Sequence[RunSpec]], Iterator[tuple[RunSpec, dict[str, bytes]]]]


@dataclass(frozen=True)
class LoopConfig:
    corpus: Path  # prepared corpus (`mixer prepare`)
    out: Path  # weights.json, plots and the run cache go here
    train: TrainSpec = field(default_factory=TrainSpec)  # model, preset, seeds, trainer settings
    factors: tuple[float, ...] = (3.0,)  # DDO perturbations of each domain's weight (authors: 3 and 1/5)
    keep_total: bool = True  # True: others rescaled, budget fixed (§2.2); False: budget grows (Algorithm 1)
    base_weights: dict[str, float] | None = None  # None: uniform
    form: str | None = None  # "shifted" | "plain"; None: shifted with >= 2 factors, plain with one
    units: str = "authors"  # fit x = tokens/(N/m), y = L/L_base (the authors'), or "raw"
    floor_uniform: float | None = 0.2  # weight floor as a fraction of 1/m (the authors' 0.2; AutoScale needs > 0)
    n_bootstrap: int = 200  # bootstrap replicates for intervals (when the fits allow any)
    n_starts: int | None = None  # power-law fit starts kept from the solver's grid (None: all 30; fewer is faster)
    cache: Path | None = None  # run cache; None: out/runs (share one between sweeps to reuse runs)
    ray: str | None = None  # None: sequential; "local": start a local cluster; "auto" or an address: join
    ray_cpus: int | None = None  # CPUs of a local cluster (None: all)
    plots: bool = True
    progress: bool = True

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
    estimator: Any  # the fitted solver.ddo_model.DDO
    ran: int  # runs trained now (the rest came from the cache)
    plots: tuple[Path, ...] = ()
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95 % bootstrap intervals


# --- planning -----------------------------------------------------------------------------------

def corpus_identity(corpus: Path) -> tuple[list[str], str]:
    from mixer.formats.corpus import load_manifest, manifest_sha256

    return load_manifest(corpus).domain_names, manifest_sha256(corpus)


def plan_sweep(cfg: LoopConfig, budget_tokens: int, tag: str = "") -> list[RunSpec]:
    """The base run and one run per (domain, factor) at this budget (`solver.ddo.plan`)."""
    from solver.ddo import plan

    domains, sha = corpus_identity(cfg.corpus)
    try:
        planned = plan(domains, budget_tokens, base_weights=cfg.base_weights, factors=cfg.factors,
                       keep_total=cfg.keep_total)
    except ValueError as exc:
        raise MixerError(f"loop ddo: {exc}") from None
    return [RunSpec(corpus=str(cfg.corpus), corpus_sha256=sha, name=f"{tag}{p.name}", weights=p.weights,
                    budget_tokens=p.budget_tokens, train=cfg.train, provenance=dict(p.provenance))
            for p in planned]


# --- running, with the cache ----------------------------------------------------------------------

def sequential_backend(specs: Sequence[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, bytes]]]:
    for spec in specs:
        yield spec, execute(spec)


def make_backend(cfg: LoopConfig) -> Backend:
    if cfg.ray is None:
        return sequential_backend
    from mixer.loop.ray_backend import RayBackend

    return RayBackend(cfg.ray, num_cpus=cfg.ray_cpus)


def run_folder(cache: Path, spec: RunSpec) -> Path:
    return Path(cache) / spec.key()[:24]


def run_all(specs: Iterable[RunSpec], cache: Path, backend: Backend, progress: bool = True,
            desc: str = "runs") -> tuple[dict[str, Path], int]:
    """Run every spec not finished in `cache`; commit each as it finishes. -> ({key: run.json}, runs trained)."""
    from tqdm.auto import tqdm

    unique = {s.key(): s for s in specs}
    done = {k: run_folder(cache, s) / "run.json" for k, s in unique.items() if is_finished(run_folder(cache, s))}
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

def solve_runs(cfg: LoopConfig, specs: Sequence[RunSpec], paths: dict[str, Path], out: Path) -> DDOLoopResult:
    """Fit the DDO power laws on a finished sweep; write `out/weights.json` and its plots
    (`solver.solutions.ddo_solution`, the same path as `mixer solve ddo`)."""
    from solver.runs import group_ddo, read_runs
    from solver.solutions import ddo_solution

    run_paths = {s.name: paths[s.key()] for s in specs}
    data = group_ddo(read_runs(list(run_paths.values())))
    floor = cfg.floor_uniform / len(data.domains) if cfg.floor_uniform else None
    prov = {"runs": {name: _relative(p, out) for name, p in run_paths.items()},
            "corpus_sha256": specs[0].corpus_sha256, "keep_total": cfg.keep_total, "train": asdict(cfg.train)}
    sol = ddo_solution(data, Path(out) / "weights.json", form=cfg.fit_form(), units=cfg.units, floor=floor,
                       n_bootstrap=cfg.n_bootstrap, n_starts=cfg.n_starts, seed=cfg.train.seed, provenance=prov,
                       plots=cfg.plots, hint="add a factor (--both-directions) or more budget")
    return DDOLoopResult(weights=sol.weights, weights_path=sol.path, budget_tokens=data.budget_tokens,
                         tokens={d: w * data.budget_tokens for d, w in sol.weights.items()}, runs=run_paths,
                         estimator=sol.estimator, ran=0, plots=sol.plots, intervals=sol.intervals)


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


# --- the command --------------------------------------------------------------------------------------

def loop_ddo(cfg: LoopConfig, budget_tokens: int, backend: Backend | None = None) -> DDOLoopResult:
    """Plan, run (resuming from the cache), fit and solve one DDO sweep; weights.json in `cfg.out`."""
    specs = plan_sweep(cfg, budget_tokens)
    backend = backend or make_backend(cfg)
    paths, ran = run_all(specs, cfg.cache_dir, backend, cfg.progress, desc=f"DDO @ {budget_tokens:,}")
    result = solve_runs(cfg, specs, paths, Path(cfg.out))
    return replace(result, ran=ran)
