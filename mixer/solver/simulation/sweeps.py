"""Whole DDO sweeps simulated from known laws: the answer is known, so intervals, the gain and the
verdict can be checked against it (the calibration benchmark, `bench.calibration`), and a user
can size a sweep before paying for it (`mixer solve power`).

The truth is the model DDO fits, in its units (x = a domain's tokens / (N/m), y = the mean
held-out metric / its value at uniform): `y(x) = 1 + sum_j [(n0_j + x_j)^(-b_j) - (n0_j + 1)^(-b_j)]`,
additive over domains. A sweep is planned exactly as the loop plans it (`mixer.solver.ddo.plan`),
every planned run is repeated with `seeds` seeds, and each run's y gets independent Gaussian
noise of standard deviation `noise` (a fraction of the base metric: 0.005 is half a percent of
the loss), plus, optionally, one Gaussian offset per seed shared by every run of that seed
(`SweepNoise.seed`: real proxies trained with the same model and data seeds land high or low together:
`mixer.solver.runs.block_seeds`). The runs come back as `mixer.solver.runs.Run` objects with metric "loss", so the same
`group_ddo` -> `DDO.fit` -> `ddo_verdict` path that reads real run.json files judges them.

Laws: `identical` (every domain the same: the optimum is uniform and no mixture beats it),
`random` (n0 log-uniform on [0.3, 3], b uniform on [0.02, 0.3]: effects of a few percent, as
on real proxies), `useless` (random, plus one domain whose curve is flat: its optimum is the
floor). `scaled_to_gain` stretches every b by one factor until the true optimum beats uniform
by a given gain, for power curves.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np

from mixer.solver.ddo import plan, solve_ddo
from mixer.solver.ddo_model import DDO
from mixer.solver.numerics.root import bracketed_newton
from mixer.solver.runs import Run, group_ddo
from mixer.solver.verdict import ddo_verdict

BASE_LOSS = 3.0  # the base run's loss in nats (y is relative to it: any value gives the same fits)
BUDGET_PER_DOMAIN = 1_000_000  # tokens per domain at uniform: the units only (y does not depend on it)


@dataclass(frozen=True)
class TrueLaw:
    """Known per-domain curves of the mean held-out metric (fit units; see the module docstring)."""
    n0: np.ndarray
    b: np.ndarray

    @property
    def m(self) -> int:
        return int(self.n0.size)

    def y(self, x: np.ndarray) -> float:
        x = np.asarray(x, float)
        return float(1.0 + np.sum((self.n0 + x) ** (-self.b) - (self.n0 + 1.0) ** (-self.b)))

    def optimum(self, floor: float | None = None) -> np.ndarray:
        """True optimal weights (floor: the weight floor, as `DDO(floor=...)` takes it)."""
        lower = None if floor is None else np.full(self.m, floor * self.m)
        return solve_ddo(self.n0, self.b, float(self.m), lower=lower).weights

    def gain(self, weights: np.ndarray, reference: np.ndarray | None = None) -> float:
        """True y at `reference` (uniform) minus at `weights`: > 0 when `weights` are better."""
        ref = np.full(self.m, 1.0 / self.m) if reference is None else np.asarray(reference, float)
        return self.y(ref * self.m) - self.y(np.asarray(weights, float) * self.m)


def identical_law(m: int, *, n0: float = 1.0, b: float = 0.1) -> TrueLaw:
    return TrueLaw(n0=np.full(m, n0), b=np.full(m, b))


def random_law(m: int, rng: np.random.Generator) -> TrueLaw:
    return TrueLaw(n0=np.exp(rng.uniform(np.log(0.3), np.log(3.0), m)), b=rng.uniform(0.02, 0.3, m))


def useless_law(m: int, rng: np.random.Generator) -> TrueLaw:
    """`m - 1` random domains and a last one whose tokens do nothing for the metric (b = 0)."""
    law = random_law(m, rng)
    b = law.b.copy()
    b[-1] = 0.0
    return TrueLaw(n0=law.n0, b=b)


def scaled_to_gain(law: TrueLaw, gain: float, *, floor: float | None = None) -> TrueLaw:
    """The same shapes with every b multiplied by one factor so that the true optimum beats
    uniform by `gain` (fit units). Raises ValueError when no factor reaches it."""
    def g(log_s: float) -> tuple[float, float]:
        scaled = TrueLaw(n0=law.n0, b=law.b * np.exp(log_s))
        return scaled.gain(scaled.optimum(floor)) - gain, float("nan")

    # The gain is 0 at s -> 0 and rises with s, but not for ever (for n0 > 1 very steep curves
    # vanish): scan up for the first factor that reaches it, then bisect below it.
    grid = np.linspace(-12.0, 4.0, 65)
    above = [i for i, v in enumerate(grid) if g(v)[0] >= 0]
    if not above or above[0] == 0:
        raise ValueError(f"no scaling of these curves gives a gain of {gain:g}; draw other laws")
    log_s, _ = bracketed_newton(g, grid[above[0] - 1], grid[above[0]], xtol=1e-12)
    return TrueLaw(n0=law.n0, b=law.b * np.exp(log_s))


@dataclass(frozen=True)
class SweepNoise:
    """Noise of simulated runs (fit units): `run`, each run's own; `seed`, the sd of each seed's
    offset shared by every run of that seed."""
    run: float
    seed: float = 0.0


def simulate_sweep(law: TrueLaw, rng: np.random.Generator, *, factors: Sequence[float], seeds: int,
                   noise: float | SweepNoise, keep_total: bool = False,
                   domains: Sequence[str] | None = None, budget: int | None = None) -> list[Run]:
    """The runs of one DDO sweep drawn from `law` (see the module docstring); `law` is anything
    with `m` and `y(x)` (`mixer.solver.simulation.scales` passes one scale of a law in tokens);
    `noise`: each run's sd, or a `SweepNoise` with seeds' shared offsets too."""
    noise = noise if isinstance(noise, SweepNoise) else SweepNoise(float(noise))
    names = list(domains or [f"d{i}" for i in range(law.m)])
    budget = int(budget or BUDGET_PER_DOMAIN * law.m)
    unit = budget / law.m
    # drawn only when asked for, so that sweeps without it keep their random streams
    shared = noise.seed * rng.standard_normal(seeds) if noise.seed > 0 else np.zeros(seeds)
    runs = []
    for p in plan(names, budget, factors=factors, keep_total=keep_total):
        tokens = {d: max(1, int(round(w * p.budget_tokens))) for d, w in p.weights.items()}
        y = law.y(np.array([tokens[d] for d in names]) / unit)
        for k in range(seeds):
            loss = BASE_LOSS * (y + noise.run * rng.standard_normal() + shared[k])
            prov = p.provenance
            runs.append(Run(path=f"{p.name}-s{k}", corpus_sha256="simulated", budget_tokens=p.budget_tokens,
                            weights=dict(p.weights), tokens_per_domain=tokens, final_loss={d: loss for d in names},
                            seed=k, role=prov["role"], domain=prov["domain"], factor=prov["factor"],
                            total=prov["total"]))
    return runs


@dataclass(frozen=True)
class Outcome:
    """One simulated sweep judged against its known answer."""
    supported: bool
    covered: np.ndarray  # per domain: the 95 % interval holds the true optimal weight (NaN: no interval)
    width: np.ndarray  # per domain: interval width (NaN: none)
    gain_covered: float  # the gain interval holds the true gain of the returned weights (NaN: none)
    true_gain: float  # true gain over uniform of the returned weights
    fitted_gain: float  # the fit's gain over uniform of the returned weights
    optimum_gain: float  # true gain over uniform of the true optimum
    error: float  # max |returned - true optimal| weight
    reasons: tuple[str, ...]


WEIGHT_TOL = 1e-6  # an interval "covers" a weight within this (exact, noise-free answers)


def judge(law: TrueLaw, runs: list[Run], *, floor: float | None, n_bootstrap: int, seed: int,
          seed_blocks: bool = True) -> Outcome:
    """Fit the sweep as `mixer solve ddo` does and compare every figure with the truth."""

    data = group_ddo(runs, metric="loss", seed_blocks=seed_blocks)
    est = DDO(floor=floor, n_bootstrap=n_bootstrap, seed=seed).fit(data)
    verdict = ddo_verdict(est)
    truth = law.optimum(floor)
    w = np.array([est.weights_[d] for d in data.domains])
    lo = np.array([est.intervals_[d][0] for d in data.domains])
    hi = np.array([est.intervals_[d][1] for d in data.domains])
    covered = np.where(np.isnan(lo), np.nan, (lo - WEIGHT_TOL <= truth) & (truth <= hi + WEIGHT_TOL))
    g = est.gains_["uniform"]
    true_gain = law.gain(w)
    gain_cov = float("nan") if g.low != g.low else float(g.low - 1e-9 <= true_gain <= g.high + 1e-9)
    return Outcome(supported=verdict.supported, covered=covered, width=hi - lo, gain_covered=gain_cov,
                   true_gain=true_gain, fitted_gain=g.estimate, optimum_gain=law.gain(truth), error=float(np.max(np.abs(w - truth))),
                   reasons=verdict.reasons)


@dataclass(frozen=True)
class Setting:
    """A family of simulated sweeps: `law` "identical" | "random" | "useless", or "gain" (random
    shapes scaled so the true optimum beats uniform by `gain`)."""
    law: str
    m: int = 3
    noise: float = 0.005
    seeds: int = 2
    gain: float | None = None
    factors: tuple[float, ...] = (1 / 3, 2.0, 4.0)
    keep_total: bool = False
    floor_uniform: float = 0.2
    seed_noise: float = 0.0  # sd of each seed's offset shared by its runs (fit units)
    seed_blocks: bool = True  # the estimator takes each seed's offset off first (`group_ddo(seed_blocks=...)`)

    @property
    def name(self) -> str:
        extra = f", gain {self.gain:g}" if self.gain is not None else ""
        total = f", fixed totals, factors {', '.join(f'{f:.3g}' for f in self.factors)}" if self.keep_total else ""
        shared = f", seed offsets {self.seed_noise:g}" if self.seed_noise else ""
        blocks = "" if self.seed_blocks else ", seeds not blocked"
        return f"{self.law}, m={self.m}, noise {self.noise:g}, seeds {self.seeds}{extra}{total}{shared}{blocks}"

    def draw(self, rng: np.random.Generator) -> TrueLaw:
        if self.law == "identical":
            return identical_law(self.m)
        if self.law == "random":
            return random_law(self.m, rng)
        if self.law == "useless":
            return useless_law(self.m, rng)
        if self.law == "gain":
            for _ in range(100):
                try:
                    return scaled_to_gain(random_law(self.m, rng), float(self.gain), floor=self.floor_uniform / self.m)
                except ValueError:
                    continue
            raise ValueError(f"gain {self.gain:g}: no random law reaches it")
        raise ValueError(f"law {self.law!r}: expected identical, random, useless or gain")


def run_sweep(setting: Setting, index: int, *, seed: int = 0, n_bootstrap: int = 200) -> Outcome:
    """Sweep `index` of `setting`: its own random stream, so any subset reruns identically."""
    rng = np.random.default_rng([seed, index, setting.m, int(setting.noise * 1e6), setting.seeds])
    law = setting.draw(rng)
    runs = simulate_sweep(law, rng, factors=setting.factors, seeds=setting.seeds,
                          noise=SweepNoise(setting.noise, setting.seed_noise), keep_total=setting.keep_total)
    return judge(law, runs, floor=setting.floor_uniform / setting.m, n_bootstrap=n_bootstrap, seed=index,
                 seed_blocks=setting.seed_blocks)


@dataclass(frozen=True)
class Summary:
    """What `sweeps` simulated sweeps of one setting gave, against the known answers."""
    setting: Setting
    sweeps: int
    coverage: float  # share of reported weight intervals holding the true optimal weight (NaN: none reported)
    reported: float  # share of sweeps with an interval on every weight
    mean_width: float
    supported: float  # share of sweeps whose verdict is supported
    supported_worse: float  # share of sweeps supported although the returned weights are worse than uniform
    gain_coverage: float  # share of gain intervals holding the returned weights' true gain
    optimum_gain: float  # mean true gain of the true optimum over uniform
    gain_se: float  # sd over sweeps of the fitted gain's error: the gain's standard error
    mean_error: float  # mean max |returned - true| weight

    def to_json(self) -> dict:
        return {"setting": self.setting.name, "sweeps": self.sweeps, "coverage": self.coverage,
                "reported": self.reported, "mean_width": self.mean_width, "supported": self.supported,
                "supported_worse": self.supported_worse, "gain_coverage": self.gain_coverage,
                "optimum_gain": self.optimum_gain, "gain_se": self.gain_se, "mean_error": self.mean_error}


def summarise(setting: Setting, outcomes: Sequence[Outcome]) -> Summary:
    cov = np.concatenate([o.covered for o in outcomes])
    reported = np.array([not np.isnan(o.covered).any() for o in outcomes])
    widths = np.concatenate([o.width for o in outcomes])
    gc = np.array([o.gain_covered for o in outcomes])
    sup = np.array([o.supported for o in outcomes])
    worse = np.array([o.true_gain < 0 for o in outcomes])
    np.array([o.true_gain - o.optimum_gain for o in outcomes])
    with np.errstate(all="ignore"):
        return Summary(setting=setting, sweeps=len(outcomes),
                       coverage=float(np.nanmean(cov)) if np.isfinite(cov).any() else float("nan"),
                       reported=float(reported.mean()),
                       mean_width=float(np.nanmean(widths)) if np.isfinite(widths).any() else float("nan"),
                       supported=float(sup.mean()), supported_worse=float((sup & worse).mean()),
                       gain_coverage=float(np.nanmean(gc)) if np.isfinite(gc).any() else float("nan"),
                       optimum_gain=float(np.mean([o.optimum_gain for o in outcomes])),
                       gain_se=float(np.std([o.fitted_gain - o.true_gain for o in outcomes], ddof=1))
                       if len(outcomes) > 1 else float("nan"),
                       mean_error=float(np.mean([o.error for o in outcomes])))


def simulate_setting(setting: Setting, sweeps: int, *, seed: int = 0, n_bootstrap: int = 200,
                     workers: int = 1) -> Summary:
    """`sweeps` sweeps of `setting`, on `workers` processes (the same numbers whatever their count)."""
    if workers > 1:

        with ProcessPoolExecutor(workers) as pool:
            outcomes = list(pool.map(partial(run_sweep, setting, seed=seed, n_bootstrap=n_bootstrap), range(sweeps),
                                     chunksize=max(1, sweeps // (4 * workers))))
    else:
        outcomes = [run_sweep(setting, i, seed=seed, n_bootstrap=n_bootstrap) for i in range(sweeps)]
    return summarise(setting, outcomes)
