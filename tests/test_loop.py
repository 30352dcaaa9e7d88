"""The closed loop on CPU in seconds: a tiny DDO sweep gives weights on the simplex, resumes from
its cache after an interruption without re-running finished runs, and a local Ray cluster
gives the same weights.json as the sequential sweep, byte for byte."""
from __future__ import annotations

import json
import os
import re
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
from mixer.formats.schedule import load_schedule
from mixer.formats.synthetic import random_skewed_corpus

BUDGET = 8192
DOMAINS = ("a", "b", "c")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return random_skewed_corpus(tmp_path_factory.mktemp("loop") / "corpus", DOMAINS, 150, 12)


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
        factor = run["provenance"]["factor"]
        grown = BUDGET if factor is None else round(BUDGET * (1 + (factor - 1) / len(DOMAINS)))  # grown totals
        assert run["provenance"]["run_name"] == name and run["budget_tokens"] == grown
        spec = json.loads((path.parent / "spec.json").read_text())
        assert path.parent.name.endswith("-" + spec["key"][:8]) and path.parent.parent.name == "8192"


def test_key_changes_with_every_input(corpus, tmp_path):
    spec = plan_sweep(config(corpus, tmp_path), BUDGET)[0]
    keys = {spec.key()}
    for change in (dict(budget_tokens=BUDGET + 1), dict(weights={"a": 0.5, "b": 0.25, "c": 0.25}),
                   dict(train=replace(spec.train, seed=1)), dict(train=replace(spec.train, data_seed=1)),
                   dict(train=replace(spec.train, preset="small")), dict(train=replace(spec.train, lr=1e-3)),
                   dict(train=replace(spec.train, max_epochs=2.0)), dict(train=replace(spec.train, trainer="stacked")),
                   dict(corpus_sha256="0" * 64)):
        keys.add(replace(spec, **change).key())
    assert len(keys) == 10
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

    def counting(spec: RunSpec, limit: int | None = None, **kw):
        calls.append(spec.name)
        if limit is not None and len(calls) > limit:
            raise KeyboardInterrupt  # killed while training the second missing run
        return real(spec, **kw)

    monkeypatch.setattr(mixer.loop.sweep, "execute", lambda spec, **kw: counting(spec, limit=1, **kw))
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
        loop_ddo(replace(config(corpus, tmp_path), factors=(3.0,), keep_total=True), BUDGET)


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
    # schedule.json beside it: stages of the smallest scale up to the target. Here DDO puts b and c
    # at the floor at the second scale only, so their optimal tokens shrink there: that stage's
    # increments are clipped at 0 (recorded), and past it the floored mixture grows in proportion,
    # so the last stages are the target's weights.
    sched = load_schedule(out / "schedule.json")
    assert res.schedule_path == out / "schedule.json" and sched.method == "autoscale"
    assert [s.until_tokens for s in sched.stages] == [BUDGET * k for k in range(1, 9)]
    assert sched.provenance["clipped"] and all(min(sched.stages[k].weights.values()) == 0
                                               for k in sched.provenance["clipped"])
    assert sched.stages[-1].weights == pytest.approx(w["weights"], abs=1e-9)
    with pytest.raises(MixerError, match="must be a positive"):   # between or at the scales is fine
        loop_autoscale(cfg, [BUDGET, 2 * BUDGET], target=0)
    with pytest.raises(MixerError, match="needs 3 or more --scales"):
        loop_autoscale(cfg, [BUDGET, 2 * BUDGET], target=8 * BUDGET, validate_scale=BUDGET)


SEEDS_ARGS = ["--factors", "2,0.5", "--eval-seqs", "8", "--seeds", "2", "--validate", "1", "--bootstrap", "40",
              "--quiet"]


@pytest.fixture(scope="module")
def cli_seeds(corpus, tmp_path_factory):
    """One `mixer loop ddo --seeds 2 --validate 1` run from the command line, shared by the tests
    of its output, its config file and its report (15 runs: the slowest fixture of the module)."""
    out = tmp_path_factory.mktemp("cli") / "seeds"
    result = CliRunner().invoke(main, ["loop", "ddo", "--corpus", str(corpus), "--out", str(out), "--tokens",
                                       str(BUDGET), *SEEDS_ARGS])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_cli_seeds_give_intervals_held_out_checks_and_a_printed_verdict(cli_seeds):
    """`mixer loop ddo --seeds 2 --validate 1`: the noise is measured, every weight has a finite
    interval around it, the held-out mixture is predicted, and the verdict is printed and stored."""
    out, output = cli_seeds
    assert "14 runs + 1 held out, 15 trained now" in output   # 2 seeds x (base + 3 x 2) + 1 held out
    w = json.loads((out / "weights.json").read_text())
    assert w["verdict"] in ("supported", "unsupported") and f"verdict: {w['verdict']}".lower() in output.lower()
    assert set(w["intervals"]) == set(DOMAINS)
    for d, (lo, hi) in w["intervals"].items():
        assert np.isfinite(lo) and np.isfinite(hi) and lo - 1e-12 <= w["weights"][d] <= hi + 1e-12
    prov = w["provenance"]
    assert prov["metric"] == "perplexity" and prov["seeds"] == 2
    # 7 runs x 2 seeds: 7 dof between seeds, less 1 for the seeds' shared offset (block_seeds)
    assert prov["noise"]["source"] == "seeds" and prov["noise"]["sigma"] > 0 and prov["noise"]["dof"] == 6
    assert set(prov["noise"]["seed_offsets"]) == {"0", "1"}
    assert prov["held_out"]["runs"] == ["heldout-0"] and len(prov["held_out"]["z"]) == 1
    assert "held-out heldout-0: predicted" in output
    assert set(prov["effects"]) == set(DOMAINS)
    if w["verdict"] == "unsupported":
        assert w["reasons"] and "safer choice" in output


