"""DDO: the KKT solve equals projected gradient and a brute-force grid; plan(); end to end on
synthetic sweeps with a known optimum."""
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mixer.solver.ddo import objective, plan, solve_ddo, solve_ddo_pgd
from mixer.solver.ddo_model import DDO
from mixer.solver.runs import group_ddo, read_runs
from support import ddo_sweep, write_runs


def brute_force_m3(a, b, total, lo=0.0, hi=None):
    """Zooming grid search over (x1, x2), x3 = total - x1 - x2 (convex problem: zooming is safe)."""
    hi = total if hi is None else hi
    c1, c2, span = total / 3, total / 3, total
    for _ in range(12):
        g = np.linspace(-span, span, 201)
        X1, X2 = np.meshgrid(c1 + g, c2 + g, indexing="ij")
        X3 = total - X1 - X2
        ok = (np.minimum(np.minimum(X1, X2), X3) >= lo) & (np.maximum(np.maximum(X1, X2), X3) <= hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            F = (a[0] + X1) ** -b[0] + (a[1] + X2) ** -b[1] + (a[2] + X3) ** -b[2]
        F = np.where(ok, F, np.inf)
        i = np.unravel_index(np.argmin(F), F.shape)
        c1, c2, span = X1[i], X2[i], span / 20
    return np.array([c1, c2, total - c1 - c2])


CASES = [(np.array([1.0, 0.5, 2.0]), np.array([0.3, 0.6, 0.9]), {}),
         (np.array([0.0, 0.0, 0.0]), np.array([0.2, 0.5, 1.0]), {}),
         (np.array([3.0, 0.1, 0.2]), np.array([0.05, 1.5, 0.7]), {}),                 # one domain at 0
         (np.array([3.0, 0.1, 0.2]), np.array([0.05, 1.5, 0.7]), {"lower": 0.2}),     # ... held at the floor
         (np.array([0.5, 0.5, 0.5]), np.array([2.0, 0.2, 0.2]), {"upper": 1.2})]      # one at its cap


@pytest.mark.parametrize("a,b,bounds", CASES)
def test_kkt_equals_pgd_and_brute_force_m3(a, b, bounds):
    r = solve_ddo(a, b, 3.0, **bounds)
    q = solve_ddo_pgd(a, b, 3.0, **bounds)
    g = brute_force_m3(a, b, 3.0, bounds.get("lower", 0.0), bounds.get("upper"))
    assert r.success and q.success
    assert r.x.sum() == pytest.approx(3.0, abs=1e-12)
    np.testing.assert_allclose(r.x, q.x, atol=1e-6)
    np.testing.assert_allclose(r.x, g, atol=1e-6)
    assert r.fun <= objective(g, a, b) + 1e-12


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), seed=st.integers(0, 2**31 - 1), floor=st.sampled_from([0.0, 0.2]))
def test_kkt_conditions_hold(m, seed, floor):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 3, m), rng.uniform(0.01, 2, m)
    r = solve_ddo(a, b, float(m), lower=floor)
    assert r.x.sum() == pytest.approx(m, rel=1e-12)
    assert np.all(r.x >= floor - 1e-12)
    slope = b * (a + r.x) ** (-b - 1)
    free = ~r.at_lower & ~r.at_upper
    np.testing.assert_allclose(slope[free], r.lam, rtol=1e-8)
    assert np.all(slope[r.at_lower] <= r.lam * (1 + 1e-8))   # a floored domain would not gain from more


def test_large_m_is_fast_and_agrees_with_pgd():
    rng = np.random.default_rng(0)
    m = 100_000
    a, b = rng.uniform(0, 3, m), rng.uniform(0.1, 1, m)
    t = time.perf_counter()
    r = solve_ddo(a, b, float(m))
    assert time.perf_counter() - t < 1.0
    q = solve_ddo_pgd(a, b, float(m))
    assert abs(q.fun - r.fun) <= 1e-9 * r.fun


def test_infeasible_bounds_raise():
    with pytest.raises(ValueError, match="floors sum"):
        solve_ddo([1, 1], [0.5, 0.5], 2.0, lower=1.5)
    with pytest.raises(ValueError, match="caps sum"):
        solve_ddo([1, 1], [0.5, 0.5], 2.0, upper=0.5)
    with pytest.raises(ValueError, match="b must be"):
        solve_ddo([1, 1], [0.5, -1], 2.0)


