"""The earliest-deadline interleave: its prefix bound is the documented formula, never above
Tijdeman's bound or Megatron's greedy blend on the same shares, and it is the smallest."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bench.megatron_blend import blend_port
from mixer.kernels.deviation import max_prefix_deviation, max_prefix_deviation_items
from mixer.kernels.edf import edf, edf_items, smallest_feasible, smallest_feasible_items, tijdeman_bound
from mixer.kernels.targets import largest_remainder


def items(counts):
    """The plan's item interleave (`smallest_feasible_items`)."""
    counts = np.asarray(counts, np.int64)
    n = int(counts.sum())
    dom_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out_dom, out_pos = np.empty(n, np.int32), np.empty(n, np.int64)
    m = smallest_feasible_items(counts, out_dom, out_pos)
    return n, dom_start, out_dom, out_pos, m


def megatron(w, n):
    di, si = np.zeros(n, np.int16), np.zeros(n, np.int64)
    blend_port(di, si, w, len(w), n)
    return di


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2, 40), n=st.integers(50, 1500), seed=st.integers(0, 2**32 - 1))
def test_bound_is_the_formula_and_beats_megatron(k, n, seed):
    counts = largest_remainder(np.random.default_rng(seed).dirichlet(np.ones(k)), n)
    n, dom_start, d, p, m = items(counts)
    w = counts / n
    dev = max_prefix_deviation_items(d, w)
    assert abs(dev - m / n) < 1e-9  # the documented formula: D = m* / N
    assert dev <= tijdeman_bound(int(np.sum(counts > 0))) + 1e-9 or np.sum(counts > 0) < 2
    assert dev <= max_prefix_deviation_items(megatron(w, n), w) + 1e-9
    assert dev >= 1 - w.max() - 1e-9  # no order does better than its first item allows
    # each domain's items appear once each, in order
    for i in range(k):
        assert np.array_equal(p[d == i], np.arange(counts[i]))


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 12), n=st.integers(20, 600), seed=st.integers(0, 2**32 - 1))
def test_smallest(k, n, seed):
    counts = largest_remainder(np.random.default_rng(seed).dirichlet(np.ones(k)), n)
    n, dom_start, d, p, m = items(counts)
    tmp_d, tmp_p = np.empty_like(d), np.empty_like(p)
    assert edf_items(counts, m, True, tmp_d, tmp_p) < 0
    assert edf_items(counts, m - 1, True, tmp_d, tmp_p) >= 0  # one less fails
    # the general kernel (float windows, any segment lengths) agrees on unit items: same m*,
    # and its feasibility flips at the same tolerance
    assert smallest_feasible(np.ones(n, np.int64), dom_start, tmp_d, tmp_p) == m
    assert edf(np.ones(n, np.int64), dom_start, float(m - 1), True, tmp_d, tmp_p) >= 0


def test_megatron_example_and_uniform():
    # uniform weights: round robin, deviation (K-1)/K
    n, dom_start, d, p, m = items([5, 5, 5])
    assert d.tolist() == [0, 1, 2] * 5
    assert abs(max_prefix_deviation_items(d, np.full(3, 1 / 3)) - 2 / 3) < 1e-12
    # a skewed vector where Megatron's greedy strays further
    counts = np.array([50, 30, 15, 5])
    n, dom_start, d, p, m = items(counts)
    w = counts / n
    assert max_prefix_deviation_items(d, w) < max_prefix_deviation_items(megatron(w, n), w)


def test_segments_of_unequal_length_complete():
    rng = np.random.default_rng(3)
    lens = [rng.integers(1, 50, c) for c in (40, 70, 10)]
    seg_len = np.concatenate(lens).astype(np.int64)
    dom_start = np.cumsum([0, 40, 70, 10]).astype(np.int64)
    d, p = np.empty(120, np.int32), np.empty(120, np.int64)
    smallest_feasible(seg_len, dom_start, d, p)
    for i, c in enumerate((40, 70, 10)):
        assert np.array_equal(p[d == i], np.arange(c))
    # no bound is claimed for unequal segments (only unit items carry one); the stream is whole
    share = np.array([x.sum() for x in lens]) / seg_len.sum()
    assert max_prefix_deviation(d, seg_len[dom_start[d] + p].astype(np.float64), share) < 2 * seg_len.max()


