"""`mixer loop autoscale`: DDO sweeps at two or more small budgets, then AutoScale to a target.

    result = loop_autoscale(cfg, scales=[2_000_000, 4_000_000], target=64_000_000, train_target=True)
    result.weights                # predicted optimum at the target
    result.comparison             # with train_target: held-out loss of AutoScale vs uniform at the target

Every run of every scale is planned first and handed to the backend at once (on Ray they all
run in parallel); each scale's DDO optimum is written to `out/scale-<N>/weights.json`, the
AutoScale prediction to `out/weights.json` (+ `weights.weights_vs_scale.png`), the optimal mixture
for every stage of a run up to the target to `out/schedule.json` (+ `schedule.stages.png`; see
`mixer.solver.schedule`), and with `train_target` the side-by-side comparison (AutoScale's fixed
mixture, its schedule, uniform) to `out/target.json`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from mixer.core.atomic import write_json_atomic
from mixer.core.errors import MixerError
from mixer.core.units import format_count
from mixer.formats.run import load_run
from mixer.loop.report import autoscale_report
from mixer.loop.runner import RunSpec
from mixer.solver.ddo_model import TARGET_REPLICATE_STARTS
from mixer.loop.sweep import (
    Backend,
    DDOLoopResult,
    LoopConfig,
    corpus_identity,
    make_backend,
    plan_sweep,
    plan_validation,
    run_all,
    solve_runs,
    with_corpus_opened,
)
from mixer.solver.solutions import ScaleOptimum, autoscale_solution
from mixer.solver.solutions.schedule import autoscale_schedule
from mixer.solver.verdict import Recommendation


@dataclass(frozen=True)
class AutoScaleLoopResult:
    weights: dict[str, float]
    weights_path: Path
    target: int
    t: float  # AutoScale's t at the target (0 and 1 at the first two scales)
    scales: tuple[DDOLoopResult, ...]
    comparison: dict[str, Any] | None = None  # see `target_comparison`
    plots: tuple[Path, ...] = ()
    ran: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95 %, from the DDO bootstrap
    verdict: Any = None  # mixer.solver.verdict.Verdict of the extrapolation
    report: Path | None = None  # out/report.html, where written
    recommendation: Any = None  # mixer.solver.verdict.Recommendation: autoscale, direct-transfer or uniform
    notes: tuple[str, ...] = ()  # caveats for people: floored domains, the held-out scale, the recommendation
    schedule: Any = None  # mixer.formats.schedule.MixtureSchedule written to schedule.json
    schedule_path: Path | None = None


def target_specs(cfg: LoopConfig, target: int, mixtures: dict[str, dict[str, float]],
                 schedules: dict[str, Any] | None = None) -> list[RunSpec]:
    """One run at the target budget per named mixture (provenance role 'target'), and one per
    named schedule (a `MixtureSchedule`: the run follows its stages)."""
    _, sha = corpus_identity(cfg.corpus)
    specs = [RunSpec(corpus=str(cfg.corpus), corpus_sha256=sha, name=f"target-{name}", weights=w,
                     budget_tokens=int(target), train=cfg.train, provenance={"role": "target", "mixture": name})
             for name, w in mixtures.items()]
    for name, s in (schedules or {}).items():
        specs.append(RunSpec(corpus=str(cfg.corpus), corpus_sha256=sha, name=f"target-{name}",
                             weights=schedule_shares(s, target), budget_tokens=int(target), train=cfg.train,
                             provenance={"role": "target", "mixture": name},
                             schedule=[{"until_tokens": st.until_tokens, "weights": dict(st.weights)}
                                       for st in s.stages]))
    return specs


def schedule_shares(schedule, tokens: int) -> dict[str, float]:
    """Each domain's share of the first `tokens` tokens of a schedule (stages weighted by length)."""
    out = {d: 0.0 for d in schedule.domains}
    start = 0
    for st in schedule.stages:
        end = min(st.until_tokens, tokens)
        for d, w in st.weights.items():
            out[d] += w * max(0, end - start) / tokens
        start = st.until_tokens
    return out


def target_comparison(specs: Sequence[RunSpec], paths: dict[str, Path]) -> dict[str, Any]:
    """{mixture: {"final_loss": {d: l}, "mean_loss", "mean_perplexity" (mean of per-domain ppl)}}."""

    out: dict[str, Any] = {}
    for spec in specs:
        rec = load_run(paths[spec.key()])
        losses = rec.final_loss
        out[spec.provenance["mixture"]] = {
            "weights": spec.weights, "final_loss": losses, "run": str(paths[spec.key()]),
            "mean_loss": math.fsum(losses.values()) / len(losses),
            "mean_perplexity": math.fsum(math.exp(min(v, 700.0)) for v in losses.values()) / len(losses)}
    return out


