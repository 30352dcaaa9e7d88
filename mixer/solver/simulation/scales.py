"""Whole AutoScale studies simulated from a known law: a DDO sweep at every scale, each fitted and
judged as `mixer solve ddo` does, then `autoscale_solution` to a target, all compared with the
truth at the target. The AutoScale rows of the calibration benchmark (`bench.calibration`).

The law is in absolute tokens, in DDO's own curve family, in units of the largest scale's base
run: the mean held-out metric of tokens t is `L(t) = 1 + sum_j [(nu_j + t_j / U)^(-b_j) - (nu_j + 1)^(-b_j)]`
with U = the largest scale's budget / m (so L = 1 at uniform there). The largest scale's fitted
curves are of the right form; every smaller scale's only approximately (the same law seen through
another unit has an amplitude DDO's form cannot express: as with real runs, its optimum is
biased). Every run's y is 1 + L(run) - L(uniform at its budget), its noise a fraction of that base. "bent": every exponent drifts with the budget n the loss is
measured at, b_j(n) = b_j (1 + bend ln(n / top)), so the largest scale's curves are wrong at the
target by an amount the bootstrap knows nothing about. The true optimum at any budget is DDO's
solution of the law there (`solve_ddo` in U units), so every figure at the target is exact.
"""
from __future__ import annotations

import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from mixer.solver.ddo import solve_ddo
from mixer.solver.ddo_model import DDO, TARGET_REPLICATE_STARTS, Starts
from mixer.solver.intervals import scale_seed
from mixer.solver.runs import group_ddo
from mixer.solver.simulation.sweeps import simulate_sweep
from mixer.solver.solutions import ScaleOptimum, autoscale_solution
from mixer.solver.solutions.autoscale import AUTO_OVER_DT, AUTO_OVER_UNIFORM, DT_OVER_UNIFORM
from mixer.solver.verdict import ddo_verdict


@dataclass(frozen=True)
class ScaledLaw:
    """The law above: `nu`, `b` per domain, `top` the largest scale's budget, `bend` the drift."""
    nu: np.ndarray
    b: np.ndarray
    top: float
    bend: float = 0.0

    @property
    def m(self) -> int:
        return int(self.nu.size)

    def exponents(self, n: float) -> np.ndarray:
        return self.b * (1.0 + self.bend * np.log(n / self.top))

    def metric(self, x: np.ndarray, n: float) -> float:
        """L at x (tokens / (n/m), as DDO counts them at budget n)."""
        b = self.exponents(n)
        return float(1.0 + np.sum((self.nu + np.asarray(x, float) * (n / self.top)) ** (-b) - (self.nu + 1.0) ** (-b)))

    def loss(self, weights: np.ndarray, n: float) -> float:
        return self.metric(np.asarray(weights, float) * self.m, n)

    def optimum(self, n: float, floor: float | None = None) -> np.ndarray:
        total = self.m * n / self.top
        lower = None if floor is None else np.full(self.m, floor * total)
        return solve_ddo(self.nu, self.exponents(n), total, lower=lower).weights


@dataclass(frozen=True)
class AtScale:
    """One scale of a `ScaledLaw` as `simulate_sweep` reads a law: y relative to uniform there."""
    law: ScaledLaw
    n: float

    @property
    def m(self) -> int:
        return self.law.m

    def y(self, x: np.ndarray) -> float:
        return 1.0 + self.law.metric(x, self.n) - self.law.metric(np.ones(self.m), self.n)


