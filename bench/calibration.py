"""Calibration of DDO's intervals and verdict against known answers (`mixer.solver.simulation`).

    python -m bench.calibration [--sweeps 200] [--workers 2] [--quick] [--plot PATH]

Every row is `--sweeps` whole sweeps simulated from known per-domain power laws with Gaussian
run-to-run noise, each fitted and judged exactly as `mixer solve ddo` does (grown totals,
factors 1/3, 2, 4, the authors' floor 0.2/m, 200 bootstrap replicates), and compared with the
true optimum. Rows: m = 3, 5, 7 domains with identical laws (no mixture beats uniform), random
laws and a planted useless domain; noise from 0 to larger than the effects; seeds 1-3; the
fixed-total design; and the power curve (random shapes scaled to a known gain over uniform).

Targets, each printed with its figure, met or MISSED:
  * coverage: the 95 % weight intervals hold the true optimum in 90-98 % of cases, in every row
    where intervals are reported (an exact, noise-free answer counts within 1e-6);
  * false supported: <= 5 % of sweeps say `supported` where the true optimum beats uniform by no
    more than the gain's standard error (identical laws; the power curve's low end), and in
    every row <= 5 % say `supported` while the returned weights are worse than uniform;
  * power: >= 80 % `supported` where the true gain is >= 4 standard errors;
  * bias: noise-free, the grown design returns the true optimum (max error < 1e-3).
The gain's standard error is measured, per row, as the spread over sweeps of the fitted gain's
error. Results: bench/results/calibration.json (+ a power-curve plot).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


import numpy as np

from bench.common import machine
from mixer.solver import ddo_model, verdict  # noqa: F401  (loaded once: every worker runs the same code)
from mixer.solver.simulation.sweeps import Setting, Summary, simulate_setting
from mixer.solver.simulation.scales import simulate_studies

RESULTS = Path(__file__).parent / "results"
POWER_GAINS = (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08)


def settings(quick: bool) -> list[tuple[str, Setting]]:
    rows = [(f"m={m}", Setting(law, m=m)) for m in ((3,) if quick else (3, 5, 7))
            for law in ("identical", "random", "useless")]
    noises = (0.0, 0.02) if quick else (0.0, 0.002, 0.02, 0.05)
    rows += [("noise", Setting("random", noise=n)) for n in noises]
    rows += [("seeds", Setting("random", seeds=k)) for k in ((1,) if quick else (1, 3))]
    rows += [("design", Setting("random", noise=0.0, seeds=1, keep_total=True, factors=(1 / 3, 2.0, 2.5))),
             ("design", Setting("random", noise=0.0, seeds=1))]
    rows += [("power", Setting("gain", noise=0.01, gain=g)) for g in (POWER_GAINS[1::2] if quick else POWER_GAINS)]
    # seeds landing high or low in every run they train (twice the run-to-run noise, as the CPU
    # controls measured): taken off by default (`block_seeds`), and left in for comparison
    rows += [("offsets", Setting(law, seed_noise=SEED_OFFSETS, seeds=k)) for law, k in
             ((("random", 2),) if quick else (("identical", 2), ("random", 2), ("random", 3)))]
    rows += [("offsets", Setting("random", seed_noise=SEED_OFFSETS, seed_blocks=False))]
    return rows


SEED_OFFSETS = 0.01  # sd of a seed's shared offset in the "offsets" rows (run-to-run noise 0.005)


def check(group: str, s: Summary) -> list[tuple[str, str, bool]]:
    """(target, figure, met) for every target this row speaks to."""
    out = []
    if not s.setting.seed_blocks:
        return [("seed offsets left in: intervals over-cover (> 98 %: why seeds are blocked by default)",
                 f"{s.coverage:.1%}", s.coverage > 0.98)]
    if s.setting.keep_total:
        out.append(("fixed totals biased without noise (why it is not the default)", f"max weight error {s.mean_error:.3f}",
                    s.mean_error > 0.02))
    elif s.reported > 0 and s.coverage == s.coverage:
        out.append(("coverage 90-98 %", f"{s.coverage:.1%}", 0.90 <= s.coverage <= 0.98))
    if not s.setting.keep_total and s.gain_coverage == s.gain_coverage:
        out.append(("gain intervals cover the returned weights' true gain 90-98 %", f"{s.gain_coverage:.1%}",
                    0.90 <= s.gain_coverage <= 0.98))
    ratio = s.optimum_gain / s.gain_se if s.gain_se > 1e-9 else float("inf")
    if s.setting.noise > 0 and ratio <= 1.0:
        out.append(("false supported <= 5 % (gain <= 1 SE)", f"{s.supported:.1%}", s.supported <= 0.05))
    if s.setting.noise > 0 and ratio >= 4.0 and not s.setting.keep_total:
        out.append(("supported >= 80 % (gain >= 4 SE)", f"{s.supported:.1%}", s.supported >= 0.80))
    out.append(("supported while worse than uniform <= 5 %", f"{s.supported_worse:.1%}", s.supported_worse <= 0.05))
    if group == "design" and not s.setting.keep_total:
        out.append(("noise-free grown design exact (error < 1e-3)", f"{s.mean_error:.2g}", s.mean_error < 1e-3))
    return out


# --- AutoScale ---------------------------------------------------------------------------------------
# Theorem 1: for L = L0 + sum_i beta_i N_i^-gamma_i the optimum is N_i* = (beta_i gamma_i / lambda)^(1/(1+gamma_i)),
# exactly log-linear across scales. "bent": gamma_i drifts with log scale, so it is not.
AS_BETA, AS_GAMMA = np.array([1.0, 2.5, 0.8, 4.0]), np.array([0.3, 0.6, 0.2, 0.8])
AS_DOMAINS = ["d0", "d1", "d2", "d3"]


def _true_optimum(n: float, bend: float) -> np.ndarray:
    from mixer.solver.numerics.root import bracketed_newton

    gamma = AS_GAMMA * (1 + bend * np.log(n / 1e6))

    def tokens(mu):
        return (AS_BETA * gamma / np.exp(mu)) ** (1 / (1 + gamma))

    mu, _ = bracketed_newton(lambda mu: (float(tokens(mu).sum() - n), np.nan), -300.0, 300.0, xtol=1e-16)
    return tokens(mu)


def autoscale_row(scales: int, bend: float, cases: int, *, sd: float = 0.03, n_rep: int = 200,
                  seed: int = 0) -> dict:
    """`cases` AutoScale problems: each scale's DDO optimum given, measured with independent
    relative noise `sd` (its replicates drawn with the same spread, its verdict supported),
    extrapolated to 16x the first scale: the interval's coverage of the true target optimum. (No
    curves come with these optima, so nothing predicts the loss at the target and the verdict is
    unsupported by construction; the whole chain's rows judge the verdict.)"""
    import tempfile

    from mixer.solver.solutions import ScaleOptimum, autoscale_solution
    from mixer.solver.verdict import Verdict

    rng = np.random.default_rng([seed, scales, int(bend * 1000)])
    budgets = [10**6 * 2 ** k for k in range(scales)]
    target = 16 * 10**6
    truth = _true_optimum(target, bend) / target
    gamma_t = AS_GAMMA * (1 + bend * np.log(target / 1e6))

    def loss(w: np.ndarray) -> float:   # the true loss at the target, up to L0
        return float(np.sum(AS_BETA * (np.maximum(w, 1e-12) * target) ** (-gamma_t)))

    hits, supported, wrong_supported = [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(cases):
            optima = []
            for b in budgets:
                w = _true_optimum(b, bend) * np.exp(sd * rng.standard_normal(4))
                w /= w.sum()
                reps = w * np.exp(sd * rng.standard_normal((n_rep, 4)))
                reps /= reps.sum(axis=1, keepdims=True)
                lo, hi = np.quantile(reps, [0.025, 0.975], axis=0)
                optima.append(ScaleOptimum(source=f"sim-{b}", budget_tokens=b, tokens=dict(zip(AS_DOMAINS, w * b)),
                                           replicates=reps.tolist(), verdict=Verdict(True),
                                           intervals={d: (float(a), float(c)) for d, a, c in zip(AS_DOMAINS, lo, hi)}))
            sol = autoscale_solution(optima, target, Path(tmp) / "w.json", plots=False, seed=case)
            hits += [sol.intervals[d][0] <= truth[j] <= sol.intervals[d][1] for j, d in enumerate(AS_DOMAINS)]
            supported += sol.verdict.supported
            auto = np.array([sol.weights[d] for d in AS_DOMAINS])
            direct = np.array([optima[-1].tokens[d] for d in AS_DOMAINS]) / budgets[-1]
            worse = loss(auto) >= min(loss(direct), loss(np.full(4, 0.25)))
            wrong_supported += sol.verdict.supported and worse
    return {"setting": f"AutoScale, {scales} scales, {'bent' if bend else 'exact'} law", "sweeps": cases,
            "coverage": float(np.mean(hits)), "supported": supported / cases,
            "supported_wrong": wrong_supported / cases}


def autoscale_checks(row: dict) -> list[tuple[str, str, bool]]:
    """Given optima (unbiased, Theorem 1): the extrapolated weights' intervals."""
    return [("weight intervals cover the target optimum 90-98 %", f"{row['coverage']:.1%}",
             0.90 <= row["coverage"] <= 0.98)]


def chain_settings(quick: bool) -> list:
    from mixer.solver.simulation.scales import ScalesSetting

    return [ScalesSetting(scales=k, bend=bend) for k in ((2,) if quick else (2, 3)) for bend in (0.0, 0.3)]


def chain_checks(row: dict) -> list[tuple[str, str, bool]]:
    """The whole chain (DDO sweeps at every scale -> AutoScale -> the target): the predicted gains'
    intervals hold the true gains, and `supported` is never said for a mixture that is in truth no
    better than uniform or direct transfer at the target."""
    out = []
    if row["gain_coverage"] == row["gain_coverage"]:
        out.append(("gain intervals at the target cover the true gains 90-98 %", f"{row['gain_coverage']:.1%}",
                    0.90 <= row["gain_coverage"] <= 0.98))
    if row["coverage"] == row["coverage"]:
        out.append(("weight intervals cover the target optimum 90-98 %", f"{row['coverage']:.1%}",
                    0.90 <= row["coverage"] <= 0.98))
    out.append(("supported while no better than direct transfer or uniform <= 5 %", f"{row['supported_wrong']:.1%}",
                row["supported_wrong"] <= 0.05))
    return out


def plot_power(rows: list[dict], path: Path) -> Path:
    """Share supported against the true gain in standard errors, from the power rows' records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["gain_over_se"] for r in rows]
    y = [r["supported"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, y, "o-", label=f"measured ({rows[0]['sweeps']} simulated sweeps per point)")
    ax.axhline(0.8, ls="--", c="gray", lw=1, label="target: 80 % at 4 standard errors")
    ax.axhline(0.05, ls=":", c="gray", lw=1, label="target: 5 % at 1 standard error or less")
    ax.axvline(4, ls="--", c="gray", lw=0.5)
    ax.set_xlim(0, max(x) * 1.05)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("true gain of the optimum over uniform, in standard errors of the fitted gain")
    ax.set_ylabel("share of sweeps the verdict calls supported")
    ax.set_title("DDO verdict power (3 domains, 2 seeds, noise 1 % of the loss)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(record: dict) -> str:
    """The results as the table docs/solver.md shows."""
    head = ("| rows | setting | sweeps | weight intervals cover | mean width | gain intervals cover | supported | "
            "supported but worse than uniform | true gain / SE | mean max weight error |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in record["rows"]:
        if r["group"].startswith("autoscale"):
            continue
        pct = (lambda v: "n/a" if v != v else f"{v:.1%}")
        num = (lambda v, f: "n/a" if v is None or v != v else format(v, f))
        lines.append(f"| {r['group']} | {r['setting']} | {r['sweeps']} | {pct(r['coverage'])} | "
                     f"{num(r['mean_width'], '.3f')} | {pct(r.get('gain_coverage', float('nan')))} | "
                     f"{pct(r['supported'])} | {pct(r['supported_worse'])} | "
                     f"{num(r['gain_over_se'], '.1f')} | {num(r['mean_error'], '.3f')} |")
    auto = [r for r in record["rows"] if r["group"] == "autoscale"]
    if auto:
        lines += ["", "| AutoScale, optima given | cases | weight intervals cover the target optimum |", "|---|---|---|"]
        lines += [f"| {r['setting']} | {r['sweeps']} | {r['coverage']:.1%} |" for r in auto]
    chain = [r for r in record["rows"] if r["group"] == "autoscale-chain"]
    if chain:
        lines += ["", "| AutoScale, whole chain | studies | gain intervals cover | weight intervals cover (the chain's "
                  "alone; the curves' alone) | supported | supported but no better | AutoScale truly better | "
                  "recommended (AutoScale / direct / uniform) | mean regret |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['setting']} | {r['sweeps']} | {r['gain_coverage']:.1%} | {r['coverage']:.1%} "
                  f"({r.get('chain_coverage', float('nan')):.1%}; {r.get('curves_coverage', float('nan')):.1%}) | "
                  f"{r['supported']:.1%} | {r['supported_wrong']:.1%} | {r['autoscale_truly_better']:.1%} | "
                  f"{r['recommended']['autoscale']:.0%} / {r['recommended']['direct-transfer']:.0%} / "
                  f"{r['recommended']['uniform']:.0%} | {r['mean_regret']:.2g} |" for r in chain]
    targets = [(r["setting"], t) for r in record["rows"] for t in r["targets"]]
    missed = [f"{name}: {t['target']} ({t['figure']})" for name, t in targets if not t["met"]]
    lines += ["", f"{len(targets) - len(missed)} of {len(targets)} target checks met."]
    lines += [f"MISSED: {m}" for m in missed]
    return "\n".join(lines)


def _report(results: list, row: dict, targets: list) -> int:
    for name, fig, ok in targets:
        print(f"        {name}: {fig} {'met' if ok else 'MISSED'}", flush=True)
    row.setdefault("group", "autoscale")
    results.append({**row, "targets": [{"target": n, "figure": f, "met": ok} for n, f, ok in targets]})
    return sum(not ok for _, _, ok in targets)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--studies", type=int, default=None,
                    help="AutoScale whole-chain studies per row (default: --sweeps; each is a sweep at every scale)")
    ap.add_argument("--quick", action="store_true", help="fewer rows (for a smoke run)")
    ap.add_argument("--table", action="store_true", help="print --out's results as a markdown table and stop")
    ap.add_argument("--part", choices=("all", "ddo", "offsets", "autoscale"), default="all",
                    help="which rows to run (one part replaces its rows in an existing --out; offsets: the "
                         "shared seed-offset rows only)")
    ap.add_argument("--out", type=Path, default=RESULTS / "calibration.json")
    ap.add_argument("--plot", type=Path, default=RESULTS / "calibration_power.png")
    args = ap.parse_args(argv)
    if args.table:
        record = json.loads(args.out.read_text())
        print(markdown(record))
        plot_power([r for r in record["rows"] if r["group"] == "power"], args.plot)
        return 0
    before = machine({"workers": args.workers})
    results, power, missed = [], [], 0
    t_all = time.perf_counter()
    print(f"{'group':<7} {'setting':<48} {'cover':>6} {'width':>6} {'supp':>6} {'worse':>6} {'g/SE':>6} {'err':>7}  time")
    ddo_rows = [] if args.part == "autoscale" else [(g, st) for g, st in settings(args.quick)
                                                     if args.part != "offsets" or g == "offsets"]
    for group, setting in ddo_rows:
        t0 = time.perf_counter()
        s = simulate_setting(setting, args.sweeps, n_bootstrap=args.bootstrap, workers=args.workers)
        dt = time.perf_counter() - t0
        ratio = s.optimum_gain / s.gain_se if s.gain_se > 1e-9 else float("nan")
        print(f"{group:<7} {setting.name:<48} {s.coverage:>6.1%} {s.mean_width:>6.3f} {s.supported:>6.1%} "
              f"{s.supported_worse:>6.1%} {ratio:>6.1f} {s.mean_error:>7.3f}  {dt:.0f} s", flush=True)
        targets = check(group, s)
        for name, fig, ok in targets:
            missed += not ok
            print(f"        {name}: {fig} {'met' if ok else 'MISSED'}", flush=True)
        results.append({"group": group, **s.to_json(), "gain_over_se": ratio, "seconds": dt,
                        "targets": [{"target": n, "figure": f, "met": ok} for n, f, ok in targets]})
        if group == "power":
            power.append(results[-1])
    for scales in (2, 3) if args.part in ("all", "autoscale") else ():
        for bend in (0.0, 0.3):
            t0 = time.perf_counter()
            row = autoscale_row(scales, bend, args.sweeps)
            row["setting"] += ", optima given"
            print(f"autoscale {row['setting']:<46} cover {row['coverage']:.1%}  {time.perf_counter() - t0:.0f} s",
                  flush=True)
            missed += _report(results, row, autoscale_checks(row))
    for setting in chain_settings(args.quick) if args.part in ("all", "autoscale") else ():
        t0 = time.perf_counter()
        row = {"group": "autoscale-chain", "bootstrap": args.bootstrap,
               **simulate_studies(setting, args.studies or args.sweeps, n_bootstrap=args.bootstrap,
                                  workers=args.workers)}
        rec = ", ".join(f"{k} {v:.0%}" for k, v in row["recommended"].items())
        print(f"chain {row['setting']}: gain cover {row['gain_coverage']:.1%}, weight cover {row['coverage']:.1%}, "
              f"supported {row['supported']:.1%}, AutoScale truly better {row['autoscale_truly_better']:.1%}, "
              f"recommended {rec}, mean regret {row['mean_regret']:.2g}  {time.perf_counter() - t0:.0f} s", flush=True)
        missed += _report(results, row, chain_checks(row))
    record = {"sweeps": args.sweeps, "bootstrap": args.bootstrap, "quick": args.quick, "rows": results,
              "missed": missed, "seconds": time.perf_counter() - t_all, "machine_before": before,
              "machine_after": machine({"workers": args.workers})}
    if args.part != "all" and args.out.exists():   # keep the other part's rows
        old = json.loads(args.out.read_text())
        redone = {r["group"] for r in results}
        merged = [r for r in old["rows"] if r["group"] not in redone] + results
        record["rows"] = sorted(merged, key=lambda r: r["group"].startswith("autoscale"))  # stable: DDO rows first
        record["missed"] = sum(not t["met"] for r in record["rows"] for t in r["targets"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1, default=float) + "\n")
    if power:
        print(f"plot: {plot_power(power, args.plot)}")
    print(f"{missed} target(s) missed; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