def test_run_folders_are_readable(cli_seeds):
    """runs/<scale>/<role>-<domain>-x<factor>-s<seed>-<hash8>: one scale is one folder, and each
    run's folder says what it is; the hash is its key's start."""
    out, _ = cli_seeds
    assert [p.name for p in (out / "runs").iterdir()] == [str(BUDGET)]
    names = sorted(p.name for p in (out / "runs" / str(BUDGET)).iterdir())
    pattern = [re.sub(r"-[0-9a-f]{8}$", "", n) for n in names]
    assert pattern == sorted(["base-all-x1-s0", "base-all-x1-s1", "validate-all-x1-s0",
                              *(f"perturb-{d}-x{f}-s{k}" for d in DOMAINS for f in ("2", "0.5") for k in (0, 1))])
    for n in names:
        spec = json.loads((out / "runs" / str(BUDGET) / n / "spec.json").read_text())
        assert n.endswith(spec["key"][:8]) and spec["train"]["seed"] == int(n.split("-s")[-1].split("-")[0])


def test_config_replays_the_run_exactly(cli_seeds, tmp_path):
    """OUT/loop.toml holds every option; `--config OUT/loop.toml` trains nothing and writes the
    same weights.json, byte for byte; options on the command line override the file."""
    out, _ = cli_seeds
    text = (out / "loop.toml").read_text()
    for key in ("corpus", "tokens", "seeds = 2", "validate = 1", "bootstrap = 40", "floor-uniform = 0.2",
                'metric = "perplexity"', "eval-seqs = 8", 'factors = "2,0.5"', 'total = "grown"'):
        assert key in text, key
    before = (out / "weights.json").read_bytes()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)  # relative paths in the file are relative to the file, not to the working directory
    try:
        again = CliRunner().invoke(main, ["loop", "ddo", "--config", str(out / "loop.toml")])
    finally:
        os.chdir(cwd)
    assert again.exit_code == 0, again.output
    assert "0 trained now, 15 from the cache" in again.output
    assert (out / "weights.json").read_bytes() == before
    assert (out / "loop.toml").read_text() == text
    # The line wins over the file: a third seed plans 7 more runs (shown, not trained).
    show = CliRunner().invoke(main, ["loop", "ddo", "--config", str(out / "loop.toml"), "--seeds", "3", "--show"])
    assert show.exit_code == 0, show.output
    assert "15 finished, 7 missing, 0 partial of 22 planned runs; nothing trained" in show.output
    assert (out / "weights.json").read_bytes() == before


def test_config_errors_are_one_line(cli_seeds, tmp_path):
    out, _ = cli_seeds
    bad = tmp_path / "bad.toml"
    bad.write_text((out / "loop.toml").read_text() + "seedz = 3\n")
    r = CliRunner().invoke(main, ["loop", "ddo", "--config", str(bad)])
    assert r.exit_code == 2 and r.output.strip() == f"error: {bad}: unknown key 'seedz'; `mixer loop ddo --help` " \
        "lists the options (write them without the leading --)"
    bad.write_text('seeds = "two"\n')
    r = CliRunner().invoke(main, ["loop", "ddo", "--config", str(bad)])
    assert r.exit_code == 2 and f"{bad}: key 'seeds'" in r.output and len(r.output.strip().splitlines()) == 1
    bad.write_text("scales = \"8k,16k\"\n")   # an autoscale option is not a ddo one
    r = CliRunner().invoke(main, ["loop", "ddo", "--config", str(bad)])
    assert r.exit_code == 2 and "unknown key 'scales'" in r.output


def test_show_lists_states_without_training(corpus, sequential, tmp_path):
    cache = sequential.weights_path.parent / "runs"
    specs = plan_sweep(config(corpus, tmp_path), BUDGET)
    # A commit killed half-way leaves a temporary sibling: that run reads "partial".
    half = run_folder(tmp_path / "cache", specs[1])
    shutil.copytree(cache, tmp_path / "cache")
    shutil.rmtree(half)
    half.parent.joinpath(f".{half.name}.tmp-123").mkdir()
    r = CliRunner().invoke(main, ["loop", "ddo", "--corpus", str(corpus), "--out", str(tmp_path / "o"), "--tokens",
                                  str(BUDGET), "--factors", "2,0.5", "--eval-seqs", "8", "--cache",
                                  str(tmp_path / "cache"), "--seeds", "2", "--show"])
    assert r.exit_code == 0, r.output
    assert "6 finished, 7 missing, 1 partial of 14 planned runs; nothing trained" in r.output
    assert half.name in r.output and not (tmp_path / "o").exists()