@pytest.mark.parametrize("keep_total", [True, False])
def test_plan_weights_budgets_and_provenance(keep_total):
    runs = plan(["a", "b", "c", "d"], 1_000_000, base_weights={"a": 1, "b": 1, "c": 1, "d": 2},
                factors=(2.0, 0.2), keep_total=keep_total)
    assert len(runs) == 1 + 4 * 2 and runs[0].provenance["role"] == "base"
    base = runs[0]
    for r in runs:
        assert sum(r.weights.values()) == pytest.approx(1, abs=1e-12)
    for r in runs[1:]:
        p, d, f = r.provenance, r.provenance["domain"], r.provenance["factor"]
        assert p["role"] == "perturbed" and p["total"] == ("fixed" if keep_total else "grown")
        tok = {k: w * r.budget_tokens for k, w in r.weights.items()}
        assert tok[d] == pytest.approx(f * base.weights[d] * 1_000_000, rel=1e-6)
        if keep_total:
            assert r.budget_tokens == 1_000_000
        else:  # others keep their tokens
            for k in tok:
                if k != d:
                    assert tok[k] == pytest.approx(base.weights[k] * 1_000_000, rel=1e-6)
    with pytest.raises(ValueError, match=">= 1"):
        plan(["a", "b"], 100, factors=(3.0,))


def test_ddo_end_to_end_recovers_known_optimum(tmp_path):
    domains = ["web", "code", "books", "wiki"]
    n0, b = np.array([1.0, 0.5, 2.0, 0.2]), np.array([0.3, 0.6, 0.25, 0.9])
    paths = write_runs(tmp_path, ddo_sweep(domains, n0, b, budget=4_000_000, factors=(0.2, 0.5, 2.0, 3.0)))
    est = DDO(n_bootstrap=0).fit(group_ddo(read_runs(paths)))
    for i, d in enumerate(domains):
        assert est.fits_[d].n0 == pytest.approx(n0[i], rel=1e-4)
        assert est.fits_[d].b == pytest.approx(b[i], rel=1e-4)
    truth = solve_ddo(n0, b, 4.0).weights
    np.testing.assert_allclose([est.weights_[d] for d in domains], truth, atol=1e-5)
    np.testing.assert_allclose(est.predicted_, est.measured_, rtol=1e-6)   # additive model is exact here


def test_ddo_bootstrap_interval_from_seed_repeats_covers_truth(tmp_path):
    domains = ["a", "b", "c"]
    n0, b = np.array([1.0, 0.5, 2.0]), np.array([0.3, 0.6, 0.5])
    runs = ddo_sweep(domains, n0, b, factors=(0.2, 0.5, 3.0), noise=2e-4, seeds=(0, 1, 2), rng_seed=3)
    est = DDO(n_bootstrap=60, seed=1).fit(group_ddo(read_runs(write_runs(tmp_path, runs))))
    assert est.bootstrap_.method == "seeds"   # parametric, with the noise measured between seeds
    truth = solve_ddo(n0, b, 3.0).weights
    for i, d in enumerate(domains):
        lo, hi = est.intervals_[d]
        assert lo <= est.weights_[d] <= hi and hi - lo < 0.5
        assert lo - 0.05 <= truth[i] <= hi + 0.05


def test_three_points_give_no_interval_and_a_warning(tmp_path):
    runs = ddo_sweep(["a", "b"], [1.0, 0.5], [0.3, 0.6], factors=(0.2, 3.0))
    est = DDO().fit(group_ddo(read_runs(write_runs(tmp_path, runs))))
    assert est.bootstrap_.method == "none" and "interpolates" in est.bootstrap_.message
    assert any("interpolates" in w for w in est.warnings_)
    assert sum(est.weights_.values()) == pytest.approx(1, abs=1e-12)


def test_floor_is_respected(tmp_path):
    runs = ddo_sweep(["a", "b", "c"], [3.0, 0.1, 0.2], [0.05, 1.5, 0.7], factors=(0.2, 0.5, 3.0))
    data = group_ddo(read_runs(write_runs(tmp_path, runs)))
    est = DDO(n_bootstrap=0, floor=0.2 / 3).fit(data)
    assert est.weights_["a"] == pytest.approx(0.2 / 3, abs=1e-9)
    assert any("floor" in w for w in est.warnings_)
