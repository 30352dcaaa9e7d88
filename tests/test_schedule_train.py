"""Training on a schedule: `mixer train --schedule` and a loop run that follows one."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.formats.schedule import make_schedule, save_schedule
from mixer.formats.synthetic import random_skewed_corpus
from mixer.loop.autoscale import schedule_shares
from mixer.loop.runner import RunSpec, TrainSpec
from mixer.trainers import load_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCHEDULE = make_schedule([(4096, {"a": 0.8, "b": 0.2}), (10240, {"a": 0.3, "b": 0.7})])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("strain") / "corpus"
    return random_skewed_corpus(path, ("a", "b"), 150, 12)


def test_train_command_follows_a_schedule(corpus, tmp_path):
    save_schedule(tmp_path / "schedule.json", SCHEDULE)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--model", "gpt2", "--preset", "tiny", "--corpus", str(corpus),
                                  "--schedule", str(tmp_path / "schedule.json"), "--seq-len", "64", "--out", str(out),
                                  "--eval-seqs", "4", "--quiet"])
    assert r.exit_code == 0, r.output
    rec = load_run(out / "run.json")
    assert rec.budget_tokens == 10240
    # the whole run's shares: stage 0 holds 64 rows, stage 1 holds 96 rows of 64 tokens
    assert rec.weights["a"] == pytest.approx((0.8 * 4096 + 0.3 * 6144) / 10240, abs=1e-9)
    assert rec.provenance["source"]["schedule"][1] == {"until_tokens": 10240, "weights": {"a": 0.3, "b": 0.7}}
    bad = CliRunner().invoke(main, ["train", "--corpus", str(corpus), "--schedule", str(tmp_path / "schedule.json"),
                                    "--weight", "a=1", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--schedule is the mixture" in bad.output


def test_run_key_names_the_schedule():
    base = {"corpus": "c", "corpus_sha256": "0" * 64, "name": "t", "weights": schedule_shares(SCHEDULE, 10240),
            "budget_tokens": 10240, "train": TrainSpec()}
    fixed = RunSpec(**base)
    sched = RunSpec(**base, schedule=[{"until_tokens": s.until_tokens, "weights": s.weights} for s in SCHEDULE.stages])
    other = RunSpec(**base, schedule=[{"until_tokens": 10240, "weights": {"a": 0.5, "b": 0.5}}])
    assert len({fixed.key(), sched.key(), other.key()}) == 3
    assert np.isclose(sum(base["weights"].values()), 1.0)
