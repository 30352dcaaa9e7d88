"""Weights that can be trusted: known power laws plus Gaussian noise of known size give intervals
that cover the true optimum, a verdict that says `unsupported` when the noise swamps the effects
and `supported` (with weights near the truth) when it does not, ambiguous exact fits detected,
held-out runs judged, and the metric recorded."""
from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from support import ddo_sweep
from mixer.solver.ddo import solve_ddo
from mixer.solver.ddo_model import DDO
from mixer.solver.powerlaw import fit_power_law, power_law
from mixer.solver.runs import Run, group_ddo
from mixer.solver.verdict import HeldOut, ddo_verdict

DOMAINS = ["a", "b", "c"]
N0, B = np.array([1.0, 0.5, 2.0]), np.array([0.3, 0.6, 0.5])
FACTORS = (0.2, 0.5, 3.0)   # 4 distinct token counts per domain: more points than parameters


def runs_of(objs: dict) -> list[Run]:
    out = []
    for name, o in objs.items():
        p = o["provenance"]
        out.append(Run(path=name, corpus_sha256=o["corpus_sha256"], budget_tokens=o["budget_tokens"],
                       weights=o["weights"], tokens_per_domain=o["tokens_per_domain"], final_loss=o["final_loss"],
                       seed=o["seed"], role=p.get("role"), domain=p.get("domain"), factor=p.get("factor"),
                       total=p.get("total")))
    return out


def fitted(noise: float, rng_seed: int, n0=N0, b=B, seeds=(0, 1), n_bootstrap: int = 60, factors=FACTORS) -> DDO:
    objs = ddo_sweep(DOMAINS, n0, b, factors=factors, noise=noise, seeds=seeds, rng_seed=rng_seed)
    return DDO(n_bootstrap=n_bootstrap, seed=rng_seed).fit(group_ddo(runs_of(objs)))


def _covered(draw: int) -> list[bool]:
    est = fitted(2e-3, 1000 + draw)
    truth = solve_ddo(N0, B, 3.0).weights
    return [est.intervals_[d][0] <= truth[i] <= est.intervals_[d][1] for i, d in enumerate(DOMAINS)]


@pytest.mark.slow
def test_intervals_cover_the_true_optimum_in_about_95_percent_of_200_draws():
    """200 sweeps, each 2 seeds x (base + 3 domains x 4 factors), relative noise 0.2 % per run;
    the noise is measured from the seeds, as the loop does. Measured: 0.93 on 60 draws."""
    with ProcessPoolExecutor(2) as pool:
        hits = [h for row in pool.map(_covered, range(200)) for h in row]
    coverage = float(np.mean(hits))
    assert 0.88 <= coverage <= 0.99, coverage


def test_small_noise_is_supported_and_near_the_truth():
    est = fitted(1e-3, 7)
    v = ddo_verdict(est)
    assert v.supported, v.reasons
    truth = solve_ddo(N0, B, 3.0).weights
    for i, d in enumerate(DOMAINS):
        assert abs(est.weights_[d] - truth[i]) <= 0.02
        lo, hi = est.intervals_[d]
        assert lo <= est.weights_[d] <= hi and math.isfinite(lo) and math.isfinite(hi)
    assert est.noise_.source == "seeds" and est.noise_.sigma == pytest.approx(1e-3, rel=0.6)


def test_noise_larger_than_the_effects_is_unsupported():
    # Nearly flat curves: a domain's tokens move the loss by ~4 %, the runs scatter by 5 %.
    n0, b = np.array([2.0, 3.0, 1.0]), np.array([0.05, 0.08, 0.06])
    est = fitted(0.05, 3, n0=n0, b=b)
    v = ddo_verdict(est)
    assert not v.supported
    assert any("within the run-to-run noise" in r and "gain over uniform" in r for r in v.reasons)
    assert any(e.within_noise for e in est.effects_.values())


def test_unmeasured_noise_is_unsupported_and_says_how_to_fix_it():
    est = fitted(0.0, 0, seeds=(0,), factors=(0.2, 3.0), n_bootstrap=20)   # 3 points, 3 parameters
    v = ddo_verdict(est)
    assert not v.supported and est.noise_.source == "none"
    assert any("noise not measured" in r and "--seeds 2" in r for r in v.reasons)
    assert any("no interval" in r for r in v.reasons)
    assert "UNSUPPORTED" in v.lines()[0] and "uniform is the safer choice" in v.lines()[0]


def test_ambiguous_exact_fit_is_detected_and_the_rule_applied():
    """Three points, three parameters: two different shifted power laws pass through them."""
    x = np.array([1 / 3, 1.0, 3.0])
    truth = np.array([1.929, 0.8935, 0.6152])
    y = power_law(x, truth, "shifted")
    fit = fit_power_law(x, y)
    assert fit.ambiguous and len(fit.alternatives) >= 1
    assert "ambiguous" in fit.message
    others = np.array(fit.alternatives)
    assert fit.c >= others[:, -1].max()                       # the rule: keep the largest c
    for theta in [fit.x, *fit.alternatives]:                   # every one of them is exact
        np.testing.assert_allclose(power_law(x, theta, "shifted"), y, atol=1e-9)
    np.testing.assert_allclose(fit.x, truth, rtol=1e-3)        # here the rule recovers the truth
    # The same fit with other start sets gives the same answer (no rounding-noise choice).
    np.testing.assert_allclose(fit_power_law(x, y, n_starts=12).x, fit.x, rtol=1e-9)


def test_held_out_runs_are_judged_against_the_noise():
    est = fitted(1e-3, 11)
    objs = ddo_sweep(DOMAINS, N0, B, factors=(0.7, 1.6), noise=1e-3, seeds=(5,), rng_seed=99)
    other = [r for r in runs_of(objs) if r.role == "perturbed"]  # mixtures the fit never saw
    good = HeldOut(names=tuple(r.path for r in other), measured=est.measure_runs(other),
                   predicted=est.predict_runs(other), sigma=est.noise_.sigma)
    assert np.all(np.abs(good.z) < 3), good.z
    assert ddo_verdict(est, good).supported
    bad = HeldOut(names=good.names, measured=good.measured * 1.02, predicted=good.predicted, sigma=good.sigma)
    reasons = ddo_verdict(est, bad).reasons
    assert any("held-out run" in r for r in reasons)


def test_the_metric_changes_what_is_fitted_and_is_recorded():
    objs = ddo_sweep(DOMAINS, N0, B, factors=FACTORS)
    runs = runs_of(objs)
    loss, ppl = group_ddo(runs, metric="loss"), group_ddo(runs, metric="perplexity")
    assert ppl.base_loss == pytest.approx(math.exp(loss.base_loss))   # every domain has the same loss here
    est = DDO(n_bootstrap=0).fit(ppl)
    assert est.summary()["metric"] == "perplexity"
    w_loss = DDO(n_bootstrap=0).fit(loss).weights_
    assert max(abs(est.weights_[d] - w_loss[d]) for d in DOMAINS) > 1e-3   # a different optimum
