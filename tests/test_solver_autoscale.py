"""AutoScale against Theorem 1's closed form: for L = L0 + sum_i beta_i N_i^-gamma_i the KKT
optimum is N_i* = (beta_i gamma_i / lambda)^(1/(1+gamma_i)); two small scales predict any other."""
import numpy as np
import pytest

from mixer.solver.numerics.root import bracketed_newton
from mixer.solver.autoscale import AutoScale, fit_autoscale, predict, weights_curve

RNG = np.random.default_rng(7)
BETA, GAMMA = RNG.uniform(0.5, 5, 6), RNG.uniform(0.1, 0.9, 6)


def exact_optimum(N, beta=BETA, gamma=GAMMA):
    """Closed form, lambda by bisection on log lambda (independent of the solver's KKT code)."""
    def n_of(mu):
        return (beta * gamma / np.exp(mu)) ** (1 / (1 + gamma))

    mu, _ = bracketed_newton(lambda mu: (float(n_of(mu).sum() - N), np.nan), -300.0, 300.0, xtol=1e-16)
    return n_of(mu)


def test_two_scales_extrapolate_100x_exactly():
    n1, n2 = exact_optimum(1e6), exact_optimum(3e6)
    res = AutoScale().fit([n1, n2]).predict(3e8)
    np.testing.assert_allclose(res.x, exact_optimum(3e8), rtol=1e-6)
    assert res.weights.sum() == pytest.approx(1, abs=1e-12)


def test_next_scale_is_n2_squared_over_n1():
    n1, n2 = exact_optimum(1e6), exact_optimum(2e6)
    n3 = n2 ** 2 / n1
    res = predict(fit_autoscale([n1, n2]), n3.sum())
    assert res.t == pytest.approx(2.0, abs=1e-9)
    np.testing.assert_allclose(res.x, n3, rtol=1e-10)
    np.testing.assert_allclose(res.x, exact_optimum(n3.sum()), rtol=1e-6)


def test_more_scales_fit_shared_t_with_zero_residual_on_exact_data():
    scales = [1e6, 2e6, 5e6, 1.2e7]
    fit = fit_autoscale([exact_optimum(s) for s in scales])
    assert fit.rms_residual < 1e-10
    assert fit.t[0] == 0 and fit.t[1] == pytest.approx(1)
    assert np.all(np.diff(fit.t) > 0)
    np.testing.assert_allclose(predict(fit, 1e9).x, exact_optimum(1e9), rtol=1e-6)


def test_noisy_scales_report_residuals():
    rng = np.random.default_rng(0)
    opt = np.array([exact_optimum(s) * np.exp(rng.normal(0, 0.01, 6)) for s in [1e6, 2e6, 5e6, 1e7]])
    fit = fit_autoscale(opt)
    assert 0.001 < fit.rms_residual < 0.03
    assert fit.residuals.shape == (4, 6)


def test_curve_rows_are_weights_and_pass_through_inputs():
    n1, n2 = exact_optimum(1e6), exact_optimum(3e6)
    fit = fit_autoscale([n1, n2])
    W = weights_curve(fit, [1e6, 3e6, 1e8])
    np.testing.assert_allclose(W.sum(axis=1), 1, atol=1e-12)
    np.testing.assert_allclose(W[0], n1 / n1.sum(), rtol=1e-9)
    np.testing.assert_allclose(W[1], n2 / n2.sum(), rtol=1e-9)


def test_dict_input_and_errors():
    est = AutoScale().fit([{"a": 1.0, "b": 3.0}, {"a": 3.0, "b": 5.0}])
    assert est.domains_ == ("a", "b")
    with pytest.raises(ValueError, match="tokens must be > 0"):
        fit_autoscale([[1.0, 0.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="same optimum"):
        fit_autoscale([[1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match="below the smallest budget"):
        predict(fit_autoscale([[1.0, 4.0], [4.0, 2.0]]), 0.1)   # one domain shrinks: sum has a minimum
