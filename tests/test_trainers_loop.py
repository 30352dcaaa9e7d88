"""Tiny GPT-2 and BERT on a real (synthetic, skewed) corpus: learning, per-domain hooks,
deterministic held-out eval, kill-and-resume == uninterrupted, run.json round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mixer.trainers import DataSource, RunRecord, TrainConfig, load_run, train
from mixer.trainers.heldout import evaluate_checkpoint
from mixer.formats.synthetic import random_skewed_corpus
from support import ToyStream


pytestmark = pytest.mark.usefixtures("one_torch_thread")


WEIGHTS = {"code": 0.3, "news": 0.7}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return random_skewed_corpus(tmp_path_factory.mktemp("corpus") / "c", WEIGHTS, 150, 20)


def source(corpus, model: str, seq_len: int = 64, batch: int = 8, seed: int = 0) -> DataSource:
    stream = ToyStream(corpus, WEIGHTS, seq_len, seed=seed, mlm=model == "bert")
    return DataSource(torch.utils.data.DataLoader(stream, batch_size=batch), corpus, WEIGHTS, state=stream,
                      provenance={"role": "base"})


def cfg(model: str, **kw) -> TrainConfig:
    base = dict(model=model, preset="tiny", steps=50, log_every=5, eval_seqs=8, progress=False)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("model", ["gpt2", "bert"])
def test_loss_falls_and_run_json_validates(corpus, tmp_path, model):
    seen = []
    record = train(cfg(model, eval_every=25), source(corpus, model), tmp_path / "run",
                   hooks=[lambda step, loss, tokens: seen.append((step, loss, tokens))])
    train_mean = record.curve["train"]["mean"]
    assert train_mean[-1] < train_mean[0] - 0.3, train_mean
    held = record.curve["eval"]["loss"]
    assert record.curve["eval"]["step"] == [25, 50]
    for d in WEIGHTS:  # held-out loss below a uniform guess (ln 256 = 5.55) for every domain
        assert held[d][-1] < 5.45, (d, held[d])
    # Hook: one call per step, per-domain losses and token counts that add up to the step's tokens.
    assert [s for s, _, _ in seen] == list(range(1, 51))
    per_step = 8 * 63 if model == "gpt2" else None  # causal: every next token of 8 sequences is scored
    for _, loss, tokens in seen:
        assert set(tokens) == set(WEIGHTS) and set(loss) <= set(WEIGHTS)
        assert all(np.isfinite(v) and v > 0 for v in loss.values())
        if per_step:
            assert sum(tokens.values()) == per_step
    # run.json: the solver's required fields, validated through the dataclass.
    obj = json.loads((tmp_path / "run" / "run.json").read_text())
    for key in ("format_version", "corpus_sha256", "budget_tokens", "weights", "tokens_per_domain", "final_loss",
                "model", "preset", "seed", "provenance"):
        assert key in obj
    back = RunRecord.from_json(obj)
    assert back == load_run(tmp_path / "run" / "run.json") == record
    assert record.provenance["role"] == "base" and record.model == model and record.steps == 50
    assert sum(record.tokens_per_domain.values()) == record.tokens_seen
    assert record.tokens_per_domain["news"] > record.tokens_per_domain["code"]  # 0.7 vs 0.3 of sequences
    assert (tmp_path / "run" / "loss_curves.png").stat().st_size > 1000


def test_held_out_eval_is_deterministic(corpus, tmp_path):
    record = train(cfg("bert", steps=10), source(corpus, "bert"), tmp_path / "run")
    first = evaluate_checkpoint(tmp_path / "run", corpus)
    second = evaluate_checkpoint(tmp_path / "run", corpus)
    assert first == second
    assert first == pytest.approx(record.final_loss, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("model", ["gpt2", "bert"])
def test_kill_and_resume_equals_uninterrupted(corpus, tmp_path, model):
    settings = dict(steps=30, checkpoint_every=10, eval_every=10, log_every=5)
    whole_hooks, resumed_hooks = [], []
    whole = train(cfg(model, **settings), source(corpus, model), tmp_path / "whole",
                  hooks=[lambda s, loss, tok: whole_hooks.append((s, loss))])

    class Killed(Exception):
        pass

    def kill_at_17(step, loss, tokens):
        resumed_hooks.append((step, loss))
        if step == 17:
            raise Killed

    with pytest.raises(Killed):
        train(cfg(model, **settings), source(corpus, model), tmp_path / "cut", hooks=[kill_at_17])
    # A new process: fresh stream object and model; the checkpoint from step 10 brings all state back.
    resumed_hooks[:] = [h for h in resumed_hooks if h[0] <= 10]
    resumed = train(cfg(model, **settings), source(corpus, model), tmp_path / "cut", resume=True,
                    hooks=[lambda s, loss, tok: resumed_hooks.append((s, loss))])
    assert [s for s, _ in resumed_hooks] == list(range(1, 31))
    for (s, a), (_, b) in zip(whole_hooks, resumed_hooks):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), s
    assert resumed.final_loss == pytest.approx(whole.final_loss, rel=1e-5, abs=1e-6)
    assert resumed.curve["train"]["step"] == whole.curve["train"]["step"]
    assert resumed.curve["train"]["mean"] == pytest.approx(whole.curve["train"]["mean"], rel=1e-5)
    assert resumed.curve["eval"]["step"] == whole.curve["eval"]["step"] == [10, 20, 30]
    assert resumed.tokens_per_domain == whole.tokens_per_domain and resumed.tokens_seen == whole.tokens_seen
