"""`--log tensorboard` (and `--log wandb`, offline): `mixer train` and the loop's proxies log
training loss, per-domain held-out loss, learning rate, tokens/s and data wait; the loop logs
each proxy as its own run, named as its cache folder."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.core.metrics import MetricsConfig, open_metrics, parse_targets
from mixer.formats.synthetic import random_skewed_corpus, write_skewed_corpus
from mixer.trainers import load_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TRAIN_TAGS = {"train/loss", "train/lr", "train/tokens_per_s", "train/data_wait_s", "train/data_wait_share"}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in one run's event files, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def run_folders(root: Path) -> set[str]:
    """The folders under `root` that hold event files, relative to it."""
    return {p.parent.relative_to(root).as_posix() for p in root.rglob("events.out.tfevents.*")}


@pytest.fixture()
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    write_skewed_corpus(tmp_path / "c", {"code": rng.integers(40, 200, 200), "news": rng.integers(40, 200, 200)},
                        {"code": [100] * 6, "news": [100] * 6}, vocab_size=256)
    return tmp_path / "c"


def test_train_logs_every_metric_to_tensorboard(corpus, tmp_path):
    out = tmp_path / "run-a"
    r = CliRunner().invoke(main, ["train", "--corpus", str(corpus), "--weight", "code=0.25", "--weight", "news=0.75",
                                  "--tokens", "10k", "--out", str(out), "--eval-every", "5", "--eval-seqs", "4",
                                  "--log", "tensorboard", "--quiet"])
    assert r.exit_code == 0, r.output
    assert run_folders(out / "logs") == {"run-a"}  # one run, named as the run folder
    got = scalars(out / "logs" / "run-a")
    record = load_run(out / "run.json")
    curve = record.curve
    assert set(got) == TRAIN_TAGS | {"train/loss/code", "train/loss/news", "eval/loss/code", "eval/loss/news"}
    assert [s for s, _ in got["train/loss"]] == curve["train"]["step"]
    assert np.allclose([v for _, v in got["train/loss"]], curve["train"]["mean"], rtol=1e-6)
    assert np.allclose([v for _, v in got["train/lr"]], curve["train"]["lr"], rtol=1e-6)
    assert [s for s, _ in got["eval/loss/news"]] == curve["eval"]["step"] == [5, 10, 15, 19]
    assert got["eval/loss/news"][-1][1] == pytest.approx(record.final_loss["news"], rel=1e-6)
    assert all(v > 0 for _, v in got["train/tokens_per_s"]) and all(0 <= v < 1 for _, v in got["train/data_wait_share"])


@pytest.mark.parametrize("batch", [0, 4])
def test_the_loop_logs_each_proxy_as_a_run_named_as_its_cache_folder(tmp_path, batch):
    corpus = random_skewed_corpus(tmp_path / "corpus", ("a", "b", "c"), 150, 12)
    out = tmp_path / "loop"
    r = CliRunner().invoke(main, ["loop", "ddo", "--corpus", str(corpus), "--out", str(out), "--tokens", "8192",
                                  "--factors", "2", "--eval-seqs", "8", "--bootstrap", "0", "--quiet",
                                  "--batch-proxies", str(batch), "--log", "tensorboard"])
    assert r.exit_code == 0, r.output
    cached = {p.parent.relative_to(out / "runs").as_posix() for p in (out / "runs").rglob("run.json")}
    assert len(cached) == 4 and run_folders(out / "logs") == cached  # base + one perturbed run per domain
    for name in cached:
        got = scalars(out / "logs" / name)
        final = json.loads((out / "runs" / name / "run.json").read_text())["final_loss"]
        assert TRAIN_TAGS <= set(got)
        assert {d: got[f"eval/loss/{d}"][-1][1] for d in final} == pytest.approx(final, rel=1e-5)
    spec = json.loads((out / "runs" / min(cached) / "spec.json").read_text())
    assert not {"log", "log_dir"} & set(spec["train"])  # where metrics go is no input of the run


def test_where_metrics_go_is_not_part_of_the_cache_key(tmp_path):
    from dataclasses import replace

    from mixer.loop.runner import RunSpec, TrainSpec

    spec = RunSpec(corpus="c", corpus_sha256="0" * 64, name="base", weights={"a": 1.0}, budget_tokens=8192)
    logged = replace(spec, train=TrainSpec(log=("tensorboard",), log_dir=str(tmp_path)))
    assert logged.key() == spec.key() and logged.folder() == spec.folder()
    assert logged.metrics() == MetricsConfig(("tensorboard",), str(tmp_path), spec.folder()) and spec.metrics() is None


def test_bad_or_missing_targets_are_one_line(corpus, tmp_path, monkeypatch):
    assert parse_targets("tensorboard, wandb") == ("tensorboard", "wandb") and parse_targets(None) == ()
    with pytest.raises(MixerError, match="unknown target 'tensorbord'"):
        parse_targets("tensorbord")
    r = CliRunner().invoke(main, ["train", "--corpus", str(corpus), "--weight", "code=1", "--tokens", "10k",
                                  "--out", str(tmp_path / "o"), "--log-dir", str(tmp_path / "l")])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == (
        "error: --log-dir only applies with --log tensorboard|wandb; add --log or drop --log-dir")
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(MixerError, match=r"pip install 'mixer-toolkit\[tensorboard\]'"):
        open_metrics(MetricsConfig(("tensorboard",), str(tmp_path), "x"))


def wandb_history(run_file: Path) -> list[dict[str, float]]:
    """The logged rows of an offline run, read from its `.wandb` file: a 7-byte file header, then
    LevelDB-log records (32 KiB blocks; per chunk crc32, length, type) of `wandb` protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunk, rows = run_file.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if left < 7 or (kind == 0 and length == 0):  # the rest of a block is padding
            pos += left
            continue
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: one record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


def test_wandb_offline_logs_the_same_metrics(corpus, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run-w"
    r = CliRunner().invoke(main, ["train", "--corpus", str(corpus), "--weight", "code=0.5", "--weight", "news=0.5",
                                  "--tokens", "5k", "--out", str(out), "--eval-seqs", "4", "--log", "wandb", "--quiet"])
    assert r.exit_code == 0, r.output
    runs = list((out / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    rows = wandb_history(runs[0])
    record = load_run(out / "run.json")
    train = [row for row in rows if "train/loss" in row]
    assert [row["_step"] for row in train] == record.curve["train"]["step"]
    assert [row["train/loss"] for row in train] == pytest.approx(record.curve["train"]["mean"], rel=1e-6)
    assert TRAIN_TAGS <= set(train[0])
    last = [row for row in rows if "eval/loss/code" in row][-1]
    assert {d: last[f"eval/loss/{d}"] for d in ("code", "news")} == pytest.approx(record.final_loss, rel=1e-6)
