"""`--interleave blend` (masked LM): the rows of every shard in an order whose every prefix stays
within Megatron's prefix error of the weights as given, with the exact per-domain counts of the
default order; refused for causal documents."""
import numpy as np
import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from mixer.kernels.blend import megatron_error
from mixer.shards.plan import PlanConfig, build_plan

W = {"code": 0.23, "news": 0.4637, "wiki": 0.3063}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("blend") / "c"
    write_synthetic_corpus(out, {d: lognormal_lengths(600, 40, 0.8, i) for i, d in enumerate(W)}, vocab_size=5000,
                           seed=5)
    return out


def test_blend_keeps_counts_and_is_never_worse_than_megatron(corpus):
    cfg = PlanConfig(tokens=64 * 997, seq_len=64, seed=3, objective="mlm")
    edf = build_plan(corpus, W, cfg)
    blend = build_plan(corpus, W, PlanConfig(tokens=64 * 997, seq_len=64, seed=3, objective="mlm",
                                             interleave="blend"))
    assert blend.interleave == "blend"
    np.testing.assert_array_equal(np.bincount(blend.seg_domain), np.bincount(edf.seg_domain))  # exact counts
    w = np.array([W[d] for d in blend.domains])
    onehot = np.eye(len(w))[blend.seg_domain]
    n = np.arange(1, blend.seg_domain.size + 1)[:, None]
    ours = float(np.max(np.abs(np.cumsum(onehot, axis=0) - w * n)))
    assert ours <= megatron_error(w, blend.seg_domain.size) + 1e-9
    again = build_plan(corpus, W, PlanConfig(tokens=64 * 997, seq_len=64, seed=3, objective="mlm", interleave="blend"))
    np.testing.assert_array_equal(again.seg_domain, blend.seg_domain)


def test_blend_is_refused_for_causal_documents(corpus, tmp_path):
    with pytest.raises(MixerError, match="--interleave blend: orders masked-LM rows"):
        PlanConfig(tokens=6400, seq_len=64, interleave="blend")
    r = CliRunner().invoke(main, ["build-shards", "--corpus", str(corpus), "--weight", "code=1", "--tokens", "6400",
                                  "--seq-len", "64", "--interleave", "blend", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "--interleave blend" in r.output and not (tmp_path / "s").exists()


def test_blend_shards_are_written_and_read_back(corpus, tmp_path):
    from mixer import MixtureStream
    from mixer.formats.shards import read_index
    from mixer.shards import build
    from mixer.shards.write import ShardConfig

    cfg = PlanConfig(tokens=64 * 300, seq_len=64, seed=3, objective="mlm", interleave="blend")
    build(corpus, W, tmp_path / "s", plan=cfg, shards=ShardConfig(shard_tokens=64 * 100, workers=1))
    assert read_index(tmp_path / "s").interleave == "blend"
    assert sum(b["input_ids"].numel() for b in MixtureStream(tmp_path / "s")) == 300 * 64
