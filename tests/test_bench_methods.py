"""`python -m bench.methods --quick`: every method runs on one corpus and yields weights and a
target result (slow: about a minute on 2 CPU cores)."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_methods_quick_runs_every_method(tmp_path):
    import argparse

    from bench.methods import run

    args = argparse.Namespace(out=str(tmp_path), corpus=None, proxy_tokens=8192, target=32_768, seeds=2,
                              regmix_runs=12, eval_seqs=32, ray=None, ray_cpus=None, quick=True, quiet=True)
    res = run(args)
    names = {"uniform", "natural", "DDO", "AutoScale", "AutoScale schedule", "RegMix", "Data Mixing Laws", "DoReMi"}
    assert set(res["methods"]) == names
    for name, r in res["methods"].items():
        assert abs(sum(r["weights"].values()) - 1) < 1e-9
        lo, mid, hi = r["mean_perplexity"][1], r["mean_perplexity"][0], r["mean_perplexity"][2]
        assert lo <= mid <= hi and mid > 1
    assert res["methods"]["DoReMi"]["proxy_runs"] == 2 and res["methods"]["uniform"]["proxy_runs"] == 0
    assert res["methods"]["DDO"]["proxy_runs"] == 9  # base + 4 domains x 2 factors
