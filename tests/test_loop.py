"""The closed loop on CPU in seconds: a tiny DDO sweep gives weights on the simplex, resumes from
its cache after an interruption without re-running finished runs, and a local Ray cluster
gives the same weights.json as the sequential sweep, byte for byte."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mixer.loop.sweep
from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.loop.sweep import LoopConfig, loop_ddo, plan_sweep, run_folder
from mixer.loop.autoscale import loop_autoscale
from mixer.loop.runner import RunSpec, TrainSpec
from mixer.testing import write_skewed_corpus

BUDGET = 8192
DOMAINS = ("a", "b", "c")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("loop") / "corpus"
    write_skewed_corpus(out, {d: rng.integers(40, 200, 150) for d in DOMAINS},
                        {d: rng.integers(40, 200, 12) for d in DOMAINS}, vocab_size=256)
    return out


def config(corpus: Path, out: Path, **kw) -> LoopConfig:
    train = TrainSpec(model="gpt2", preset="tiny", eval_seqs=8)
    return LoopConfig(corpus=corpus, out=out, train=train, factors=(2.0, 0.5), n_bootstrap=0, plots=False,
                      progress=False, **kw)


@pytest.fixture(scope="module")
def sequential(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "loop"
    return loop_ddo(replace(config(corpus, out), plots=True), BUDGET)


def test_sweep_writes_weights_on_the_simplex(sequential):
    res = sequential
    assert res.ran == 7  # base + 3 domains x 2 factors
    w = json.loads(res.weights_path.read_text())
    assert w["method"] == "ddo" and w["budget_tokens"] == BUDGET
    assert set(w["weights"]) == set(DOMAINS)
    assert all(v >= 0.2 / 3 - 1e-12 for v in w["weights"].values())  # the authors' floor, 1/5 of uniform
    assert abs(sum(w["weights"].values()) - 1) < 1e-9
    assert set(w["provenance"]["runs"]) == {"base", *(f"{d}-x{f:g}" for d in DOMAINS for f in (2, 0.5))}
    for p in res.plots:
        assert p.stat().st_size > 1000
    # Every run folder: spec.json + run.json with the solver's provenance.
    for name, path in res.runs.items():
        run = json.loads(path.read_text())
        assert run["provenance"]["run_name"] == name and run["budget_tokens"] == BUDGET
        spec = json.loads((path.parent / "spec.json").read_text())
        assert path.parent.name.endswith("-" + spec["key"][:8]) and path.parent.parent.name == "8192"


def test_key_changes_with_every_input(corpus, tmp_path):
    spec = plan_sweep(config(corpus, tmp_path), BUDGET)[0]
    keys = {spec.key()}
    for change in (dict(budget_tokens=BUDGET + 1), dict(weights={"a": 0.5, "b": 0.25, "c": 0.25}),
                   dict(train=replace(spec.train, seed=1)), dict(train=replace(spec.train, data_seed=1)),
                   dict(train=replace(spec.train, preset="small")), dict(train=replace(spec.train, lr=1e-3)),
                   dict(corpus_sha256="0" * 64)):
        keys.add(replace(spec, **change).key())
    assert len(keys) == 8
    # Not in the key: where the corpus lives, the display name, threads, device.
    assert replace(spec, corpus="/elsewhere", name="x", train=replace(spec.train, threads=4, device="cpu")).key() \
        == spec.key()


def test_interrupted_sweep_resumes_without_rerunning(corpus, sequential, tmp_path, monkeypatch):
    out = tmp_path / "loop"
    shutil.copytree(sequential.weights_path.parent, out)
    (out / "weights.json").unlink()
    specs = plan_sweep(config(corpus, out), BUDGET)
    for spec in specs[2:5]:  # three runs never finished
        shutil.rmtree(run_folder(out / "runs", spec))
    kept = {s.key(): (run_folder(out / "runs", s) / "run.json").stat().st_mtime_ns for s in specs[:2] + specs[5:]}

    calls: list[str] = []
    real = mixer.loop.sweep.execute

    def counting(spec: RunSpec, limit: int | None = None):
        calls.append(spec.name)
        if limit is not None and len(calls) > limit:
            raise KeyboardInterrupt  # killed while training the second missing run
        return real(spec)

    monkeypatch.setattr(mixer.loop.sweep, "execute", lambda spec: counting(spec, limit=1))
    with pytest.raises(KeyboardInterrupt):
        loop_ddo(config(corpus, out), BUDGET)
    assert calls == [specs[2].name, specs[3].name]
    assert not (out / "weights.json").exists()
    assert not any(p.name.startswith(".") for p in (out / "runs").iterdir())  # no half-written folder left
    calls.clear()
    monkeypatch.setattr(mixer.loop.sweep, "execute", counting)
    res = loop_ddo(config(corpus, out), BUDGET)
    assert calls == [specs[3].name, specs[4].name] and res.ran == 2  # only what was missing
    for key, mtime in kept.items():
        spec = next(s for s in specs if s.key() == key)
        assert (run_folder(out / "runs", spec) / "run.json").stat().st_mtime_ns == mtime
    # Same inputs, same training: the resumed sweep ends at the sequential sweep's weights, exactly.
    assert json.loads(res.weights_path.read_text())["weights"] == sequential.weights


def test_cli_reuses_a_shared_cache(corpus, sequential, tmp_path):
    cache = sequential.weights_path.parent / "runs"
    args = ["loop", "ddo", "--corpus", str(corpus), "--out", str(tmp_path / "cli"), "--tokens", str(BUDGET),
            "--factors", "2,0.5", "--eval-seqs", "8", "--cache", str(cache), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "0 trained now" in result.output  # every run came from the shared cache
    assert json.loads((tmp_path / "cli" / "weights.json").read_text())["weights"] == sequential.weights
    bad = CliRunner().invoke(main, ["loop", "ddo", "--corpus", str(corpus), "--out", str(tmp_path / "x"),
                                    "--tokens", "8k", "--preset", "huge"])
    assert bad.exit_code == 2 and "--preset 'huge'" in bad.output


def test_factor_too_large_is_one_line(corpus, tmp_path):
    with pytest.raises(MixerError, match="smaller factor"):
        loop_ddo(replace(config(corpus, tmp_path), factors=(3.0,)), BUDGET)


def test_ray_local_cluster_matches_sequential(corpus, sequential, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    res = loop_ddo(replace(config(corpus, out), plots=True, ray="local", ray_cpus=2), BUDGET)
    assert res.ran == 7
    assert res.weights_path.read_bytes() == sequential.weights_path.read_bytes()
    for name, path in res.runs.items():
        a, b = json.loads(path.read_text()), json.loads(sequential.runs[name].read_text())
        assert a["final_loss"] == b["final_loss"], name


def test_autoscale_loop_reuses_the_scale_it_shares(corpus, sequential, tmp_path):
    out = tmp_path / "as"
    cfg = replace(config(corpus, out), cache=sequential.weights_path.parent / "runs")
    res = loop_autoscale(cfg, [BUDGET, 2 * BUDGET], target=8 * BUDGET)
    assert res.ran == 7  # the first scale came from the cache
    assert res.scales[0].weights == sequential.weights
    w = json.loads(res.weights_path.read_text())
    assert w["method"] == "autoscale" and w["budget_tokens"] == 8 * BUDGET
    assert abs(sum(w["weights"].values()) - 1) < 1e-9 and min(w["weights"].values()) > 0
    with pytest.raises(MixerError, match="must exceed"):
        loop_autoscale(cfg, [BUDGET, 2 * BUDGET], target=BUDGET)


def test_cli_seeds_give_intervals_held_out_checks_and_a_printed_verdict(corpus, tmp_path):
    """`mixer loop ddo --seeds 2 --validate 1`: the noise is measured, every weight has a finite
    interval around it, the held-out mixture is predicted, and the verdict is printed and stored."""
    out = tmp_path / "seeds"
    args = ["loop", "ddo", "--corpus", str(corpus), "--out", str(out), "--tokens", str(BUDGET), "--factors", "2,0.5",
            "--eval-seqs", "8", "--seeds", "2", "--validate", "1", "--bootstrap", "40", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "14 runs + 1 held out, 15 trained now" in result.output   # 2 seeds x (base + 3 x 2) + 1 held out
    w = json.loads((out / "weights.json").read_text())
    assert w["verdict"] in ("supported", "unsupported") and f"verdict: {w['verdict']}".lower() in result.output.lower()
    assert set(w["intervals"]) == set(DOMAINS)
    for d, (lo, hi) in w["intervals"].items():
        assert np.isfinite(lo) and np.isfinite(hi) and lo - 1e-12 <= w["weights"][d] <= hi + 1e-12
    prov = w["provenance"]
    assert prov["metric"] == "perplexity" and prov["seeds"] == 2
    assert prov["noise"]["source"] == "seeds" and prov["noise"]["sigma"] > 0 and prov["noise"]["dof"] == 7
    assert prov["held_out"]["runs"] == ["heldout-0"] and len(prov["held_out"]["z"]) == 1
    assert "held-out heldout-0: predicted" in result.output
    assert set(prov["effects"]) == set(DOMAINS)
    if w["verdict"] == "unsupported":
        assert w["reasons"] and "safer choice" in result.output
