"""`mixer train` under torchrun, as docs/trainers.md tells a user to launch it: two real processes,
the gloo process group on the CPU, DDP. The documented `torchrun ... -m mixer.cli train` failed
at once ("'mixer.cli' is a package and cannot be directly executed") before the package had a
`__main__`; nothing launched it as a module."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from functools import partial

import numpy as np
import pytest

from mixer.formats.synthetic import write_skewed_corpus
from mixer import MixtureSampler

WORLD, BATCH, SEQ, STEPS = 2, 8, 64, 4  # the tiny preset's batch and sequence length


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # (a test run under a launcher must not hand its own rank down)
    return env


def test_the_command_runs_as_a_module():
    for module in ("mixer", "mixer.cli"):
        done = subprocess.run([sys.executable, "-m", module, "train", "--help"], capture_output=True, text=True,
                              env=_env(), timeout=120)
        assert done.returncode == 0, done.stderr
        assert "--corpus" in done.stdout


def test_torchrun_ddp_trains_on_disjoint_halves_of_the_exact_mixture(tmp_path):
    rng = np.random.default_rng(0)
    corpus = write_skewed_corpus(tmp_path / "c", {"code": rng.integers(40, 200, 80), "news": rng.integers(40, 200, 80)},
                                 {"code": [100] * 6, "news": [100] * 6}, vocab_size=256)
    weights = {"code": 0.25, "news": 0.75}
    (tmp_path / "w.json").write_text(json.dumps({"weights": weights}))
    tokens = WORLD * BATCH * SEQ * STEPS  # no remainder: the ranks together read the whole stream once
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
         "-m", "mixer.cli", "train", "--model", "gpt2", "--preset", "tiny", "--corpus", str(corpus),
         "--weights", str(tmp_path / "w.json"), "--tokens", str(tokens), "--eval-seqs", "4",
         "--out", str(tmp_path / "run"), "--quiet", "--log-to", "tensorboard"],
        capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["provenance"]["world_size"] == WORLD and run["config"]["world_size"] == WORLD
    assert run["steps"] == STEPS and run["tokens_seen"] == tokens
    # Every token of the one-process stream was trained on once, by one rank or the other: had the
    # ranks read the same sequences, or one rank the whole stream, the domains' counts would not be
    # the whole stream's.
    whole = MixtureSampler(corpus, weights, tokens=tokens, seq_len=SEQ, seed=0, world_size=1, rank=0)
    names = whole.plan.domains
    expected = Counter()
    for item in whole:
        for d, n in zip(*np.unique(item["domain_ids"].numpy(), return_counts=True)):
            expected[names[int(d)]] += int(n)
    assert run["tokens_per_domain"] == dict(expected)
    assert set(run["final_loss"]) == set(weights)
    # --log-to (torchrun's parser stops at --log, a prefix of its own --log-dir): one run, from rank 0
    assert len(list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))) == 1
    assert all(np.isfinite(v) for v in run["final_loss"].values())


def _torchrun_train(corpus, weights_file, tokens: int, out, *extra: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
            "-m", "mixer.cli", "train", "--model", "gpt2", "--preset", "tiny", "--corpus", str(corpus),
            "--weights", str(weights_file), "--tokens", str(tokens), "--max-epochs", "4", "--eval-seqs", "4",
            "--out", str(out), "--quiet", *extra]


def test_torchrun_ddp_killed_and_resumed_equals_uninterrupted(tmp_path):
    """kill -9 of the whole torchrun job after its first checkpoint, then `--resume` under torchrun:
    the same final held-out losses, curves and per-domain tokens as the run never stopped (every
    rank's stream position, RNG and the optimiser come back)."""
    rng = np.random.default_rng(1)
    corpus = write_skewed_corpus(tmp_path / "c", {"code": rng.integers(40, 200, 120), "news": rng.integers(40, 200, 120)},
                                 {"code": [100] * 6, "news": [100] * 6}, vocab_size=256)
    (tmp_path / "w.json").write_text(json.dumps({"weights": {"code": 0.25, "news": 0.75}}))
    steps = 48
    tokens = WORLD * BATCH * SEQ * steps
    run = partial(_torchrun_train, corpus, tmp_path / "w.json", tokens)
    whole = subprocess.run(run(tmp_path / "whole", "--checkpoint-every", "4"), capture_output=True, text=True,
                           env=_env(), timeout=600, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    cut = tmp_path / "cut"
    job = subprocess.Popen(run(cut, "--checkpoint-every", "4"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=_env(), cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (cut / "checkpoint.pt").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    import torch

    at = torch.load(cut / "checkpoint.pt", weights_only=False)["step"]
    assert 0 < at < steps and not (cut / "run.json").exists(), at  # killed mid-run, not after it
    # On one process instead of two: refused by the ranks (it said "steps=48 but this run asks for 96")
    alone = subprocess.run([sys.executable, *run(cut, "--checkpoint-every", "4", "--resume")[5:]], capture_output=True,
                           text=True, env=_env(), timeout=600, cwd=tmp_path)
    assert alone.returncode == 2 and "written by 2 ranks, this run has 1" in alone.stderr, alone.stderr[-2000:]
    resumed = subprocess.run(run(cut, "--checkpoint-every", "4", "--resume"), capture_output=True, text=True,
                             env=_env(), timeout=600, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "whole" / "run.json").read_text())
    b = json.loads((cut / "run.json").read_text())
    assert b["steps"] == a["steps"] == steps
    assert b["final_loss"] == a["final_loss"]
    assert b["tokens_per_domain"] == a["tokens_per_domain"]
    assert b["curve"]["train"]["mean"] == a["curve"]["train"]["mean"]


def _shards(tmp_path, *, seed: int) -> None:
    """tmp_path/s: 30k tokens of two domains in 8k-token shards, built by the command a user runs."""
    rng = np.random.default_rng(seed)
    corpus = write_skewed_corpus(tmp_path / "c", {"code": rng.integers(40, 200, 200), "news": rng.integers(40, 200, 200)},
                                 {"code": [100] * 6, "news": [100] * 6}, vocab_size=256)
    built = subprocess.run([sys.executable, "-m", "mixer", "build-shards", "--corpus", str(corpus), "--weight",
                            "code=0.25", "--weight", "news=0.75", "--tokens", "30k", "--seq-len", "64",
                            "--shard-tokens", "8k", "--out", str(tmp_path / "s"), "--quiet"],
                           capture_output=True, text=True, env=_env(), timeout=300)
    assert built.returncode == 0, built.stderr


USER_LOOP = """
import sys, numpy as np, torch, torch.distributed as dist
from mixer import MixtureStream
dist.init_process_group("gloo")
loader = MixtureStream(sys.argv[1], batch_size=4).loader(num_workers=2)
rows = []
for i, batch in enumerate(loader):
    rows.append(batch["input_ids"])
    if i == 5:
        state = loader.state_dict()  # the job stops here, and a fresh loader takes over
        break
again = MixtureStream(sys.argv[1], batch_size=4).loader(num_workers=2)
again.load_state_dict(state)
rows += [batch["input_ids"] for batch in again]
np.save(f"{sys.argv[2]}/rank{dist.get_rank()}.npy", torch.cat(rows).numpy())
dist.destroy_process_group()
"""


def test_a_users_loop_under_torchrun_reads_its_ranks_share_with_workers_and_resumes(tmp_path):
    """The README's own-loop recipe in a real process group: `MixtureStream(shards)` finds its rank
    from torch.distributed, `loader(num_workers=2)` feeds it, a state taken after 6 batches resumes
    in a fresh loader; each rank gets exactly its in-process share (rank=r, world_size=2), and the
    two shares are disjoint parts of the one-rank stream."""
    _shards(tmp_path, seed=2)
    (tmp_path / "loop.py").write_text(USER_LOOP)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
                           str(tmp_path / "loop.py"), str(tmp_path / "s"), str(tmp_path)],
                          capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    from mixer import MixtureStream

    def rows(**where):
        return np.concatenate([b["input_ids"].numpy() for b in MixtureStream(tmp_path / "s", batch_size=4,
                                                                              **where).loader(0)])

    got = [np.load(tmp_path / f"rank{r}.npy") for r in range(WORLD)]
    for r in range(WORLD):
        np.testing.assert_array_equal(got[r], rows(rank=r, world_size=WORLD))
    whole = {row.tobytes() for row in rows(rank=0, world_size=1)}
    mine = [{row.tobytes() for row in g} for g in got]
    assert not (mine[0] & mine[1]) and (mine[0] | mine[1]) <= whole
    assert sum(map(len, got)) >= len(whole) - WORLD + 1  # at most the remainder left out


TRAINER_LOOP = """
import os, sys, numpy as np, torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments
from mixer import MixtureCollator, MixtureStream

seen = []


class Recording(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        inputs.pop("domain_ids")
        seen.append(inputs["input_ids"].numpy().copy())
        out = model(**inputs)
        return (out.loss, out) if return_outputs else out.loss


shards, out, whole, dispatch = sys.argv[1], sys.argv[2], sys.argv[3] == "whole", sys.argv[4] == "dispatch"
stream = MixtureStream(shards, batch_size=4, **(dict(rank=0, world_size=1) if whole else {}))
model = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                                   bos_token_id=0, eos_token_id=0))
args = TrainingArguments(out, per_device_train_batch_size=4, max_steps=10, report_to=[], use_cpu=True,
                         remove_unused_columns=False, save_strategy="no", disable_tqdm=True,
                         accelerator_config={"dispatch_batches": dispatch})
Recording(model=model, args=args, train_dataset=stream, data_collator=MixtureCollator()).train()
np.save(f"{out}/rank{os.environ['RANK']}.npy", np.concatenate(seen))
torch.distributed.destroy_process_group()
"""


def test_hf_trainer_under_torchrun_reads_the_whole_mixture_once_or_refuses(tmp_path):
    """The README's Trainer recipe under torchrun. Accelerate splits an IterableDataset over the
    processes itself; a stream that already holds one rank's share was split twice (measured before
    the check: both processes trained on rank 0's half, rank 1's half never read). Now that is one
    error naming the fix, and the fix, the whole mixture in every process (rank=0, world_size=1),
    gives the processes disjoint rows that are together the stream's first ones, in both of
    Accelerate's modes (process 0 dispatches, or each process keeps every other batch)."""
    _shards(tmp_path, seed=3)
    (tmp_path / "trainer.py").write_text(TRAINER_LOOP)

    def trainer(out, whole: str, dispatch: str):
        (tmp_path / out).mkdir()
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               f"--nproc-per-node={WORLD}", str(tmp_path / "trainer.py"), str(tmp_path / "s"),
                               str(tmp_path / out), whole, dispatch],
                              capture_output=True, text=True, env=_env(), timeout=600, cwd=tmp_path)

    split = trainer("split", "split", "dispatch")
    assert split.returncode != 0
    assert "read through Accelerate's data loader" in split.stderr and "rank=0, world_size=1" in split.stderr
    assert not list((tmp_path / "split").glob("rank*.npy"))
    from mixer import MixtureStream

    first = np.concatenate([b["input_ids"].numpy() for b in
                            MixtureStream(tmp_path / "s", batch_size=4, rank=0, world_size=1).loader(0)])
    first = {row.tobytes() for row in first[:WORLD * 4 * 10]}  # 10 steps of 4 rows on each process
    for dispatch in ("dispatch", "each-reads"):
        done = trainer(dispatch, "whole", dispatch)
        assert done.returncode == 0, done.stderr[-3000:]
        rows = [{row.tobytes() for row in np.load(tmp_path / dispatch / f"rank{r}.npy")} for r in range(WORLD)]
        assert all(len(r) == 40 for r in rows) and not (rows[0] & rows[1])
        assert rows[0] | rows[1] == first, dispatch