def test_mlm_plan_uses_it(tmp_path):
    """A masked-LM plan's rows are unit items: its order is the smallest-deviation one,
    recorded in the plan and index.json, never above Megatron's blend on the same shares."""
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

    names = [f"d{i}" for i in range(9)]
    write_synthetic_corpus(tmp_path / "c", {n: lognormal_lengths(400, 30, 0.5, i) for i, n in enumerate(names)},
                           vocab_size=300)
    w = np.random.default_rng(1).dirichlet(np.ones(9))
    config = PlanConfig(tokens=64 * 1500, seq_len=64, seed=2, objective="mlm", max_epochs=math.inf)
    plan = build_plan(tmp_path / "c", dict(zip(names, w / w.sum())), config)
    again = build_plan(tmp_path / "c", dict(zip(names, w / w.sum())), config)
    assert plan.interleave == "edf" and np.array_equal(plan.seg_domain, again.seg_domain)
    counts = np.bincount(plan.seg_domain, minlength=9)
    assert np.array_equal(counts, plan.targets)
    share = counts / counts.sum()
    n, _, d, _, m = items(counts)
    assert np.array_equal(plan.seg_domain, d)
    dev = max_prefix_deviation_items(plan.seg_domain, share)
    assert abs(dev - m / n) < 1e-9 and dev <= max_prefix_deviation_items(megatron(share, n), share) + 1e-9


def test_causal_plan_with_edf_option(tmp_path):
    """`interleave="edf"` on a causal plan orders documents by the smallest deviation in
    documents (never above Megatron's on the document shares); counts stay exact; the CLI
    flag reaches index.json; "auto" keeps the token-level midpoint merge for causal plans."""
    from click.testing import CliRunner

    from mixer.cli.main import main
    from mixer.core.errors import MixerError
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

    names = [f"d{i}" for i in range(6)]
    write_synthetic_corpus(tmp_path / "c", {n: lognormal_lengths(300, 40, 1.0, i) for i, n in enumerate(names)},
                           vocab_size=300)
    w = dict(zip(names, [0.3, 0.25, 0.2, 0.12, 0.08, 0.05]))
    auto = build_plan(tmp_path / "c", w, PlanConfig(tokens=64 * 300, seq_len=64, seed=1))
    plan = build_plan(tmp_path / "c", w, PlanConfig(tokens=64 * 300, seq_len=64, seed=1, interleave="edf"))
    assert auto.interleave == "midpoint" and plan.interleave == "edf"
    assert np.array_equal(plan.realised(), plan.targets) and np.array_equal(auto.realised(), plan.targets)
    counts = np.bincount(plan.seg_domain, minlength=6)
    share = counts / counts.sum()
    n, _, d, _, m = items(counts)
    dev = max_prefix_deviation_items(plan.seg_domain, share)
    assert abs(dev - m / n) < 1e-9 and dev <= max_prefix_deviation_items(megatron(share, n), share) + 1e-9
    assert dev < max_prefix_deviation_items(auto.seg_domain, share)  # midpoint balances tokens instead
    with pytest.raises(MixerError, match="--interleave"):
        build_plan(tmp_path / "c", w, PlanConfig(tokens=64 * 300, seq_len=64, interleave="random"))
    args = ["build-shards", "--corpus", str(tmp_path / "c"), "--tokens", "19200", "--seq-len", "64",
            "--interleave", "edf", "--out", str(tmp_path / "s")] + [f"--weight={k}={v}" for k, v in w.items()]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s" / "index.json").read_text())["interleave"] == "edf"


def test_sampler_matches_shards_with_edf(tmp_path):
    """MixtureSampler(interleave="edf") yields exactly the rows build-shards writes with it."""
    from mixer import MixtureSampler, MixtureStream
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.shards.write import ShardConfig, write_shards
    from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

    names = ["a", "b", "c"]
    write_synthetic_corpus(tmp_path / "c", {n: lognormal_lengths(200, 30, 1.0, i) for i, n in enumerate(names)},
                           vocab_size=200)
    w = {"a": 0.5, "b": 0.3, "c": 0.2}
    plan = build_plan(tmp_path / "c", w, PlanConfig(tokens=32 * 200, seq_len=32, seed=4, interleave="edf"))
    write_shards(plan, tmp_path / "c", tmp_path / "s", ShardConfig(shard_tokens=32 * 64))
    rows = [x["input_ids"] for x in MixtureStream(tmp_path / "s", rank=0, world_size=1)]
    again = [x["input_ids"] for x in MixtureSampler(tmp_path / "c", w, 32 * 200, 32, 4, interleave="edf",
                                                   rank=0, world_size=1)]
    assert len(rows) == len(again) == 200 and all(np.array_equal(a, b) for a, b in zip(rows, again))
