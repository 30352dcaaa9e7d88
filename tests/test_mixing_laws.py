"""Data Mixing Laws as published: the Huber fit (robust to one bad run where least squares is
not) and the nested laws over steps and model size, on synthetic losses with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from mixer.solver.baselines.mixing_laws import mixing_laws_weights
from mixer.solver.baselines.nested_laws import fit_power_law, predict_target_losses
from mixer.solver.numerics.simplex import feasible_bounds, spg_minimize

C, K = 2.0, 1.0
T = np.array([-2.0, 1.5, 0.5])  # sums to 0


def law(R: np.ndarray) -> np.ndarray:
    return C + K * np.exp(R @ T)


def true_optimum() -> np.ndarray:
    lo, hi = feasible_bounds(3, 1.0)
    return spg_minimize(lambda r: float(C + K * np.exp(T @ r)), lambda r: T * K * np.exp(T @ r),
                        np.full(3, 1 / 3), 1.0, lo, hi, tol=1e-14).x


def test_power_law_recovered_exactly():
    S = np.array([100, 200, 400, 800, 1600, 3200.0])
    fit = fit_power_law(S, 2.5 + 40.0 * S ** -0.6)
    assert fit.e == pytest.approx(2.5, abs=1e-6) and fit.a == pytest.approx(40.0, rel=1e-4)
    assert fit.alpha == pytest.approx(0.6, abs=1e-6)
    with pytest.raises(ValueError, match="3 or more"):
        fit_power_law(S[:2], S[:2])


def test_huber_fit_shrugs_off_one_bad_run_that_least_squares_follows():
    R = np.random.default_rng(1).dirichlet(np.ones(3), 24)
    L = law(R)
    L[5] += 0.8  # one diverged proxy
    huber = mixing_laws_weights(R, L)
    ls = mixing_laws_weights(R, L, loss="linear")
    # At the authors' threshold (0.05) the outlier's pull is bounded: 0.8 nats off moves t by < 0.01.
    assert np.abs(huber.t[0] - T).max() < 0.01 and huber.c[0] == pytest.approx(C, abs=0.01)
    assert np.abs(ls.t[0] - T).max() > 0.05  # least squares is pulled off the truth
    assert np.abs(huber.x - true_optimum()).max() < 0.01
    assert huber.message.startswith("huber")
    with pytest.raises(ValueError, match="loss 'l1'"):
        mixing_laws_weights(R, law(R), loss="l1")


@pytest.mark.parametrize("seed", range(4))
def test_authors_threshold_recovers_the_law_from_noisy_losses(seed):
    """Known parameters, 40 random mixtures, Gaussian noise of 0.01 nats (a realistic run-to-run
    noise): the fit at the authors' threshold (0.05, the default) recovers t, c and k within 0.03
    and the optimum within 0.03 (measured: at most 0.019 over seeds 0-7)."""
    from mixer.solver.baselines.mixing_laws import HUBER_DELTA

    assert HUBER_DELTA == 0.05
    rng = np.random.default_rng(seed)
    R = rng.dirichlet(np.ones(3), 40)
    L = law(R) + 0.01 * rng.standard_normal(40)
    fit = mixing_laws_weights(R, L)
    assert np.abs(fit.t[0] - T).max() < 0.03
    assert fit.c[0] == pytest.approx(C, abs=0.03) and fit.k[0] == pytest.approx(K, abs=0.03)
    assert np.abs(fit.x - true_optimum()).max() < 0.03


def test_the_constant_stays_positive():
    """c = exp(log c), as the authors parametrise it: a law whose constant is ~0 with noise on top
    cannot be fitted with c < 0 (a free c goes negative here)."""
    rng = np.random.default_rng(6)
    R = rng.dirichlet(np.ones(3), 30)
    L = 2.0 * np.exp(R @ T) + 0.05 * rng.standard_normal(30)  # a free c fits -0.064 here
    fit = mixing_laws_weights(R, L)
    assert fit.c[0] > 0 and np.all(np.isfinite(fit.x))
    with pytest.raises(ValueError, match="positive"):
        mixing_laws_weights(R, L - 10.0)


def test_nested_laws_predict_the_target_and_its_optimum():
    """L(N, S, r) = E(r) + A N^-a + B S^-b with E chosen so that L(N*, S*, r) is the mixture law:
    steps, then sizes, then the mixture law must give the target's optimum."""
    rng = np.random.default_rng(2)
    R = rng.dirichlet(np.ones(3), 12)
    n_star, s_star = 1e9, 1e5
    A, a, B, b = 400.0, 0.35, 30.0, 0.5
    E = law(R) - A * n_star ** -a - B * s_star ** -b
    sizes = [1e6, 4e6, 1.6e7, 6.4e7]
    steps = np.array([200, 400, 800, 1600, 3200.0])
    curves = [[(steps, E[i] + A * n ** -a + B * steps ** -b) for i in range(len(R))] for n in sizes]
    pred = predict_target_losses(curves, sizes, s_star, n_star)
    assert np.abs(pred - law(R)).max() < 1e-4
    res = mixing_laws_weights(R, pred[:, None])
    assert np.abs(res.x - true_optimum()).max() < 1e-3
    # One size: the step law alone.
    one = predict_target_losses(curves[:1], sizes[:1], s_star)
    assert np.abs(one - (E + A * sizes[0] ** -a + B * s_star ** -b)).max() < 1e-4
    with pytest.raises(ValueError, match="3 or more model sizes"):
        predict_target_losses(curves[:2], sizes[:2], s_star, n_star)


def test_nested_laws_from_run_json_files(tmp_path):
    """run.json files at 3 sizes x 8 mixtures with exact step and size laws: the solution writes
    the target's optimum; a mixture missing a size is refused by name."""
    from mixer.core.errors import MixerError
    from support import run_json, write_runs
    from mixer.solver.solutions import nested_mixing_laws_solution

    rng = np.random.default_rng(5)
    R = rng.dirichlet(np.ones(3), 8)
    n_star, s_star, A, a, B, b = 1e9, 1e5, 400.0, 0.35, 30.0, 0.5
    steps = [200, 400, 800, 1600]
    runs = {}
    for i, r in enumerate(R):
        E = law(r[None])[0] - A * n_star ** -a - B * s_star ** -b
        for n in (1e6, 4e6, 1.6e7):
            curve = [float(E + A * n ** -a + B * s ** -b) for s in steps]
            w = dict(zip("xyz", map(float, r)))
            obj = run_json(w, 1000, {d: curve[-1] for d in "xyz"}, {"params_non_embedding": n})
            obj["curve"] = {"eval": {"step": steps, "loss": {d: curve for d in "xyz"}}}
            runs[f"m{i}-n{int(n)}"] = obj
    paths = write_runs(tmp_path / "runs", runs)
    sol = nested_mixing_laws_solution(paths, tmp_path / "w.json", target_steps=s_star, target_size=n_star, plots=False)
    assert np.abs(np.array(list(sol.weights.values())) - true_optimum()).max() < 1e-3
    assert np.abs(np.array(sol.provenance["predicted_losses"])[:, 0] - law(np.array(sol.provenance["mixtures"]))).max() < 1e-4
    with pytest.raises(MixerError, match="every size"):
        nested_mixing_laws_solution(paths[:-1], tmp_path / "w2.json", target_steps=s_star, target_size=n_star)
