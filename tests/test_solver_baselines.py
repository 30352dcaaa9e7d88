"""Baselines: each recovers the optimum of a synthetic problem whose answer is known."""
import numpy as np
import pytest

from mixer.solver.baselines import BASELINES, DoReMiWeights, doremi_weights, mixing_laws_weights, regmix_weights
from mixer.solver.baselines.regmix import RegMixSettings
from mixer.solver.numerics.simplex import feasible_bounds, spg_minimize


def test_registry_and_simple_baselines():
    assert set(BASELINES) == {"uniform", "natural", "doremi", "regmix", "mixing-laws"}
    assert BASELINES["uniform"](["a", "b", "c", "d"]) == {d: 0.25 for d in "abcd"}
    assert BASELINES["natural"]({"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75}
    with pytest.raises(ValueError, match="'b'"):
        BASELINES["natural"]({"a": 1, "b": -3})


def test_doremi_replay_matches_the_update_rule():
    rng = np.random.default_rng(0)
    P, R = rng.uniform(2, 4, (50, 3)), rng.uniform(2, 4, (50, 3))
    res = doremi_weights(P, R, eta=0.7, smoothing=0.01)
    a = np.full(3, 1 / 3)
    traj = []
    for s in range(50):
        a = a * np.exp(0.7 * np.maximum(P[s] - R[s], 0))
        a = 0.99 * a / a.sum() + 0.01 / 3
        traj.append(a)
    np.testing.assert_allclose(res.trajectory, traj, rtol=1e-12)
    np.testing.assert_allclose(res.x, np.mean(traj, axis=0), rtol=1e-12)


def test_online_updater_equals_replay_and_resumes():
    rng = np.random.default_rng(1)
    P, R = rng.uniform(2, 4, (40, 4)), rng.uniform(2, 4, (40, 4))
    u = DoReMiWeights(domains="abcd", eta=0.5)
    for s in range(20):
        u.update(dict(zip("abcd", P[s])), R[s])
    v = DoReMiWeights(domains="abcd", eta=0.5)
    v.load_state_dict(u.state_dict())
    for s in range(20, 40):
        v.update(P[s], R[s])
    np.testing.assert_allclose(list(v.average_.values()), doremi_weights(P, R, eta=0.5).x, rtol=1e-12)
    with pytest.raises(ValueError, match="'d'"):
        u.update({"a": 1, "b": 1, "c": 1}, R[0])


def test_doremi_finds_the_group_dro_equilibrium():
    # Proxy whose excess loss responds to its weights: excess_i = g_i - h_i alpha_i. Group DRO's
    # fixed point equalises the excess: alpha_i = (g_i - e) / h_i with sum 1 (all excess > 0).
    g, h = np.array([1.0, 0.8, 0.6]), np.array([1.0, 2.0, 0.5])
    e = (np.sum(g / h) - 1) / np.sum(1 / h)
    u = DoReMiWeights(domains="abc", eta=0.5, smoothing=0.0)
    for _ in range(4000):
        u.update(g - h * u.weights_, np.zeros(3))
    np.testing.assert_allclose(u.weights_, (g - e) / h, atol=1e-9)
    np.testing.assert_allclose(list(u.average_.values()), (g - e) / h, atol=2e-3)


def test_regmix_recovers_quadratic_minimum():
    rng = np.random.default_rng(0)
    w_star = np.array([0.45, 0.3, 0.15, 0.1])
    A = np.diag([2.0, 1.0, 1.5, 3.0]) + 0.2
    W = rng.dirichlet(np.ones(4), 60)
    y = 2.0 + np.einsum("ni,ij,nj->n", W - w_star, A, W - w_star) + rng.normal(0, 1e-6, 60)
    res = regmix_weights(W, y, RegMixSettings(seed=0, model="quadratic"))
    assert res.r2 > 0.999
    np.testing.assert_allclose(res.x, w_star, atol=2e-3)
    with pytest.raises(ValueError, match="runs"):
        regmix_weights(W[:5], y[:5], RegMixSettings(model="quadratic"))


def test_mixing_laws_recover_parameters_and_optimum():
    rng = np.random.default_rng(0)
    c, k = np.array([2.0, 1.5, 3.0]), np.array([1.0, 0.8, 1.2])
    T = np.array([[-3, 1, 2], [1, -2.5, 1.5], [0.5, 1, -1.5]], float)
    T -= T.mean(axis=1, keepdims=True)
    R = rng.dirichlet(np.ones(3), 30)
    L = c + k * np.exp(R @ T.T)
    res = mixing_laws_weights(R, L)
    np.testing.assert_allclose(res.c, c, rtol=1e-5)
    np.testing.assert_allclose(res.t, T, atol=1e-4)
    lo, hi = feasible_bounds(3, 1.0)
    truth = spg_minimize(lambda r: float(np.mean(c + k * np.exp(T @ r))),
                         lambda r: T.T @ (k * np.exp(T @ r)) / 3, np.full(3, 1 / 3), 1.0, lo, hi).x
    np.testing.assert_allclose(res.x, truth, atol=1e-5)
