"""Bad input gives one MixerError line naming the culprit and the fix."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mixer.core.errors import MixerError
from mixer.trainers import DataSource, RunRecord, TrainConfig, get_preset, train
from mixer.trainers.data import source_from_shards
from mixer.trainers.presets import PRESETS
from mixer.formats.synthetic import write_skewed_corpus
from support import ToyStream


pytestmark = pytest.mark.usefixtures("one_torch_thread")


W = {"a": 0.5, "b": 0.5}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    lengths = {"a": [80] * 40, "b": [80] * 40}
    write_skewed_corpus(root / "small", lengths, {"a": [80] * 4, "b": [80] * 4}, vocab_size=256)
    write_skewed_corpus(root / "big", lengths, {"a": [80] * 4, "b": [80] * 4}, vocab_size=4096, seed=1)
    write_skewed_corpus(root / "empty", lengths, {"a": [80] * 4, "b": []}, vocab_size=256)
    return root


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def quick(**kw) -> TrainConfig:
    return TrainConfig(**{"preset": "tiny", "steps": 2, "eval_seqs": 2, "progress": False, **kw})


@pytest.mark.parametrize("model, preset, needle", [
    ("gpt2", "huge", "choose one of tiny, small, medium, large"),
    ("gpt2", "bert-base", "no such preset for --model gpt2"),
    ("t5", "tiny", "--model 't5'"),
])
def test_unknown_preset(model, preset, needle):
    with pytest.raises(MixerError) as exc:
        get_preset(model, preset)
    assert needle in one_line(exc)


@pytest.mark.parametrize("change, needle", [
    (dict(d_model=65), "not divisible by n_head"),
    (dict(seq_len=4096), "exceeds max_positions"),
    (dict(n_layer=0), "n_layer = 0"),
    (dict(lr=-1.0), "need lr > 0"),
])
def test_invalid_preset_values(change, needle):
    with pytest.raises(MixerError) as exc:
        replace(PRESETS["gpt2"]["tiny"], **change)
    assert needle in one_line(exc)


def test_override_beyond_model_context():
    with pytest.raises(MixerError) as exc:
        TrainConfig(preset="tiny", seq_len=1024).resolve()
    assert "seq_len 1024 exceeds max_positions 128" in one_line(exc)


def test_stream_with_larger_vocab_than_model(corpora, tmp_path):
    stream = ToyStream(corpora / "big", W, 64)  # token ids up to 4095; the model's corpus has 256
    src = DataSource(torch.utils.data.DataLoader(stream, batch_size=4), corpora / "small", W, state=stream)
    with pytest.raises(MixerError) as exc:
        train(quick(), src, tmp_path / "run")
    msg = one_line(exc)
    assert "model vocab is 256" in msg and "rebuild it from this --corpus" in msg


def test_extra_eval_from_another_tokenizer(corpora, tmp_path):
    stream = ToyStream(corpora / "small", W, 64)
    src = DataSource(torch.utils.data.DataLoader(stream, batch_size=4), corpora / "small", W, state=stream)
    with pytest.raises(MixerError) as exc:
        train(quick(extra_eval=(f"{corpora / 'big'}:a",)), src, tmp_path / "run")
    assert "held-out domain 'a'" in one_line(exc) and "training tokenizer" in str(exc.value)


@pytest.mark.parametrize("model", ["gpt2", "bert"])
def test_empty_held_out_domain(corpora, tmp_path, model):
    stream = ToyStream(corpora / "empty", W, 64, mlm=model == "bert")
    src = DataSource(torch.utils.data.DataLoader(stream, batch_size=4), corpora / "empty", W, state=stream)
    with pytest.raises(MixerError) as exc:
        train(quick(model=model), src, tmp_path / "run")
    assert "domain 'b' has no held-out tokens" in one_line(exc)


def test_stream_runs_out(corpora, tmp_path):
    stream = ToyStream(corpora / "small", W, 64, limit=12)  # 3 batches of 4
    src = DataSource(torch.utils.data.DataLoader(stream, batch_size=4), corpora / "small", W, state=stream)
    with pytest.raises(MixerError) as exc:
        train(quick(steps=5), src, tmp_path / "run")
    assert "ran out at step 3 of 5" in one_line(exc)


def test_existing_checkpoint_needs_resume_and_same_settings(corpora, tmp_path):
    def src():
        stream = ToyStream(corpora / "small", W, 64)
        return DataSource(torch.utils.data.DataLoader(stream, batch_size=4), corpora / "small", W, state=stream)

    train(quick(), src(), tmp_path / "run")
    with pytest.raises(MixerError) as exc:
        train(quick(), src(), tmp_path / "run")
    assert "pass --resume" in one_line(exc)
    with pytest.raises(MixerError) as exc:
        train(quick(lr=1e-4), src(), tmp_path / "run", resume=True)
    assert "lr=0.003" in one_line(exc)


def test_shards_source_without_an_index(corpora):
    with pytest.raises(MixerError) as exc:
        source_from_shards(corpora / "nothing", 4, corpora / "small")
    assert "no shard index" in one_line(exc)


def test_run_record_rejects_bad_files():
    good = dict(format_version=1, corpus_sha256="0" * 64, budget_tokens=100, weights={"a": 1.0},
                tokens_per_domain={"a": 100}, final_loss={"a": 3.0}, model="gpt2", preset="tiny", seed=0,
                provenance={})
    assert RunRecord.from_json(good).final_loss == {"a": 3.0}
    for bad, needle in [({**good, "format_version": 2}, "format_version 2"),
                        ({k: v for k, v in good.items() if k != "final_loss"}, "missing field 'final_loss'"),
                        ({**good, "final_loss": {"a": float("nan")}}, "final_loss of domain 'a'"),
                        ({**good, "weights": {"a": 0.5}}, "weights sum to 0.5"),
                        ({**good, "tokens_per_domain": {"z": 1}}, "domain 'z'"),
                        ({**good, "budget_tokens": "many"}, "budget_tokens"),
                        ({**good, "surprise": 1}, "unknown field 'surprise'")]:
        with pytest.raises(MixerError) as exc:
            RunRecord.from_json(bad, source="run.json")
        assert needle in one_line(exc) and one_line(exc).startswith("run.json:")
    np.testing.assert_equal(RunRecord.from_json(good).to_json()["weights"], {"a": 1.0})
