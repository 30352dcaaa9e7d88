"""RegMix as published: candidates drawn around the token distribution, LightGBM (or ridge)
regression, the top-k mean, Spearman on held-out mixtures; and `mixer loop regmix` end to end,
resumable after a kill like the DDO sweep."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import mixer.loop.sweep
from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.loop.regmix import RegMixConfig, loop_regmix, plan_regmix
from mixer.loop.runner import TrainSpec
from mixer.loop.sweep import LoopConfig, run_folder
from mixer.formats.synthetic import write_skewed_corpus
from mixer.solver.baselines.regmix import RegMixSettings, regmix_weights, sample_mixtures, spearman, token_prior

OPT = np.array([0.45, 0.3, 0.15, 0.1])
PRIOR = token_prior(np.array([10.0, 40.0, 30.0, 20.0]))


def bowl(W: np.ndarray) -> np.ndarray:
    """A loss surface whose minimum on the simplex is OPT (interior), 2.0 there."""
    return 2.0 + 3.0 * ((W - OPT) ** 2).sum(axis=1)


def test_token_prior_and_candidates_centre_on_the_tempered_token_distribution():
    assert np.allclose(token_prior(np.array([1.0, 4.0]), 0.5), [1 / 3, 2 / 3])
    assert np.allclose(token_prior(np.array([1.0, 4.0]), 1.0), [0.2, 0.8])
    W = sample_mixtures(PRIOR, 6000, seed=1)
    assert np.allclose(W.sum(axis=1), 1.0) and (W >= 0).all()
    assert np.abs(W.mean(axis=0) - PRIOR).max() < 0.02  # E[Dir(s p)] = p at every strength s
    assert np.array_equal(W, sample_mixtures(PRIOR, 6000, seed=1))
    with pytest.raises(ValueError, match="token counts"):
        token_prior(np.array([1.0, -1.0]))


def test_lightgbm_recovers_the_optimum_of_a_known_surface_and_ranks_held_out_mixtures():
    W = sample_mixtures(PRIOR, 200, seed=3)
    res = regmix_weights(W, bowl(W), RegMixSettings(model="lightgbm", n_search=20_000, seed=0), prior=PRIOR)
    assert res.regressor == "lightgbm" and res.r2 > 0.99
    assert np.abs(res.x - OPT).max() < 0.08, res.x
    assert abs(res.x.sum() - 1) < 1e-12
    held = sample_mixtures(PRIOR, 40, seed=9)
    assert spearman(res.model.predict(held), bowl(held)) > 0.9
    again = regmix_weights(W, bowl(W), RegMixSettings(model="lightgbm", n_search=20_000, seed=0), prior=PRIOR)
    assert np.array_equal(res.x, again.x)  # same inputs and seed, same answer


def test_ridge_quadratic_is_kept_and_exact_on_a_quadratic_surface():
    W = sample_mixtures(PRIOR, 40, seed=4)
    res = regmix_weights(W, bowl(W), RegMixSettings(model="quadratic", seed=0), prior=PRIOR)
    assert np.abs(res.x - OPT).max() < 1e-4
    with pytest.raises(ValueError, match="expected one of"):
        regmix_weights(W, bowl(W), RegMixSettings(model="forest"))


def test_spearman_known_values():
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([10, 20, 30, 40.0])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([4, 3, 2, 1.0])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 2.0]), np.array([1, 2.0])) is None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("regmix") / "corpus"
    write_skewed_corpus(out, {"a": rng.integers(40, 200, 100), "b": rng.integers(40, 200, 200),
                              "c": rng.integers(40, 200, 150)},
                        {d: rng.integers(40, 200, 12) for d in "abc"}, vocab_size=256)
    return out


def config(corpus, out, **kw) -> RegMixConfig:
    loop = LoopConfig(corpus=corpus, out=out, train=TrainSpec(eval_seqs=8), n_bootstrap=0, plots=False,
                      progress=False)
    return RegMixConfig(loop=loop, runs=8, held_out=3, n_search=5_000, **kw)


def test_loop_regmix_end_to_end_and_resumes_after_a_kill(corpus, tmp_path, monkeypatch):
    out = tmp_path / "loop"
    full = loop_regmix(config(corpus, out), 8192)
    assert full.ran == 11 and len(full.runs) == 8 and len(full.held_out) == 3
    w = json.loads(full.weights_path.read_text())
    assert w["method"] == "regmix" and w["provenance"]["model"] == "lightgbm"
    assert abs(sum(w["weights"].values()) - 1) < 1e-9
    assert w["provenance"]["held_out"]["spearman"] == full.spearman and len(w["provenance"]["held_out"]["measured"]) == 3
    # The prior is the training-token distribution ^ 0.5.
    assert full.prior["b"] > full.prior["c"] > full.prior["a"]
    fitted, held = plan_regmix(config(corpus, out), 8192)
    assert all(min(s.weights.values()) >= 1e-3 - 1e-12 for s in fitted + held)
    assert len({tuple(s.weights.values()) for s in fitted + held}) == 11

    # Kill after one of three missing runs; the same call trains only the other two.
    (out / "weights.json").unlink()
    for spec in fitted[1:3] + held[:1]:
        shutil.rmtree(run_folder(out / "runs", spec))
    calls: list[str] = []
    real = mixer.loop.sweep.execute

    def counting(spec, limit=None, **kw):
        calls.append(spec.name)
        if limit is not None and len(calls) > limit:
            raise KeyboardInterrupt
        return real(spec, **kw)

    monkeypatch.setattr(mixer.loop.sweep, "execute", lambda spec, **kw: counting(spec, limit=1, **kw))
    with pytest.raises(KeyboardInterrupt):
        loop_regmix(config(corpus, out), 8192)
    calls.clear()
    monkeypatch.setattr(mixer.loop.sweep, "execute", counting)
    res = loop_regmix(config(corpus, out), 8192)
    assert res.ran == 2 and len(calls) == 2
    assert res.weights == full.weights  # same inputs, same training, same answer


def test_cli_loop_regmix_bad_input_is_one_line(corpus, tmp_path):
    r = CliRunner().invoke(main, ["loop", "regmix", "--corpus", str(corpus), "--tokens", "8192",
                                  "--out", str(tmp_path / "o"), "--runs", "2"])
    assert r.exit_code == 2 and "--runs 2" in r.output and len(r.output.strip().splitlines()) == 1
    with pytest.raises(MixerError, match="--top-k"):
        plan_regmix(RegMixConfig(loop=LoopConfig(corpus=corpus, out=tmp_path), top_k=0), 8192)
    with pytest.raises(MixerError, match="--eval-domains: 'z'"):  # refused before any run is trained
        plan_regmix(RegMixConfig(loop=LoopConfig(corpus=corpus, out=tmp_path, eval_domains=("z",))), 8192)


def test_training_mixtures_keep_the_usage_bound(corpus, tmp_path):
    """At most 2 epochs of each domain in a corpus-sized run: no planned mixture goes above
    2 x its token share (plus the 0.1 % floor), and the shares are distinct."""
    from mixer.formats.corpus import load_manifest

    tokens = load_manifest(corpus).tokens("train")
    share = {d: n / sum(tokens.values()) for d, n in tokens.items()}
    fitted, held = plan_regmix(config(corpus, tmp_path, max_usage=2.0), 8192)
    specs = fitted + held
    assert all(s.weights[d] <= 2 * share[d] + 2e-3 for s in specs for d in share)
    assert max(max(s.weights[d] / share[d] for d in share) for s in specs) > 1.5  # the bound binds, not the prior
    assert len({tuple(s.weights.values()) for s in specs}) == len(specs)


@pytest.mark.slow
def test_loop_regmix_on_a_local_ray_cluster_matches_sequential(corpus, tmp_path):
    from dataclasses import replace

    seq = loop_regmix(config(corpus, tmp_path / "seq"), 8192)
    cfg = config(corpus, tmp_path / "ray")
    ray = loop_regmix(replace(cfg, loop=replace(cfg.loop, ray="local", ray_cpus=2)), 8192)
    assert ray.ran == 11
    assert ray.weights_path.read_bytes() != b"" and ray.weights == seq.weights


def test_cli_solve_regmix_with_lightgbm(tmp_path):
    """`mixer solve regmix --regressor lightgbm` on random-mixture runs of a known mixing law: its answer
    is close to the law's own optimum (LightGBM is the default, as in `mixer loop regmix`)."""
    from mixer.formats.weights import load_weights
    from support import mixing_law_runs, write_runs

    c, k = np.array([2.0, 1.5, 3.0]), np.array([1.0, 0.8, 1.2])
    T = np.array([[-3, 1, 2], [1, -2.5, 1.5], [0.5, 1, -1.5]], float)
    T -= T.mean(axis=1, keepdims=True)
    write_runs(tmp_path / "mix", mixing_law_runs(c, k, T, 120, domains=("a", "b", "c")))
    out = tmp_path / "w.json"
    r = CliRunner().invoke(main, ["solve", "regmix", str(tmp_path / "mix"), "--out", str(out), "--regressor", "lightgbm",
                                  "--bootstrap", "0", "--no-plots"])
    assert r.exit_code == 0, r.output
    w = load_weights(out)
    assert w.provenance["model"] == "lightgbm"
    # The optimum of mean_i L_i(r) is (0.468, 0.314, 0.217) (tests/test_solver_cli.py).
    np.testing.assert_allclose([w.weights[d] for d in "abc"], [0.468, 0.314, 0.217], atol=0.08)
