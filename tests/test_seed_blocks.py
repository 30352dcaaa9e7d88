"""Seeds as blocks (`mixer.solver.runs.block_seeds`): a seed's offset shared by every run it
trains is taken off before the noise is measured, so it neither inflates the intervals nor
counts as run-to-run noise; with nothing to estimate the data are left as they are."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mixer.solver.ddo_model import DDO
from mixer.solver.runs import block_seeds, group_ddo
from mixer.solver.simulation.sweeps import BASE_LOSS, Setting, SweepNoise, random_law, simulate_setting, simulate_sweep

FACTORS = (1 / 3, 2.0, 4.0)


def _sweep(seed_noise: float, *, noise: float = 0.002, seeds: int = 3, rng_seed: int = 7):
    rng = np.random.default_rng(rng_seed)
    law = random_law(3, rng)
    runs = simulate_sweep(law, rng, factors=FACTORS, seeds=seeds, noise=SweepNoise(noise, seed_noise))
    # the offsets the simulator drew: the first draws after the law (see simulate_sweep)
    again = np.random.default_rng(rng_seed)
    random_law(3, again)
    drawn = seed_noise * again.standard_normal(seeds) if seed_noise > 0 else np.zeros(seeds)
    return runs, drawn


def test_offsets_shared_by_a_seed_are_recovered_and_leave_the_run_noise():
    runs, drawn = _sweep(0.03)
    data = group_ddo(runs, metric="loss", seed_blocks=False)
    blocked = block_seeds(data)
    assert blocked.seed_dof == 2 and group_ddo(runs, metric="loss") == blocked
    got = np.array([blocked.seed_offsets[k] for k in range(3)]) / BASE_LOSS
    # centred on the runs' mean (every seed trains the same number of runs here)
    assert np.allclose(got, drawn - drawn.mean(), atol=0.002)
    est, plain = DDO(n_bootstrap=20).fit(blocked), DDO(n_bootstrap=20).fit(data)
    # the noise measured is the runs' own (0.002 of the base loss), not the seeds' 0.03
    assert 0.001 < est.noise_.sigma < 0.003 < 0.01 < plain.noise_.sigma
    assert est.noise_.dof == plain.noise_.dof - 2
    assert est.summary()["noise"]["seed_offsets"] is not None
    assert plain.summary()["noise"]["seed_offsets"] is None
    # the offsets cancel in every mixture's comparison: the weights barely move, the intervals shrink
    w, v = np.array(list(est.weights_.values())), np.array(list(plain.weights_.values()))
    assert np.max(np.abs(w - v)) < 0.05
    width = np.mean([hi - lo for lo, hi in est.intervals_.values()])
    assert width < 0.5 * np.mean([hi - lo for lo, hi in plain.intervals_.values()])
    # held-out runs are measured with their seed's offset taken off too
    assert np.allclose(est.measure_runs(data.base), [est.data_.y(r) / est.unit_y_ for r in data.base])


def test_nothing_to_estimate_leaves_the_runs_as_they_are():
    one, _ = _sweep(0.03, seeds=1)
    data = group_ddo(one, metric="loss", seed_blocks=False)
    assert block_seeds(data) is data
    # seeds that never share a mixture with the others cannot be told from the mixtures: left in
    runs, _ = _sweep(0.03, seeds=2)
    split = [r if r.role != "perturbed" else dataclasses.replace(r, seed=r.seed + 10) for r in runs]
    data = group_ddo(split, metric="loss", seed_blocks=False)
    assert block_seeds(data) is data
    linked = [r if r.role != "perturbed" or r.seed == 0 else dataclasses.replace(r, seed=11) for r in runs]
    assert set(block_seeds(group_ddo(linked, metric="loss")).seed_offsets) == {0, 1, 11}


def test_without_shared_offsets_blocking_changes_little():
    runs, _ = _sweep(0.0, noise=0.005)
    a = DDO(n_bootstrap=50).fit(group_ddo(runs, metric="loss"))
    b = DDO(n_bootstrap=50).fit(group_ddo(runs, metric="loss", seed_blocks=False))
    assert a.noise_.sigma == pytest.approx(b.noise_.sigma, rel=0.35)
    assert np.max(np.abs(np.array(list(a.weights_.values())) - np.array(list(b.weights_.values())))) < 1e-6


def test_blocked_sweeps_keep_their_calibration_where_offsets_dominate():
    """Seeds' offsets twice the run noise: blocked, no false support and intervals near nominal;
    left in, the same sweeps' intervals are about 1.6x wider (and over-cover)."""
    null = simulate_setting(Setting("identical", seed_noise=0.01), 16, n_bootstrap=60, workers=2)
    assert null.supported == 0
    rnd = simulate_setting(Setting("random", seed_noise=0.01), 16, n_bootstrap=60, workers=2)
    left = simulate_setting(Setting("random", seed_noise=0.01, seed_blocks=False), 16, n_bootstrap=60, workers=2)
    assert 0.8 <= rnd.coverage <= 1.0
    assert rnd.mean_width < 0.75 * left.mean_width
    assert rnd.supported >= left.supported
