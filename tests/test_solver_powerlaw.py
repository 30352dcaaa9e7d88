"""Power-law fits: known parameters recovered; exact interpolation and ill-posed data flagged."""
import numpy as np
import pytest

from mixer.solver.powerlaw import fit_power_law

TRUE = [(1.5, 0.4, 0.6), (0.3, 1.2, 0.2), (4.0, 0.8, 0.9)]


@pytest.mark.parametrize("n0,b,c", TRUE)
def test_noise_free_shifted_recovers_parameters_exactly(n0, b, c):
    x = np.array([0.2, 0.33, 0.5, 1.0, 2.0, 3.0, 5.0])
    fit = fit_power_law(x, (n0 + x) ** -b + c)
    np.testing.assert_allclose(fit.x, [n0, b, c], rtol=1e-6)
    assert fit.success and not fit.ill_posed and not fit.interpolates
    assert fit.rmse < 1e-10


@pytest.mark.parametrize("n0,b,c", TRUE)
def test_noisy_shifted_recovers_within_tolerance(n0, b, c):
    # 12 points over 2 decades, loss noise 1e-4 (relative ~1e-4): parameters within 5%, and the
    # truth within 4 standard errors of the fit's covariance.
    rng = np.random.default_rng(0)
    x = np.geomspace(0.1, 10, 12)
    fit = fit_power_law(x, (n0 + x) ** -b + c + rng.normal(0, 1e-4, x.size))
    np.testing.assert_allclose(fit.x, [n0, b, c], rtol=0.05)
    se = np.sqrt(np.diag(fit.cov))
    assert np.all(np.abs(fit.x - [n0, b, c]) < 4 * se + 1e-9)


def test_plain_form_recovers_b_and_c():
    rng = np.random.default_rng(1)
    x = np.array([0.2, 0.5, 1, 3, 5])
    fit = fit_power_law(x, x ** -0.35 + 0.7 + rng.normal(0, 1e-5, x.size), form="plain")
    np.testing.assert_allclose([fit.b, fit.c], [0.35, 0.7], rtol=1e-3)
    assert fit.n0 == 0.0


def test_three_points_interpolate_and_say_so():
    x = np.array([0.2, 1.0, 3.0])
    fit = fit_power_law(x, (1.5 + x) ** -0.4 + 0.6)
    assert fit.interpolates and "exact interpolation" in fit.message
    assert np.max(np.abs(fit.residuals)) < 1e-9
    assert fit.cov is None


def test_points_that_never_decrease_are_flat_not_ill_posed():
    """A domain whose tokens do nothing (a junk domain) is a finding: its curve is flat and the
    optimum gives it its floor; it is not a failed fit (that veto fired on most such sweeps)."""
    fit = fit_power_law([0.2, 1.0, 3.0, 5.0], [1.0, 1.0, 1.01, 1.02])
    assert fit.flat and not fit.ill_posed and "does not decrease" in fit.message
    wiggle = fit_power_law([0.2, 1.0, 3.0, 5.0], [1.0, 1.01, 0.9, 0.89])
    assert not wiggle.flat


@pytest.mark.parametrize("x,y,match", [([1, 2], [1, 0.9], "distinct x"), ([0, 1, 2], [1, 0.9, 0.8], "> 0"),
                                       ([1, 2, np.nan], [1, 0.9, 0.8], "finite")])
def test_bad_input_raises_naming_it(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(x, y)
