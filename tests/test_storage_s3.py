"""Shards on object storage, against a real S3-protocol server (moto in server mode, bytes over
HTTP): the stream from `s3://` through a local cache equals the stream from the same shards on
disk (0 and 2 workers, 2 ranks, resume), a corrupt object is caught on download and named, the
cache evicts consumed shards over its limit and serves a second pass without the server."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from mixer import MixtureStream
from mixer.core.errors import MixerError
from s3_server import client, s3_server, upload_folder
from test_stream import SEQ_LEN, make_corpus, make_shards, rows

B = 4
BUCKET = "mixer-test"


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        client().create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("s3") / "corpus")


@pytest.fixture(scope="module")
def shards(corpus: Path) -> Path:
    return make_shards(corpus, corpus.parent / "shards")  # 150 sequences in 4 shards of 40


@pytest.fixture(scope="module")
def url(endpoint, shards) -> str:
    upload_folder(shards, BUCKET, "shards")
    return f"s3://{BUCKET}/shards"


def local_rows(shards: Path, workers: int = 0, **kw) -> np.ndarray:
    return rows(DataLoader(MixtureStream(shards, batch_size=B, **kw), batch_size=B, num_workers=workers))


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_from_s3_equals_the_stream_from_disk(shards, url, tmp_path, workers):
    cache = tmp_path / "cache"
    want = local_rows(shards)
    assert len(want) == 150
    got = rows(DataLoader(MixtureStream(url, batch_size=B, cache_dir=cache), batch_size=B, num_workers=workers))
    assert np.array_equal(got, want)
    folders = list(cache.iterdir())
    assert len(folders) == 1  # one folder per index version
    assert sorted(p.name for p in folders[0].iterdir()) == sorted(p.name for p in shards.iterdir())
    for p in shards.iterdir():  # the cached bytes are the built bytes
        assert (folders[0] / p.name).read_bytes() == p.read_bytes()


def test_two_ranks_from_s3_equal_two_ranks_from_disk(shards, url, tmp_path):
    for rank in (0, 1):
        want = local_rows(shards, rank=rank, world_size=2)
        got = rows(DataLoader(MixtureStream(url, rank=rank, world_size=2, batch_size=B, cache_dir=tmp_path / "c"),
                              batch_size=B, num_workers=2))
        assert len(got) == 75 and np.array_equal(got, want)


def test_resume_mid_stream_from_s3(shards, url, tmp_path):
    want = local_rows(shards, rank=1, world_size=2)
    for k in (3, 11):  # inside the first shard, and past a shard boundary
        stream = MixtureStream(url, rank=1, world_size=2, batch_size=B, cache_dir=tmp_path / f"a{k}")
        it = iter(DataLoader(stream, batch_size=B))
        head = rows([next(it) for _ in range(k)])
        del it
        state = pickle.loads(pickle.dumps(stream.state_dict()))
        resumed = MixtureStream(url, rank=1, world_size=2, batch_size=B, cache_dir=tmp_path / f"b{k}")
        resumed.load_state_dict(state)  # the same fingerprint as from disk: the same stream
        assert state["fingerprint"] == MixtureStream(shards).state_dict()["fingerprint"]
        tail = rows(DataLoader(resumed, batch_size=B))
        assert np.array_equal(np.concatenate([head, tail]), want)


def test_cache_limit_evicts_consumed_shards(shards, url, tmp_path):
    cache = tmp_path / "small"
    shard_bytes = max((shards / "shard-00000.zst").stat().st_size + (shards / "shard-00000.domains.zst").stat().st_size,
                      1)
    stream = MixtureStream(url, batch_size=B, cache_dir=cache, cache_limit=shard_bytes, prefetch=1)
    seen_files = []
    got = []
    folder = None
    for batch in DataLoader(stream, batch_size=B):
        got.append(batch)
        folder = folder or next(cache.iterdir())
        seen_files.append(len([p for p in folder.glob("shard-?????.zst")]))
    assert np.array_equal(rows(got), local_rows(shards))
    assert max(seen_files) <= 3  # the current shard, one prefetched, one consumed not yet evicted
    assert len(list(folder.glob("shard-?????.zst"))) <= 2 < len(list(shards.glob("shard-?????.zst")))


def test_a_warm_cache_needs_only_the_index(shards, corpus, endpoint, tmp_path):
    other = make_shards(corpus, tmp_path / "warm", tokens=90 * SEQ_LEN)
    upload_folder(other, BUCKET, "warm")
    cache = tmp_path / "cache"
    first = local_rows(other)
    assert np.array_equal(rows(DataLoader(MixtureStream(f"s3://{BUCKET}/warm", batch_size=B, cache_dir=cache),
                                          batch_size=B)), first)
    c = client()
    for p in other.glob("shard-*"):
        c.delete_object(Bucket=BUCKET, Key=f"warm/{p.name}")
    again = rows(DataLoader(MixtureStream(f"s3://{BUCKET}/warm", batch_size=B, cache_dir=cache), batch_size=B))
    assert np.array_equal(again, first)
    with pytest.raises(MixerError, match=r"s3://mixer-test/warm/shard-00000\.zst: missing, though index\.json"):
        list(MixtureStream(f"s3://{BUCKET}/warm", batch_size=B, cache_dir=tmp_path / "cold"))


def test_corrupt_object_is_caught_on_download_and_named(shards, endpoint, tmp_path):
    upload_folder(shards, BUCKET, "bad")
    data = bytearray((shards / "shard-00002.zst").read_bytes())
    data[len(data) // 2] ^= 0x40
    client().put_object(Bucket=BUCKET, Key="bad/shard-00002.zst", Body=bytes(data))
    cache = tmp_path / "cache"
    seen = 0
    with pytest.raises(MixerError, match=r"^s3://mixer-test/bad/shard-00002\.zst: checksum mismatch on download"):
        for _ in MixtureStream(f"s3://{BUCKET}/bad", cache_dir=cache):
            seen += 1
    assert seen == 80  # the two good shards before it, never a skipped shard
    assert not list(cache.rglob("shard-00002.zst"))  # nothing unverified published into the cache


def test_not_a_shards_url_is_one_clear_error(endpoint, tmp_path):
    with pytest.raises(MixerError, match=r"^s3://mixer-test/nothing/index\.json: no index\.json"):
        MixtureStream(f"s3://{BUCKET}/nothing", cache_dir=tmp_path)
