"""`stream.loader(num_workers)`: the same batches in the same order for any number of workers
(shards dealt whole to workers, chunks handed over through shared-memory slots and put back in
order), an exact position in the main process, and the deal itself."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from support import corrupt_copy
from torch.utils.data import DataLoader

from mixer import MixtureSampler, MixtureStream
from mixer.core.errors import MixerError
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig, write_shards
from mixer.stream.partition import deal_chunks, split_runs, unit_tasks

SEQ_LEN = 32
WEIGHTS = {"code": 0.2, "news": 0.5, "web": 0.3}
# Small hand-overs so a 40-sequence shard is cut into several parts and chunks: with B = 4,
# chunks of 8 sequences and parts of 16 (3 parts a shard, the last one of 8).
SMALL = {"chunk_tokens": 8 * SEQ_LEN, "part_tokens": 16 * SEQ_LEN}
# three workers on a 2-core machine: torch warns, the test means it
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("loader") / "corpus"
    write_synthetic_corpus(path, {"code": lognormal_lengths(150, 40, 1.0, 1), "news": lognormal_lengths(300, 50, 1.0, 2),
                                  "web": lognormal_lengths(250, 40, 1.0, 3)}, vocab_size=2000, seed=5)
    return path


def build(corpus: Path, out: Path, objective: str = "causal") -> Path:
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=150 * SEQ_LEN + 7, seq_len=SEQ_LEN, seed=11,
                                                  objective=objective))
    write_shards(plan, corpus, out, ShardConfig(shard_tokens=40 * SEQ_LEN, workers=1))
    return out


@pytest.fixture(scope="module")
def shards(corpus: Path) -> Path:
    return build(corpus, corpus.parent / "shards")


def reference(stream) -> list[dict[str, torch.Tensor]]:
    """What a plain DataLoader in the main process gives: the documented order."""
    return list(DataLoader(stream, batch_size=stream.batch_size))


def same(got: list[dict], want: list[dict]) -> bool:
    return len(got) == len(want) and all(
        a.keys() == b.keys() and all(a[k].dtype == torch.int64 and torch.equal(a[k], b[k]) for k in a)
        for a, b in zip(got, want))


@pytest.mark.parametrize("batch_size", [4, 7])
@pytest.mark.parametrize("rank,world_size", [(0, 1), (1, 2)])
def test_any_number_of_workers_gives_the_main_process_batches_in_order(shards, batch_size, rank, world_size):
    """B = 7 does not divide the 40-sequence shards: some batches join two shards, which two
    different workers decoded."""
    def stream(**kw):
        return MixtureStream(shards, rank=rank, world_size=world_size, batch_size=batch_size, **kw)

    want = reference(stream())
    assert len(want) == len(stream().loader())
    for workers in (0, 1, 2, 3):
        for kw in ({}, {"batched": True}):
            got = list(stream(**kw).loader(workers, **SMALL))
            assert same(got, want), (workers, kw)
    # the default hand-over sizes (one part a shard) give the same
    assert same(list(stream().loader(2)), want)


def test_two_workers_deliver_each_sequence_once_per_pass_for_two_passes(shards):
    stream = MixtureStream(shards, batch_size=4)
    zero = torch.cat([b["input_ids"] for b in MixtureStream(shards, batch_size=4).loader(0)])
    loader = stream.loader(2, **SMALL)
    for epoch in (1, 2):
        two = torch.cat([b["input_ids"] for b in loader])
        # as a multiset and in order
        assert sorted(map(tuple, two.tolist())) == sorted(map(tuple, zero.tolist()))
        assert torch.equal(two, zero)
        assert stream.epoch == epoch and stream.state_dict()["consumed"] == 0


@pytest.mark.parametrize("workers,then", [(2, 0), (2, 3), (0, 2), (3, 1)])
def test_position_is_exact_at_any_number_of_workers(shards, workers, then):
    want = reference(MixtureStream(shards, rank=1, world_size=2, batch_size=4))
    for k in (1, 5):
        stream = MixtureStream(shards, rank=1, world_size=2, batch_size=4)
        loader = stream.loader(workers, **SMALL)
        it = iter(loader)
        head = [next(it) for _ in range(k)]
        state = pickle.loads(pickle.dumps(loader.state_dict()))
        assert state["consumed"] == k * 4
        it.close()  # stops the workers
        resumed = MixtureStream(shards, rank=1, world_size=2, batch_size=4).loader(then, **SMALL)
        resumed.load_state_dict(state)
        assert same(head + list(resumed), want)
        # a loader broken off and iterated again continues where it stopped
        assert same(head + list(loader), want)


def test_masked_lm_and_without_domain_ids(corpus, tmp_path):
    mlm = build(corpus, tmp_path / "mlm", objective="mlm")
    want = reference(MixtureStream(mlm, batch_size=4))
    assert "attention_mask" in want[0]
    assert same(list(MixtureStream(mlm, batch_size=4).loader(2, **SMALL)), want)
    plain = list(MixtureStream(mlm, batch_size=4, domain_ids=False).loader(2, **SMALL))
    assert set(plain[0]) == {"input_ids", "attention_mask"}
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(plain, want))


def test_one_slot_short_of_the_prefetch_still_in_order(shards):
    """prefetch_factor=1: two slots a worker, so workers wait for this process to copy chunks out."""
    want = reference(MixtureStream(shards, batch_size=4))
    got = list(MixtureStream(shards, batch_size=4).loader(2, prefetch_factor=1, **SMALL))
    assert same(got, want)


def test_sampler_loader_with_workers(corpus):
    def sampler():
        return MixtureSampler(corpus, WEIGHTS, 150 * SEQ_LEN, SEQ_LEN, 11, rank=0, world_size=1, batch_size=4)

    want = reference(sampler())
    assert same(list(sampler().loader(2)), want)
    assert same(list(sampler().loader(2, **SMALL)), want)


def test_collate_pin_and_bad_arguments(shards):
    from mixer import MixtureCollator

    batch = next(iter(MixtureStream(shards, batch_size=4).loader(2, collate_fn=MixtureCollator())))
    assert torch.equal(batch["labels"], batch["input_ids"]) and batch["labels"].shape == (4, SEQ_LEN)
    pinned = next(iter(MixtureStream(shards, batch_size=4).loader(0, pin_memory=True)))
    assert pinned["input_ids"].is_pinned() == torch.cuda.is_available()  # no GPU: skipped, as a DataLoader does
    with pytest.raises(MixerError, match="batch_size= is the stream's"):
        MixtureStream(shards, batch_size=4).loader(2, batch_size=8)
    with pytest.raises(MixerError, match="num_workers -1"):
        MixtureStream(shards, batch_size=4).loader(-1)


def test_deal_chunks_known_answer():
    """Sequences 3..100 of shards of 40: shard 0 (37 rows) and 1 (40 rows) cut into parts of
    16 (dealt round-robin to 2 workers), each part into chunks of 8; then shard 2's 21 rows."""
    bounds = np.array([0, 40, 80, 120], dtype=np.int64)
    plan = deal_chunks(np.array([[3, 98]], dtype=np.int64), bounds, 2, 16, 8)
    got = [(w, u, r.tolist()) for w, u, r in plan]
    assert got == [
        (0, 0, [[3, 8]]), (0, 0, [[11, 8]]), (1, 0, [[19, 8]]), (1, 0, [[27, 8]]), (0, 0, [[35, 5]]),
        (1, 1, [[40, 8]]), (1, 1, [[48, 8]]), (0, 1, [[56, 8]]), (0, 1, [[64, 8]]), (1, 1, [[72, 8]]),
        (0, 2, [[80, 8]]), (0, 2, [[88, 8]]), (1, 2, [[96, 5]])]
    assert sum(r[0][1] for _, _, r in got) == 98
    # lead=1: the main process reads the first part while the workers start; then round-robin
    led = deal_chunks(np.array([[3, 98]], dtype=np.int64), bounds, 2, 16, 8, lead=1)
    assert [w for w, _, _ in led] == [-1, -1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0]
    assert [(u, r.tolist()) for _, u, r in led] == [(u, r) for _, u, r in got]
    assert [g.tolist() for g in split_runs(np.array([[0, 3], [10, 4]]), 5)] == [[[0, 3], [10, 2]], [[12, 2]]]