@dataclass(frozen=True)
class ScalesSetting:
    """A family of AutoScale studies: `scales` budgets `step` apart, the target `reach` times the
    largest; random laws (nu log-uniform on [0.03, 0.3], b uniform on [0.1, 0.6])."""
    scales: int = 2
    bend: float = 0.0
    m: int = 3
    noise: float = 0.005
    seeds: int = 2
    step: float = 4.0
    reach: float = 8.0
    factors: tuple[float, ...] = (1 / 3, 2.0, 4.0)
    nu_range: tuple[float, float] = (0.03, 0.3)
    b_range: tuple[float, float] = (0.1, 0.6)

    @property
    def name(self) -> str:
        return (f"AutoScale, {self.scales} scales x{self.step:g} apart, target x{self.reach:g}, "
                f"{'bent' if self.bend else 'exact'} law, m={self.m}, noise {self.noise:g}, seeds {self.seeds}")

    @property
    def floor(self) -> float:
        """Every scale's DDO weight floor: a fifth of uniform, the authors' (`--floor-uniform 0.2`)."""
        return 0.2 / self.m

    def budgets(self) -> list[int]:
        return [int(10**6 * self.step ** k) for k in range(self.scales)]

    def draw(self, rng: np.random.Generator, top: float) -> ScaledLaw:
        return ScaledLaw(nu=np.exp(rng.uniform(*np.log(self.nu_range), self.m)),
                         b=rng.uniform(*self.b_range, self.m), top=top, bend=self.bend)


@dataclass(frozen=True)
class StudyOutcome:
    supported: bool
    recommended: str
    true_gains: dict          # {comparison: true gain at the target, units of the largest base}
    predicted: dict           # {comparison: the predicted gain (the fitted curves' estimate)}
    corrected: dict           # {comparison: (corrected gain, its standard error)}
    gain_covered: dict        # {comparison: the 95 % interval holds it (NaN: no interval)}
    weights_covered: np.ndarray  # per domain: AutoScale's interval holds the true optimum at the target
    chain_covered: np.ndarray    # the same for the interval of each of its two models alone (NaN: none)
    curves_covered: np.ndarray
    regret: float             # true loss of the recommended weights minus the best of the three choices


def measure_scales(setting: ScalesSetting, law: ScaledLaw, rng: np.random.Generator, *, seed: int,
                   n_bootstrap: int) -> list[ScaleOptimum]:
    """A simulated DDO sweep at every scale of `setting`, fitted and judged as `mixer loop autoscale`
    fits its scales (all grid starts per bootstrap refit; each budget its own bootstrap seed), with
    `setting.floor`."""
    floor = setting.floor
    optima = []
    for n in setting.budgets():
        runs = simulate_sweep(AtScale(law, n), rng, factors=setting.factors, seeds=setting.seeds,
                              noise=setting.noise, budget=n)
        est = DDO(floor=floor, n_bootstrap=n_bootstrap, seed=scale_seed(seed, n),
                  starts=Starts(replicates=TARGET_REPLICATE_STARTS)).fit(group_ddo(runs, "loss"))
        optima.append(ScaleOptimum(source=f"sim-{n}", budget_tokens=n, tokens=dict(est.tokens_),
                                   replicates=est.bootstrap_.samples.tolist(), intervals=dict(est.intervals_),
                                   verdict=ddo_verdict(est), metric="loss", floor=floor, curves=est.curves_json()))
    return optima