def test_report_is_one_self_contained_page(cli_seeds, browser):
    """OUT/report.html opens in a real headless browser with no console error, every image drawn
    (all embedded: nothing is fetched), and holds the weights, verdict, held-out check and the
    commands that reproduce the run."""
    out, _ = cli_seeds
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "<link" not in html
    page = browser(out / "report.html")
    assert page["errors"] == [] and page["fetched"] == []
    assert len(page["images"]) == 3  # fits, predicted vs measured, base run's loss curves
    for img in page["images"]:
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
    w = json.loads((out / "weights.json").read_text())
    text = page["text"]
    for d, v in w["weights"].items():
        lo, hi = w["intervals"][d]
        assert f"{v:.3f} [{lo:.3f}, {hi:.3f}]" in text
    assert f"{w['verdict']}" in text and all(r.split(" (")[0] in text for r in w["reasons"])
    assert "heldout-0" in text and f"mixer loop ddo --config {out / 'loop.toml'}" in text
    assert "mixer loop ddo --corpus" in text and "--seeds 2" in text


def test_browser_check_can_fail(tmp_path, browser):
    """The probe sees broken images, a failed load, a fetch and a console error (so a pass above
    means something)."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                    '<img alt="broken" src="data:image/png;base64,AAAA"><img alt="near" src="missing.png">'
                    '<img alt="far" src="http://example.invalid/x.png"><script>console.error("boom")</script>'
                    '</body></html>')
    seen = browser(page)
    assert [i["naturalWidth"] for i in seen["images"]] == [0, 0, 0]
    assert any("boom" in e for e in seen["errors"]) and any("missing.png" in e for e in seen["errors"])
    assert seen["fetched"] == ["http://example.invalid/x.png"]


def test_loss_curves_mark_a_single_held_out_point(sequential, monkeypatch):
    """Evaluated at the end only: one panel, the training curve from step 0 and the held-out loss
    as marked points on it, not a second axis zoomed onto one step; two or more evaluations: two panels."""
    import matplotlib.pyplot as plt

    from mixer.formats.run import load_run
    from mixer.trainers.record import plot_curves

    figs = []
    real = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figs.append(fig), real(fig)))
    record = load_run(sequential.runs["base"])
    assert len(record.curve["eval"]["step"]) == 1
    plot_curves(record, Path(sequential.runs["base"]).parent / "again.png")
    (ax,) = figs[-1].axes
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] >= record.steps
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum("held-out" in t for t in labels) == len(DOMAINS) and sum("training" in t for t in labels) == len(DOMAINS)
    assert ax.get_xlabel() == "training step" and "nats/token" in ax.get_ylabel()
    two = replace(record, curve={**record.curve, "eval": {"step": [5, record.steps],
                                                           "loss": {d: [v + 0.1, v] for d, v in
                                                                    record.final_loss.items()}}})
    plot_curves(two, Path(sequential.runs["base"]).parent / "again.png")
    assert len(figs[-1].axes) == 2


def test_autoscale_show_and_config(corpus, sequential, tmp_path):
    """`mixer loop autoscale --show` lists every scale's runs in its own folder; the scales and the
    target can come from a config file."""
    cfg = tmp_path / "as.toml"
    cfg.write_text(f'corpus = "{corpus}"\nout = "as"\nscales = "{BUDGET},12288"\ntarget = "64k"\nfactors = "2,0.5"\n'
                   f'eval-seqs = 8\ncache = "{sequential.weights_path.parent / "runs"}"\n')
    r = CliRunner().invoke(main, ["loop", "autoscale", "--config", str(cfg), "--show"])
    assert r.exit_code == 0, r.output
    assert "7 finished, 7 missing, 0 partial of 14 planned runs; nothing trained" in r.output
    assert " 8192/base-all-x1-s0-" in r.output and " 12288/perturb-c-x0.5-s0-" in r.output
    assert not (tmp_path / "as").exists()


@pytest.mark.parametrize("m", [2, 3])
def test_readme_loop_line_runs_with_its_defaults(tmp_path, m):
    """The README's `mixer loop ddo` line exited 2 on three domains with the defaults (factor 3 x
    weight 1/3 >= 1 under fixed totals). With the default design (grown totals, factors 1/3, 2, 4)
    it runs on 2 and 3 domains: 1 + 3m runs, four points per domain."""
    corpus = random_skewed_corpus(tmp_path / "c", tuple("ab" if m == 2 else "abc"), 150, 8)
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["loop", "ddo", "--corpus", str(corpus), "--model", "gpt2", "--preset", "tiny",
                                    "--tokens", "4k", "--out", str(out), "--eval-seqs", "4", "--bootstrap", "20",
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    w = json.loads((out / "weights.json").read_text())
    assert len(w["provenance"]["runs"]) == 1 + 3 * m and "gain" in w["provenance"]
    assert "verdict:" in res.output and "predicted gain over uniform" in res.output