def test_unit_tasks_known_answer():
    """Runs split at shard bounds, touching runs merged (also across a bound), empty runs dropped."""
    bounds = np.array([0, 40, 80, 120], dtype=np.int64)
    runs = np.array([[3, 4], [7, 4], [20, 0], [30, 60], [95, 2], [100, 5]], dtype=np.int64)
    got = [(u, r.tolist()) for u, r in unit_tasks(runs, bounds)]
    assert got == [(0, [[3, 8], [30, 10]]), (1, [[40, 40]]), (2, [[80, 10], [95, 2], [100, 5]])]
    assert unit_tasks(np.zeros((0, 2), np.int64), bounds) == []


def test_corrupt_shard_read_by_a_worker_is_named_and_stops_the_loader(shards, tmp_path):
    bad = corrupt_copy(shards, tmp_path / "bad", "shard-00002.zst")
    stream = MixtureStream(bad, batch_size=4)
    got = []
    with pytest.raises(MixerError, match=r"shard-00002\.zst: checksum mismatch"):
        for batch in stream.loader(2, **SMALL):
            got.append(batch)  # noqa: PERF402 (the loop is cut short by the error)
    # shards 0 and 1 (80 sequences) came before it, in order; the position says so
    assert same(got, reference(MixtureStream(shards, batch_size=4))[:len(got)]) and len(got) <= 20
    assert stream.state_dict()["consumed"] == 4 * len(got)


def test_shards_on_object_storage_through_loader_workers(shards, tmp_path):
    """Each worker downloads (into the shared cache folder) only the shards it is dealt."""
    from s3_server import client, s3_server, upload_folder

    from mixer.stream.shard_cache import ShardCache

    s3fs = pytest.importorskip("s3fs", reason="the object-storage tests need s3fs (mixer-toolkit[s3])")
    want = reference(MixtureStream(shards, batch_size=4))
    # s3fs caches filesystems by their arguments, not by AWS_ENDPOINT_URL: one made against
    # another test's (stopped) server would be reused, and ours after us
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        with s3_server():
            client().create_bucket(Bucket="mixer-loader")
            upload_folder(shards, "mixer-loader", "shards")
            stream = MixtureStream(ShardCache("s3://mixer-loader/shards", tmp_path / "cache"), batch_size=4)
            assert same(list(stream.loader(2, **SMALL)), want)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