def test_commands_other_than_train_refuse_to_run_as_torchrun_copies(tmp_path):
    """`mixer loop` under torchrun ran the whole loop in every process and crashed with a traceback
    in its first proxy; every command but `train` now refuses, with one line from rank 0 and
    nothing written."""
    corpus = write_skewed_corpus(tmp_path / "c", {"code": [100] * 40, "news": [100] * 40},
                                 {"code": [100] * 6, "news": [100] * 6}, vocab_size=256)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
                           "-m", "mixer", "loop", "ddo", "--corpus", str(corpus), "--model", "gpt2", "--preset", "tiny",
                           "--tokens", "20k", "--out", str(tmp_path / "loop"), "--quiet"],
                          capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(said) == 1 and "only `mixer train` runs under torchrun" in said[0], done.stderr[-2000:]
    assert not (tmp_path / "loop").exists()


def test_world_size_alone_is_not_torchrun(monkeypatch):
    """A job script may export WORLD_SIZE for the training it launches later; preprocessing run in
    that shell is one process and runs."""
    from mixer.cli.main import refuse_torchrun_copies
    from mixer.core.errors import MixerError

    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    refuse_torchrun_copies("build-shards")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setenv("RANK", "0")
    refuse_torchrun_copies("train")
    with pytest.raises(MixerError, match="torchrun started 8 copies"):
        refuse_torchrun_copies("build-shards")
