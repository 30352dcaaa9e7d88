"""`mixer loop ddo --batch-proxies K`: the 7 runs of a tiny DDO sweep trained 3 at a time in one
stacked model give the same run.json losses, bit for bit, and so the same weights.json, as the
same sweep trained one by one; they are cached apart from the default trainer's runs."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.loop.runner import TrainSpec
from mixer.loop.sweep import LoopConfig, loop_ddo, make_backend, plan_sweep, sequential_backend
from mixer.formats.synthetic import random_skewed_corpus

BUDGET = 8192
DOMAINS = ("a", "b", "c")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return random_skewed_corpus(tmp_path_factory.mktemp("loopb") / "corpus", DOMAINS, 150, 12)


def config(corpus: Path, out: Path, **kw) -> LoopConfig:
    return LoopConfig(corpus=corpus, out=out, train=TrainSpec(model="gpt2", preset="tiny", eval_seqs=8),
                      factors=(2.0, 0.5), n_bootstrap=0, plots=False, progress=False, keep_total=True, **kw)


def test_batched_sweep_equals_one_by_one(corpus, tmp_path):
    batched = loop_ddo(config(corpus, tmp_path / "b", batch_proxies=3), BUDGET)
    one_by_one = loop_ddo(config(corpus, tmp_path / "s", batch_proxies=3), BUDGET, backend=sequential_backend)
    assert batched.ran == one_by_one.ran == 7
    for name, path in batched.runs.items():
        a, b = json.loads(path.read_text()), json.loads(one_by_one.runs[name].read_text())
        assert a["final_loss"] == b["final_loss"] and a["curve"] == b["curve"], name
        assert a["provenance"]["trainer"] == "stacked"
        assert a["provenance"]["proxies_together"] == 3 or name == "c-x0.5"  # 7 runs: 3 + 3 + 1
        assert b["provenance"]["proxies_together"] == 1
    wa, wb = (json.loads(r.weights_path.read_text()) for r in (batched, one_by_one))
    assert wa["weights"] == wb["weights"]


def test_batched_runs_have_their_own_cache_keys(corpus, tmp_path):
    plain = plan_sweep(config(corpus, tmp_path), BUDGET)
    stacked = plan_sweep(config(corpus, tmp_path, batch_proxies=4), BUDGET)
    assert all(s.train.trainer == "stacked" for s in stacked)
    assert {s.key() for s in plain}.isdisjoint(s.key() for s in stacked)
    # The key hashes every trainer setting but threads and device (which leave the losses alone).
    spec = plain[0]
    assert spec.key() == replace(spec, train=replace(spec.train, threads=3, device="cpu")).key()
    with pytest.raises(MixerError, match="drop --ray"):
        make_backend(config(corpus, tmp_path, batch_proxies=2, ray="local"))


def test_cli_batch_proxies(corpus, tmp_path):
    res = CliRunner().invoke(main, ["loop", "ddo", "--corpus", str(corpus), "--tokens", str(BUDGET), "--out",
                                    str(tmp_path / "o"), "--factors", "2", "--total", "fixed", "--batch-proxies", "4", "--quiet",
                                    "--eval-seqs", "8", "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    specs = [json.loads(p.read_text()) for p in (tmp_path / "o" / "runs").glob("*/*/spec.json")]
    assert len(specs) == 4 and all(s["train"]["trainer"] == "stacked" for s in specs)


def test_cli_batch_proxies_bert_equals_one_by_one(corpus, tmp_path):
    """`--model bert`: the 4 runs of a DDO sweep (1 + 3 domains x factor 2) trained 2 at a time
    give the run.json losses, bit for bit, of the same runs trained one by one."""
    args = ["loop", "ddo", "--corpus", str(corpus), "--tokens", str(BUDGET), "--factors", "2", "--total", "fixed", "--quiet",
            "--eval-seqs", "8", "--bootstrap", "0", "--model", "bert", "--preset", "tiny"]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o"), "--batch-proxies", "2"])
    assert res.exit_code == 0, res.output
    runs = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "o" / "runs").glob("*/*/run.json")}
    assert len(runs) == 4
    assert all(r["model"] == "bert" and r["provenance"]["proxies_together"] == 2 for r in runs.values())
    alone = loop_ddo(LoopConfig(corpus=corpus, out=tmp_path / "s", factors=(2.0,), keep_total=True, n_bootstrap=0, plots=False,
                                progress=False, batch_proxies=2,
                                train=TrainSpec(model="bert", preset="tiny", eval_seqs=8)),
                     BUDGET, backend=sequential_backend)
    one = {p.parent.name: json.loads(p.read_text()) for p in alone.runs.values()}
    assert one.keys() == runs.keys()
    for name, r in runs.items():
        assert r["curve"] == one[name]["curve"] and r["final_loss"] == one[name]["final_loss"], name
        assert one[name]["provenance"]["proxies_together"] == 1
