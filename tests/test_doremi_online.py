"""DoReMi online: the official step checked by hand on a toy case, the trainer's step hook (shapes,
weights changing the sampler), and `mixer loop doremi` end to end, cached and resumable."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mixer.loop.doremi as doremi_loop
from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.loop.doremi import DoReMiConfig, loop_doremi
from mixer.loop.runner import TrainSpec
from mixer.formats.synthetic import random_skewed_corpus
from mixer.solver.baselines.doremi import DoReMiWeights, per_token_excess
from mixer.trainers.hf_train import DataSource, TrainConfig, train
from mixer.trainers.hooks import WeightedDomainSampler


def test_per_token_clip_and_one_step_match_a_hand_computation():
    # Domain 0 tokens: excess +1, -1; domain 1: 0, +0.5. Per token clipped: means 0.5 and 0.25
    # (clipping the domain means instead would give 0 and 0.25).
    ex = per_token_excess([3.0, 1.0, 2.0, 2.5], [2.0, 2.0, 2.0, 2.0], [0, 0, 1, 1], [1, 1, 1, 1], 3)
    np.testing.assert_allclose(ex, [0.5, 0.25, np.nan])  # domain 2 has no token: NaN, its score is kept
    ex2 = per_token_excess([3.0, 9.0], [2.0, 0.0], [0, 0], [1, 0], 1)
    np.testing.assert_allclose(ex2, [1.0])  # an uncounted token does not enter the mean
    eta, c = 0.5, 0.1
    w = DoReMiWeights(domains=("a", "b", "c"), eta=eta, smoothing=c)
    got = w.update_excess(ex)  # domain 2 keeps its initial score, 0
    a = np.array([1 / 3 * math.exp(eta * 0.5), 1 / 3 * math.exp(eta * 0.25), 1 / 3])
    want = (1 - c) * a / a.sum() + c / 3
    np.testing.assert_allclose(got, want, rtol=1e-12)
    second = w.update_excess([np.nan, 0.0, 1.0])  # domain 0 absent now: it keeps its 0.5
    a2 = want * np.exp(eta * np.array([0.5, 0.0, 1.0]))
    np.testing.assert_allclose(second, (1 - c) * a2 / a2.sum() + c / 3, rtol=1e-12)
    np.testing.assert_allclose(list(w.average_.values()), (want + second) / 2, rtol=1e-12)
    np.testing.assert_allclose(w.scores_, [0.5, 0.0, 1.0])


def test_weighted_mean_loss_by_hand():
    import torch

    from mixer.trainers.hooks import weighted_mean_loss

    loss = torch.tensor([1.0, 3.0, 2.0, 8.0])
    dom = torch.tensor([0, 0, 1, 1])
    counted = torch.tensor([1.0, 1.0, 1.0, 0.0])  # the last token is not scored
    assert float(weighted_mean_loss(loss, dom, counted, None)) == pytest.approx(2.0)
    # weights 0.75 / 0.25: (0.75*1 + 0.75*3 + 0.25*2) / (0.75 + 0.75 + 0.25)
    assert float(weighted_mean_loss(loss, dom, counted, torch.tensor([0.75, 0.25]))) == pytest.approx(3.5 / 1.75)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return random_skewed_corpus(tmp_path_factory.mktemp("doremi") / "corpus", "abc", 120, 12)


def test_step_hook_sees_per_token_losses_and_its_weights_drive_the_sampler(corpus, tmp_path):
    cfg = TrainConfig(model="gpt2", preset="tiny", steps=6, eval_seqs=4, progress=False)
    p = cfg.resolve()
    sampler = WeightedDomainSampler(corpus, {"a": 1, "b": 1, "c": 1}, p.seq_len, p.batch_size, seed=0)
    seen = []

    def hook(s):
        seen.append((s.step, tuple(s.token_loss.shape), tuple(s.token_domain.shape), tuple(s.counted.shape),
                     len(s.batches), s.domains, sorted(set(s.token_domain[s.counted > 0].tolist()))))
        return {"b": 1.0} if s.step == 2 else None

    train(cfg, sampler.source(10**9), tmp_path / "run", step_hooks=[hook])
    n = p.batch_size * p.seq_len * p.grad_accum
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5, 6]
    assert all(s[1:4] == ((n,),) * 3 and s[4] == p.grad_accum and s[5] == ("a", "b", "c") for s in seen)
    assert all(s[6] == [1] for s in seen[2:])  # after step 2 the hook's weights: only domain b is drawn
    # A source that cannot change its weights is refused by name.
    fixed = DataSource(batches=iter(sampler), corpus=corpus, weights={"a": 1 / 3, "b": 1 / 3, "c": 1 / 3},
                       budget_tokens=10**9, seq_len=p.seq_len)
    with pytest.raises(MixerError, match="set_weights"):
        train(cfg, fixed, tmp_path / "run2", step_hooks=[lambda s: {"a": 1.0}])


def test_loop_doremi_end_to_end_cached_and_resumable(corpus, tmp_path, monkeypatch):
    cfg = DoReMiConfig(corpus=corpus, out=tmp_path / "loop", train=TrainSpec(eval_seqs=8), progress=False)
    res = loop_doremi(cfg, 8192)
    assert res.ran == 2 and res.trajectory.shape == (16, 3)
    w = json.loads(res.weights_path.read_text())
    assert w["method"] == "doremi" and w["budget_tokens"] == 8192
    traj = np.array(w["provenance"]["trajectory"])
    np.testing.assert_allclose(list(w["weights"].values()), traj.mean(axis=0) / traj.mean(axis=0).sum(), atol=1e-12)
    assert w["provenance"]["final_weights"] == dict(zip("abc", traj[-1].tolist()))
    assert np.all(traj >= 1e-3 / 3 - 1e-15)  # the smoothing keeps every domain above c/m
    assert res.plots[0].stat().st_size > 1000
    assert loop_doremi(cfg, 8192).ran == 0  # everything cached
    # Killed while training the proxy: the reference stays cached, the proxy is trained again, same answer.
    out2 = tmp_path / "loop2"
    cfg2 = DoReMiConfig(corpus=corpus, out=out2, train=TrainSpec(eval_seqs=8), progress=False)
    real = doremi_loop._train_proxy

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(doremi_loop, "_train_proxy", killed)
    with pytest.raises(KeyboardInterrupt):
        loop_doremi(cfg2, 8192)
    monkeypatch.setattr(doremi_loop, "_train_proxy", real)
    again = loop_doremi(cfg2, 8192)
    assert again.ran == 1 and again.weights == res.weights  # same inputs and seeds, same weights
    # The resampling variant shares the reference (same key) and trains only its own proxy.
    other = loop_doremi(DoReMiConfig(corpus=corpus, out=tmp_path / "loop3", train=TrainSpec(eval_seqs=8),
                                     mode="resample", cache=tmp_path / "loop" / "runs", progress=False), 8192)
    assert other.ran == 1 and other.trajectory.shape == (16, 3)
    assert json.loads(other.weights_path.read_text())["provenance"]["mode"] == "resample"


def test_cli_loop_doremi_bad_input_is_one_line(corpus, tmp_path):
    r = CliRunner().invoke(main, ["loop", "doremi", "--corpus", str(corpus), "--tokens", "8192",
                                  "--out", str(tmp_path / "o"), "--smoothing", "2"])
    assert r.exit_code == 2 and "--smoothing 2.0" in r.output and len(r.output.strip().splitlines()) == 1