def _plan(cfg: LoopConfig, scales: Sequence[int], target: int, validate_scale: int | None = None):
    """Every scale's sweep and held-out runs; bad options refused here, before anything trains.
    The target may lie anywhere above 0: between the scales AutoScale interpolates."""
    scales = sorted(int(s) for s in scales)
    if len(scales) < 2 or len(set(scales)) != len(scales):
        raise MixerError(f"--scales {','.join(map(str, scales))}: give two or more different budgets")
    if target <= 0:
        raise MixerError(f"--target {target}: must be a positive number of tokens")
    if validate_scale is not None and len(scales) < 3:
        raise MixerError(f"--validate-scale {validate_scale}: needs 3 or more --scales (2 to fit, 1 to check), "
                         f"got {len(scales)}; add a scale or leave the option out")
    if validate_scale is not None and validate_scale not in scales:
        raise MixerError(f"--validate-scale {validate_scale}: not one of --scales ({','.join(map(str, scales))}); "
                         "give one of them")
    per_scale = {s: plan_sweep(cfg, s, tag=f"{format_count(s)}/") for s in scales}
    checks = {s: plan_validation(cfg, s, tag=f"{format_count(s)}/") for s in scales}
    return scales, per_scale, checks


def plan_autoscale(cfg: LoopConfig, scales: Sequence[int], target: int,
                   validate_scale: int | None = None) -> list[RunSpec]:
    """Every run of every scale's sweep (fitted and held out); the target runs of `train_target`
    depend on the fit and are planned only after it."""
    scales, per_scale, checks = _plan(cfg, scales, target, validate_scale)
    return [x for s in scales for x in (*per_scale[s], *checks[s])]


def loop_autoscale(cfg: LoopConfig, scales: Sequence[int], target: int, train_target: bool = False,
                   backend: Backend | None = None, validate_scale: int | None = None,
                   stage_tokens: int | None = None) -> AutoScaleLoopResult:
    """`validate_scale`: one of `scales` (3+), left out of the fit and predicted (see
    `mixer.solver.solutions.autoscale_solution`). `stage_tokens`: the length of each stage of
    schedule.json (default: the smallest scale, at most 64 stages)."""

    cfg = with_corpus_opened(cfg)
    scales, per_scale, checks = _plan(cfg, scales, target, validate_scale)
    out = Path(cfg.out)
    backend = backend or make_backend(cfg)
    paths, ran = run_all([x for s in scales for x in (*per_scale[s], *checks[s])], cfg.cache_dir, backend,
                         cfg.progress, desc=f"DDO @ {len(scales)} scales")
    results = tuple(solve_runs(cfg, per_scale[s], paths, out / f"scale-{format_count(s)}", held_out=checks[s],
                               replicate_starts=TARGET_REPLICATE_STARTS) for s in scales)
    optima = [ScaleOptimum(source=str(r.weights_path), budget_tokens=s, tokens=r.tokens,
                           replicates=r.estimator.bootstrap_.samples.tolist(), intervals=r.intervals,
                           verdict=r.verdict, metric=cfg.metric, floor=cfg.floor(len(r.weights)),
                           curves=r.estimator.curves_json())
              for s, r in zip(scales, results)]
    prov = {"scales": {format_count(s): str(r.weights_path.relative_to(out)) for s, r in zip(scales, results)},
            "ddo_weights": {format_count(s): r.weights for s, r in zip(scales, results)},
            "metric": cfg.metric, "seeds": cfg.seeds}
    sol = autoscale_solution(optima, int(target), out / "weights.json", provenance=prov, plots=cfg.plots,
                             validate_scale=validate_scale, seed=cfg.train.seed)
    sched = autoscale_schedule(optima, int(target), out / "schedule.json", stage_tokens=stage_tokens,
                               seed=cfg.train.seed, plots=cfg.plots, provenance=prov)
    weights, path, plots = sol.weights, sol.path, sol.plots + sched.plots
    domains = list(weights)
    comparison = None
    if train_target:
        mixtures = {"autoscale": weights, "uniform": {d: 1 / len(domains) for d in domains}}
        specs = target_specs(cfg, target, mixtures, {"autoscale-schedule": sched.schedule})
        tpaths, tran = run_all(specs, cfg.cache_dir, backend, cfg.progress, desc=f"target @ {format_count(target)}")
        ran += tran
        comparison = target_comparison(specs, tpaths)

        write_json_atomic(out / "target.json", {"target_tokens": int(target), "mixtures": comparison})
    result = AutoScaleLoopResult(weights=weights, weights_path=path, target=int(target),
                                 t=sol.provenance["t_target"], scales=results, comparison=comparison, plots=plots,
                                 ran=ran, intervals=sol.intervals, verdict=sol.verdict, notes=sol.notes,
                                 recommendation=Recommendation(sol.recommended, sol.recommended_weights,
                                                               sol.provenance["recommended"]["why"]),
                                 schedule=sched.schedule, schedule_path=sched.path)
    if cfg.report:


        result = replace(result, report=autoscale_report(result, out / "report.html", cfg))
    return result
