"""The interleave and gather benchmarks run end to end at toy sizes (the CI's check that
`python -m bench.interleave` and the gather part of `python -m bench.sampler` still work), and
their figures say what they measured."""
import numpy as np

from bench import interleave, sampler


def test_interleave_bench_runs_and_meets_the_error_goal():
    res = interleave.run(vectors=4, items=3000, speed_items=20_000, repeats=1)
    assert [r["K"] for r in res["prefix_error"]] == [7, 30, 1000]
    for r in res["prefix_error"]:
        assert r["vectors_where_blend_larger"] == 0  # never worse than Megatron on unrounded weights
        assert r["worst_case"]["excess"] <= 1e-12
    assert [r["K"] for r in res["speed"]] == [7, 30, 1000, 10000]
    assert all(r["ratio_1t"] > 0 for r in res["speed"])


def test_gather_bench_runs_and_output_is_identical(tmp_path):
    corpus = tmp_path / "corpus"
    sampler.make_corpus(corpus, 400_000)
    g = sampler.bench_gather(corpus, 300_000, 256, repeats=1)
    assert g["identical_output"]
    assert g["bytes_tokens_and_sidecar"] == g["tokens"] * 3  # uint16 tokens + uint8 domain ids
    for k in ("ratio_1t", "ratio_2t", "speedup_2t_over_1t"):
        assert np.isfinite(g[k]) and g[k] > 0
