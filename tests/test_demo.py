"""`mixer demo` past the corpus stage, on a small prepared corpus: DDO at two scales, AutoScale,
shards of the predicted mixture at the target. (Assembly and preparation of the bundled corpus
need the network the first time; `mixer demo --quick` in CI covers them.)"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.loop.demo import DemoConfig, run_demo
from mixer.formats.shards import read_index
from mixer.formats.synthetic import random_skewed_corpus
from support import chromium_path, load_in_browser

DOMAINS = ("a", "b", "c", "d")  # x3 needs 3/m < 1


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return random_skewed_corpus(tmp_path_factory.mktemp("demo") / "corpus", DOMAINS, 120, 10, rng_seed=1)


def test_demo_loop_autoscale_and_shards(corpus, tmp_path):
    res = run_demo(DemoConfig(out=tmp_path / "demo", corpus=corpus, quick=True, scales=(4096, 8192), progress=False))
    assert res.runs_trained == 52  # 2 seeds x (base + 4 domains x 3 factors) at each of two scales
    assert list(res.weights) == ["DDO @ 4.1k", "DDO @ 8.19k", "AutoScale @ 65.5k"]
    auto = json.loads(res.steps["weights"].read_text())
    assert auto["method"] == "autoscale" and auto["budget_tokens"] == 8 * 8192
    index = read_index(res.shards)
    assert index.weights == pytest.approx(auto["weights"], abs=1e-12)
    assert index.budget_tokens <= 8 * 8192
    assert all(p.is_file() for p in res.plots) and any("weights_vs_scale" in p.name for p in res.plots)
    # Every DDO weight has a finite interval around it (the noise is measured from the seeds).
    for name in ("DDO @ 4.1k", "DDO @ 8.19k"):
        for d, w in res.weights[name].items():
            lo, hi = res.intervals[name][d]
            assert np.isfinite(lo) and np.isfinite(hi) and lo - 1e-12 <= w <= hi + 1e-12
    assert auto["verdict"] in ("supported", "unsupported") and res.verdict.label == auto["verdict"]
    assert (auto["verdict"] == "supported") == (not auto["reasons"])
    # The printed `mixer loop autoscale` command reproduces the weights from the same cache.
    loop_cmd = next(c for c in res.commands if c.startswith("mixer loop autoscale"))
    assert "--seeds 2" in loop_cmd and "--metric perplexity" in loop_cmd
    again_cli = CliRunner().invoke(main, loop_cmd.split()[1:] + ["--quiet"])
    assert again_cli.exit_code == 0, again_cli.output
    assert "0 runs trained now" in again_cli.output and "verdict" in again_cli.output
    assert json.loads(res.steps["weights"].read_text())["weights"] == auto["weights"]
    # The report: one self-contained page that a real browser draws without errors.
    report = res.steps["report"]
    assert report == tmp_path / "demo" / "report.html"
    html = report.read_text()
    assert "http://" not in html and "https://" not in html
    for cmd in res.commands:
        assert cmd.split(" --")[0] in html
    if chromium_path() is not None or os.environ.get("MIXER_REQUIRE_BROWSER") == "1":
        page = load_in_browser(report)
        assert page["errors"] == [] and page["fetched"] == []
        # weights vs scale + per scale: fits, predicted vs measured, the base run's loss curves (first seed)
        assert len(page["images"]) == 1 + 2 * 3
        assert all(i["complete"] and i["naturalWidth"] > 0 for i in page["images"])
        assert any("extrapolated" in i["alt"] for i in page["images"])
        assert "AutoScale @ 65.5k" in page["text"] and auto["verdict"] in page["text"]
    # Again: everything comes from the cache.
    again = run_demo(DemoConfig(out=tmp_path / "demo", corpus=corpus, quick=True, scales=(4096, 8192), progress=False))
    assert again.runs_trained == 0 and again.weights == res.weights


def test_demo_help_lists_the_loop():
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0 and "AutoScale" in result.output and "--quick" in result.output


def test_demo_console_prints_prepare_first_and_commands_unwrapped(monkeypatch, tmp_path):
    """Long commands stay on one line however narrow the terminal (copy-paste from logs), and
    the prepare table comes before anything the proxies print."""
    import mixer.loop.demo as demo
    from mixer.prepare.config import DomainReport, PrepareResult
    from mixer.solver.verdict import Verdict

    long_path = tmp_path / ("deep-" * 12) / "corpus"
    cmds = [f"mixer prepare --domain-map {long_path}/raw/domains.json --out {long_path} --tokenizer train --seed 0",
            f"mixer loop autoscale --corpus {long_path} --out {tmp_path}/loop --scales 100000,200000 --target 800000"]

    def fake_run_demo(config, on_prepared=None):
        prep = PrepareResult(manifest=None, reports=[DomainReport(name="news", kind="news", kept=9)], timings={},
                             chars=0, source_bytes=0, heldout_rule="held out: 5 %")
        on_prepared(prep)
        print("PROXY-PROGRESS")  # stands for the proxies' progress bars
        return demo.DemoResult(raw=None, corpus=long_path, prepare=prep, weights={"DDO @ 1k": {"news": 1.0}},
                               shards=tmp_path / "shards", intervals={"DDO @ 1k": {"news": (1.0, 1.0)}},
                               verdict=Verdict(False, ("effects within noise",)), commands=cmds)

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    r = CliRunner(env={"COLUMNS": "60"}).invoke(main, ["demo", "--out", str(tmp_path / "d"), "--quiet"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    for cmd in cmds:
        assert f"  {cmd}" in lines, cmd  # whole, on one line
    nxt = next(line for line in lines if line.startswith("next: mixer train"))
    assert f"--shards {tmp_path / 'shards'}" in nxt and "--corpus" not in nxt  # the shards know their corpus
    assert r.output.index("mixer prepare") < r.output.index("PROXY-PROGRESS") < r.output.index("verdict")
