"""`state_dict()` in the main process after plain DataLoader workers read the stream raises
(it used to report 0 consumed and silently restart); the two working patterns resume exactly."""
from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from mixer.core.errors import MixerError
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig, write_shards
from mixer.stream.sampler import MixtureSampler
from mixer.stream.stream import MixtureStream
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

B, SEQ = 4, 32
WEIGHTS = {"a": 0.3, "b": 0.7}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    write_synthetic_corpus(root / "c", {"a": lognormal_lengths(200, 30, 0.6, 1), "b": lognormal_lengths(200, 30, 0.6, 2)},
                           vocab_size=700, seed=5)
    plan = build_plan(root / "c", WEIGHTS, PlanConfig(tokens=96 * SEQ, seq_len=SEQ, seed=1))
    write_shards(plan, root / "c", root / "s", ShardConfig(shard_tokens=8 * SEQ, workers=1))
    return root / "c", root / "s"


def make(kind, folders):
    corpus, shards = folders
    if kind == "stream":
        return MixtureStream(shards, 0, 1, batch_size=B)
    return MixtureSampler(corpus, WEIGHTS, 96 * SEQ, SEQ, seed=1, rank=0, world_size=1, batch_size=B)


def rows(batches) -> np.ndarray:
    return np.concatenate([b["input_ids"].numpy() for b in batches])


@pytest.mark.parametrize("kind", ["stream", "sampler"])
def test_state_dict_after_plain_dataloader_workers_raises_pointing_to_statefuldataloader(folders, kind):
    stream = make(kind, folders)
    it = iter(DataLoader(stream, batch_size=B, num_workers=2))
    for _ in range(3):
        next(it)
    del it
    with pytest.raises(MixerError, match=r"DataLoader workers read the stream.*StatefulDataLoader.*"
                                         r"load_state_dict\(\{'consumed': n\}\)"):
        stream.state_dict()
    # the documented way out: the caller's own count, then the main process's position is exact again
    stream.load_state_dict({"consumed": 3 * B})
    assert stream.state_dict()["consumed"] == 3 * B


def test_one_worker_counts_as_workers_and_main_process_reading_clears_it(folders):
    stream = make("stream", folders)
    whole = rows(DataLoader(stream, batch_size=B, num_workers=1))
    with pytest.raises(MixerError, match="StatefulDataLoader"):
        stream.state_dict()
    it = iter(DataLoader(stream, batch_size=B))  # num_workers=0: the main process holds the position
    head = rows([next(it) for _ in range(5)])
    state = stream.state_dict()
    assert state["consumed"] == 5 * B
    resumed = make("stream", folders)
    resumed.load_state_dict(state)
    assert np.array_equal(np.concatenate([head, rows(DataLoader(resumed, batch_size=B))]), whole)


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")
def test_statefuldataloader_with_workers_resumes_exactly(folders):
    from torchdata.stateful_dataloader import StatefulDataLoader

    whole = rows(DataLoader(make("sampler", folders), batch_size=B))
    loader = StatefulDataLoader(make("sampler", folders), batch_size=B, num_workers=2)
    it = iter(loader)
    head = rows([next(it) for _ in range(5)])
    state = loader.state_dict()
    del it
    again = StatefulDataLoader(make("sampler", folders), batch_size=B, num_workers=2)
    again.load_state_dict(state)
    assert np.array_equal(np.concatenate([head, rows(again)]), whole)
