"""DoReMi with domains absent from a step: the official update keeps an absent domain's last
score (sangmichaelxie/doremi, `update_domain_weights`). Known answer: when every domain has the
same true excess loss, Group DRO has no reason to move, so the weights must stay near uniform,
however skewed the base mixture and however small the batch. Scoring an absent domain 0 (the
earlier rule) fails this: the domains that happen to be drawn gain every step.

Scores start at the common excess: the official code starts them at log(vocabulary size), the
loss of an untrained proxy, i.e. the excess every domain has at the first step; here the excess
never changes, so its analogue is the excess itself."""
from __future__ import annotations

import numpy as np
import pytest

from mixer.solver.baselines.doremi import (
    DoReMiWeights,
    doremi_weights,
    per_token_excess,
)

BASE = np.array([0.6, 0.2, 0.1, 0.06, 0.04])  # skewed: the small domains miss most steps
SEQS, SEQ_LEN, EXCESS, NOISE, STEPS = 8, 64, 0.5, 0.05, 200


def simulate(mode: str, *, absent_as_zero: bool = False, seed: int = 0) -> tuple[np.ndarray, float]:
    """(trajectory, share of steps with some domain absent): 8 sequences per step drawn from the
    base mixture ("reweight") or from the current weights ("resample"); every token's excess is
    EXCESS plus Gaussian noise, the same law for every domain."""
    rng = np.random.default_rng(seed)
    m = BASE.size
    w = DoReMiWeights(domains=[f"d{i}" for i in range(m)], eta=1.0, smoothing=1e-3, initial_score=EXCESS)
    traj, absent = [], 0
    for _ in range(STEPS):
        draw = BASE if mode == "reweight" else w.weights_
        seq_dom = rng.choice(m, size=SEQS, p=draw / draw.sum())
        dom = np.repeat(seq_dom, SEQ_LEN)
        ref = rng.uniform(2.0, 4.0, dom.size)
        proxy = ref + EXCESS + NOISE * rng.standard_normal(dom.size)
        ex = per_token_excess(proxy, ref, dom, np.ones(dom.size), m)
        absent += bool(np.isnan(ex).any())
        traj.append(w.update_excess(np.nan_to_num(ex, nan=0.0) if absent_as_zero else ex).copy())
    return np.array(traj), absent / STEPS


@pytest.mark.parametrize("mode", ["reweight", "resample"])
def test_equal_excess_keeps_the_weights_near_uniform_with_absent_domains(mode):
    traj, absent = simulate(mode)
    assert absent > 0.5  # the case is the one at issue: most steps miss a domain
    near = np.max(np.abs(traj - 1 / BASE.size), axis=1) <= 0.1
    assert near.mean() >= 0.95, f"{mode}: only {near.mean():.0%} of steps within 0.1 of uniform"
    assert np.max(np.abs(traj.mean(axis=0) - 1 / BASE.size)) <= 0.05


@pytest.mark.parametrize("mode", ["reweight", "resample"])
def test_scoring_absent_domains_zero_collapses_onto_one_domain(mode):
    traj, _ = simulate(mode, absent_as_zero=True)
    assert traj[-1].max() > 0.8  # the rule the official code does not use: one domain takes it all
    assert (np.max(np.abs(traj - 1 / BASE.size), axis=1) <= 0.1).mean() < 0.5


def test_replay_keeps_the_last_score_of_a_domain_without_tokens():
    # Step 0: excess (1, 0); step 1: domain 0 has no tokens (NaN) -> its 1 is kept, not 0.
    P = np.array([[3.0, 2.0], [np.nan, 2.0]])
    R = np.array([2.0, 2.0])
    res = doremi_weights(P, R, eta=1.0, smoothing=0.0)
    a1 = np.array([np.e, 1.0]) / (np.e + 1.0)
    a2 = a1 * np.array([np.e, 1.0])
    np.testing.assert_allclose(res.trajectory, [a1, a2 / a2.sum()], rtol=1e-12)
    # Absent before it was ever seen: the initial score.
    res0 = doremi_weights(np.array([[np.nan, 2.0]]), R, eta=1.0, smoothing=0.0, initial_score=2.0)
    np.testing.assert_allclose(res0.trajectory[0], np.array([np.e ** 2, 1.0]) / (np.e ** 2 + 1.0), rtol=1e-12)
