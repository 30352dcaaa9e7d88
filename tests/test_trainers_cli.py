"""`mixer train` end to end, with a toy stand-in for the sampler: the CLI builds the source through
mixer/trainers/data.py exactly as it does with the real `MixtureSampler`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.trainers import load_run
from mixer.formats.synthetic import write_skewed_corpus
from support import ToyStream


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class FakeSampler(ToyStream):
    """MixtureSampler(corpus_dir, weights, tokens, seq_len, seed, objective=...) over the toy stream."""

    def __init__(self, corpus_dir, weights, tokens, seq_len, seed, objective="causal", **_):
        super().__init__(corpus_dir, weights, seq_len, seed, mlm=objective == "mlm", limit=tokens // seq_len)


@pytest.fixture()
def corpus(tmp_path, monkeypatch):
    monkeypatch.setattr("mixer.trainers.data.MixtureSampler", FakeSampler)
    rng = np.random.default_rng(0)
    write_skewed_corpus(tmp_path / "c", {"code": rng.integers(40, 200, 60), "news": rng.integers(40, 200, 60)},
                        {"code": [100] * 6, "news": [100] * 6}, vocab_size=256)
    (tmp_path / "w.json").write_text(json.dumps({"weights": {"code": 0.25, "news": 0.75}}))
    return tmp_path


@pytest.mark.parametrize("model", ["gpt2", "bert"])
def test_train_command_writes_run_and_plot(corpus, model):
    out = corpus / f"run-{model}"
    args = ["train", "--model", model, "--preset", "tiny", "--corpus", str(corpus / "c"),
            "--weights", str(corpus / "w.json"), "--tokens", "10k", "--out", str(out), "--eval-every", "5",
            "--eval-seqs", "4", "--provenance", "role=perturbed", "--provenance", "factor=3", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "held-out loss" in result.output
    record = load_run(out / "run.json")
    steps = 10_000 // (8 * 64)  # budget / (batch x seq_len): the budget sets the steps
    assert record.steps == steps and record.budget_tokens == 10_000
    assert record.weights == {"code": 0.25, "news": 0.75}
    assert record.provenance["role"] == "perturbed" and record.provenance["factor"] == 3
    assert (out / "loss_curves.png").is_file()
    # A second call without --resume refuses; with --resume it picks up the finished run unchanged.
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "pass --resume" in again.output
    resumed = CliRunner().invoke(main, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert load_run(out / "run.json").final_loss == record.final_loss


def test_train_command_needs_a_source(corpus):
    result = CliRunner().invoke(main, ["train", "--out", str(corpus / "r")])
    assert result.exit_code == 2 and "give --shards DIR" in result.output
    result = CliRunner().invoke(main, ["train", "--corpus", str(corpus / "c"), "--weight", "code=1",
                                       "--out", str(corpus / "r")])
    assert result.exit_code == 2 and "needs --tokens" in result.output


@pytest.mark.parametrize("model", ["gpt2", "bert"])
def test_real_sampler_and_shards(tmp_path, model):
    """With the real `mixer.stream.sampler` / `mixer.stream.stream`: sampled from the corpus and read from
    built shards, the same mixture trains to the same losses (same sequences, same order)."""
    pytest.importorskip("mixer.stream.sampler")
    pytest.importorskip("mixer.stream.stream")
    rng = np.random.default_rng(1)
    write_skewed_corpus(tmp_path / "c", {"code": rng.integers(40, 200, 80), "news": rng.integers(40, 200, 80)},
                        {"code": [100] * 6, "news": [100] * 6}, vocab_size=256)
    objective = "causal" if model == "gpt2" else "mlm"
    common = ["--model", model, "--preset", "tiny", "--eval-seqs", "4", "--quiet", "--steps", "6"]
    built = CliRunner().invoke(main, ["build-shards", "--corpus", str(tmp_path / "c"), "--weight", "code=0.4",
                                      "--weight", "news=0.6", "--tokens", "8k", "--seq-len", "64",
                                      "--objective", objective, "--out", str(tmp_path / "shards")])
    assert built.exit_code == 0, built.output
    sampled = CliRunner().invoke(main, ["train", *common, "--corpus", str(tmp_path / "c"), "--weight", "code=0.4",
                                        "--weight", "news=0.6", "--tokens", "8k", "--out", str(tmp_path / "a")])
    assert sampled.exit_code == 0, sampled.output
    # no --corpus: the shards' index.json records the corpus they came from
    sharded = CliRunner().invoke(main, ["train", *common, "--shards", str(tmp_path / "shards"),
                                        "--out", str(tmp_path / "b")])
    assert sharded.exit_code == 0, sharded.output
    a, b = load_run(tmp_path / "a" / "run.json"), load_run(tmp_path / "b" / "run.json")
    assert a.tokens_per_domain == b.tokens_per_domain and a.weights == b.weights
    assert a.final_loss == pytest.approx(b.final_loss, rel=1e-6)


def test_train_takes_the_budget_from_weights_json_and_threads(corpus):
    """weights.json written by the solver records budget_tokens: --tokens may be left out."""
    (corpus / "wb.json").write_text(json.dumps({"weights": {"code": 0.5, "news": 0.5}, "budget_tokens": 5120}))
    out = corpus / "run-budget"
    args = ["train", "--corpus", str(corpus / "c"), "--weights", str(corpus / "wb.json"), "--out", str(out),
            "--eval-seqs", "4", "--threads", "1", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert load_run(out / "run.json").budget_tokens == 5120
    bad = CliRunner().invoke(main, ["train", "--corpus", str(corpus / "c"), "--weights", str(corpus / "w.json"),
                                    "--out", str(corpus / "x"), "--quiet"])
    assert bad.exit_code == 2 and "records no budget_tokens" in bad.output
    zero = CliRunner().invoke(main, args[:-3] + ["--threads", "0", "--quiet"])
    assert zero.exit_code == 2 and "--threads 0" in zero.output