def run_study(setting: ScalesSetting, index: int, *, seed: int = 0, n_bootstrap: int = 200) -> StudyOutcome:
    """Study `index` of `setting`, on its own random stream."""
    rng = np.random.default_rng([seed, index, setting.scales, int(setting.bend * 1000), setting.m, 17])
    budgets = setting.budgets()
    law = setting.draw(rng, float(budgets[-1]))
    floor = setting.floor
    optima = measure_scales(setting, law, rng, seed=seed + index, n_bootstrap=n_bootstrap)
    target = int(budgets[-1] * setting.reach)
    with tempfile.TemporaryDirectory() as tmp:
        sol = autoscale_solution(optima, target, Path(tmp) / "w.json", plots=False, seed=seed + index)
    domains = list(optima[0].tokens)
    auto = np.array([sol.weights[d] for d in domains])
    direct = np.array([optima[-1].tokens[d] for d in domains]) / budgets[-1]
    uniform = np.full(law.m, 1.0 / law.m)
    unit = law.loss(uniform, budgets[-1])   # the predicted gains' unit: the largest scale's base metric (1)
    L = {"autoscale": law.loss(auto, target), "direct-transfer": law.loss(direct, target),
         "uniform": law.loss(uniform, target)}
    true = {AUTO_OVER_UNIFORM: (L["uniform"] - L["autoscale"]) / unit,
            AUTO_OVER_DT: (L["direct-transfer"] - L["autoscale"]) / unit,
            DT_OVER_UNIFORM: (L["uniform"] - L["direct-transfer"]) / unit}
    gains = sol.provenance["target_gain"]
    covered = {k: (float("nan") if not gains or gains[k]["sd"] != gains[k]["sd"]
                   else float(gains[k]["interval"][0] <= v <= gains[k]["interval"][1])) for k, v in true.items()}
    opt = law.optimum(target, floor)
    at_target = sol.provenance.get("curves_at_target") or {}
    wcov, chain_cov, curves_cov = (_covered(iv, opt, domains) for iv in
                                   (sol.intervals, sol.provenance["chain_intervals"], at_target.get("intervals", {})))
    return StudyOutcome(supported=sol.verdict.supported, recommended=str(sol.recommended), true_gains=true,
                        predicted={k: g["estimate"] for k, g in gains.items()},
                        corrected={k: (g["corrected"], g["sd"]) for k, g in gains.items()},
                        gain_covered=covered, weights_covered=wcov, chain_covered=chain_cov,
                        curves_covered=curves_cov,
                        regret=(L[str(sol.recommended)] - min(L.values())) / unit)


def _covered(intervals, opt: np.ndarray, domains: list[str]) -> np.ndarray:
    """Per domain: 1.0 when its interval holds the true optimum, NaN when it has none."""
    return np.array([(intervals[d][0] - 1e-6 <= opt[j] <= intervals[d][1] + 1e-6) if d in intervals else np.nan
                     for j, d in enumerate(domains)], float)


def _rate(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def summarise_studies(setting: ScalesSetting, outcomes: Sequence[StudyOutcome]) -> dict:
    """The figures the calibration targets are judged on."""
    sup = np.array([o.supported for o in outcomes])
    wrong = np.array([o.true_gains[AUTO_OVER_UNIFORM] <= 0 or o.true_gains[AUTO_OVER_DT] <= 0 for o in outcomes])
    cov = np.array([v for o in outcomes for v in o.gain_covered.values()], float)
    wcov = np.concatenate([o.weights_covered for o in outcomes])
    chain_cov = np.concatenate([o.chain_covered for o in outcomes])
    curves_cov = np.concatenate([o.curves_covered for o in outcomes])
    rec = [o.recommended for o in outcomes]
    with np.errstate(all="ignore"):
        return {"setting": setting.name, "sweeps": len(outcomes), "supported": float(sup.mean()),
                "supported_wrong": float((sup & wrong).mean()),
                "gain_coverage": _rate(cov),
                "coverage": _rate(wcov), "chain_coverage": _rate(chain_cov), "curves_coverage": _rate(curves_cov),
                "autoscale_truly_better": float((~wrong).mean()),
                "recommended": {c: rec.count(c) / len(rec) for c in ("autoscale", "direct-transfer", "uniform")},
                "mean_regret": float(np.mean([o.regret for o in outcomes]))}


def simulate_studies(setting: ScalesSetting, studies: int, *, seed: int = 0, n_bootstrap: int = 200,
                     workers: int = 1) -> dict:
    """`studies` studies of `setting` on `workers` processes (the same numbers whatever their count)."""
    run = partial(run_study, setting, seed=seed, n_bootstrap=n_bootstrap)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            outcomes = list(pool.map(run, range(studies), chunksize=max(1, studies // (4 * workers))))
    else:
        outcomes = [run(i) for i in range(studies)]
    return summarise_studies(setting, outcomes)
