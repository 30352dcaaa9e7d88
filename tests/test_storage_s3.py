"""Shards on object storage, against a real S3-protocol server (moto in server mode, bytes over
HTTP): the stream from `s3://` through a local cache equals the stream from the same shards on
disk (0 and 2 workers, 2 ranks, resume), a corrupt object is caught on download and named, the
cache evicts consumed shards over its limit and serves a second pass without the server."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from s3_server import client, s3_server, upload_folder
from test_stream import SEQ_LEN, make_corpus, make_shards, rows
from torch.utils.data import DataLoader

from mixer import MixtureStream
from mixer.core.errors import MixerError
from mixer.stream.shard_cache import ShardCache

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
    got = rows(DataLoader(MixtureStream(ShardCache(url, cache), batch_size=B), batch_size=B, num_workers=workers))
    assert np.array_equal(got, want)
    folders = list(cache.iterdir())
    assert len(folders) == 1  # one folder per index version
    assert sorted(p.name for p in folders[0].iterdir()) == sorted(p.name for p in shards.iterdir())
    for p in shards.iterdir():  # the cached bytes are the built bytes
        assert (folders[0] / p.name).read_bytes() == p.read_bytes()


def test_two_ranks_from_s3_equal_two_ranks_from_disk(shards, url, tmp_path):
    for rank in (0, 1):
        want = local_rows(shards, rank=rank, world_size=2)
        got = rows(DataLoader(MixtureStream(ShardCache(url, tmp_path / "c"), rank=rank, world_size=2, batch_size=B),
                              batch_size=B, num_workers=2))
        assert len(got) == 75 and np.array_equal(got, want)


def test_resume_mid_stream_from_s3(shards, url, tmp_path):
    want = local_rows(shards, rank=1, world_size=2)
    for k in (3, 11):  # inside the first shard, and past a shard boundary
        stream = MixtureStream(ShardCache(url, tmp_path / f"a{k}"), rank=1, world_size=2, batch_size=B)
        it = iter(DataLoader(stream, batch_size=B))
        head = rows([next(it) for _ in range(k)])
        del it
        state = pickle.loads(pickle.dumps(stream.state_dict()))
        resumed = MixtureStream(ShardCache(url, tmp_path / f"b{k}"), rank=1, world_size=2, batch_size=B)
        resumed.load_state_dict(state)  # the same fingerprint as from disk: the same stream
        assert state["fingerprint"] == MixtureStream(shards).state_dict()["fingerprint"]
        tail = rows(DataLoader(resumed, batch_size=B))
        assert np.array_equal(np.concatenate([head, tail]), want)


def test_cache_limit_evicts_consumed_shards(shards, url, tmp_path):
    cache = tmp_path / "small"
    shard_bytes = max((shards / "shard-00000.zst").stat().st_size + (shards / "shard-00000.domains.zst").stat().st_size,
                      1)
    stream = MixtureStream(ShardCache(url, cache, cache_limit=shard_bytes, prefetch=1), batch_size=B)
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
    assert np.array_equal(rows(DataLoader(MixtureStream(ShardCache(f"s3://{BUCKET}/warm", cache), batch_size=B),
                                          batch_size=B)), first)
    c = client()
    for p in other.glob("shard-*"):
        c.delete_object(Bucket=BUCKET, Key=f"warm/{p.name}")
    again = rows(DataLoader(MixtureStream(ShardCache(f"s3://{BUCKET}/warm", cache), batch_size=B), batch_size=B))
    assert np.array_equal(again, first)
    with pytest.raises(MixerError, match=r"s3://mixer-test/warm/shard-00000\.zst: missing, though index\.json"):
        list(MixtureStream(ShardCache(f"s3://{BUCKET}/warm", tmp_path / "cold"), batch_size=B))


def test_corrupt_object_is_caught_on_download_and_named(shards, endpoint, tmp_path):
    upload_folder(shards, BUCKET, "bad")
    data = bytearray((shards / "shard-00002.zst").read_bytes())
    data[len(data) // 2] ^= 0x40
    client().put_object(Bucket=BUCKET, Key="bad/shard-00002.zst", Body=bytes(data))
    cache = tmp_path / "cache"
    seen = 0
    with pytest.raises(MixerError, match=r"^s3://mixer-test/bad/shard-00002\.zst: checksum mismatch on download"):
        for _ in MixtureStream(ShardCache(f"s3://{BUCKET}/bad", cache)):
            seen += 1
    assert seen == 80  # the two good shards before it, never a skipped shard
    assert not list(cache.rglob("shard-00002.zst"))  # nothing unverified published into the cache


def test_not_a_shards_url_is_one_clear_error(endpoint, tmp_path):
    with pytest.raises(MixerError, match=r"^s3://mixer-test/nothing/index\.json: no index\.json"):
        ShardCache(f"s3://{BUCKET}/nothing", tmp_path)


# --- writing: build-shards --out s3:// -------------------------------------------------------------

BUILD = ["--weight", "code=0.2", "--weight", "news=0.5", "--weight", "web=0.3", "--tokens", "4800",
         "--seq-len", str(SEQ_LEN), "--data-seed", "11", "--shard-tokens", str(40 * SEQ_LEN), "--quiet"]


def build_cli(corpus: Path | str, out: str, *extra: str):
    from click.testing import CliRunner

    from mixer.cli.main import main

    return CliRunner().invoke(main, ["build-shards", "--corpus", str(corpus), *BUILD, "--out", out, *extra])


def test_build_shards_to_s3_uploads_the_local_build(corpus, endpoint, tmp_path, monkeypatch):
    from s3_server import objects

    from mixer.formats.shards import read_index

    monkeypatch.chdir(tmp_path)
    local = build_cli(corpus, str(tmp_path / "local"))
    assert local.exit_code == 0, local.output
    r = build_cli(corpus, f"s3://{BUCKET}/built")
    assert r.exit_code == 0, r.output
    assert f"-> s3://{BUCKET}/built" in r.output
    assert sorted(os.listdir(tmp_path)) == ["local"]  # nothing written locally (no ./s3:/...)
    got = objects(BUCKET, "built")
    files = {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir()}
    assert sorted(got) == sorted(files)  # no lock object left, nothing else
    for name, data in files.items():
        if name != "index.json":
            assert got[name] == data, name  # byte-identical shards and sidecars
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "index.json").write_bytes(got["index.json"])
    remote_index, local_index = read_index(tmp_path / "remote").to_dict(), read_index(tmp_path / "local").to_dict()
    assert "corpus_path" not in remote_index and local_index.pop("corpus_path").endswith("/corpus")
    assert remote_index == local_index
    # the stream from what was uploaded is the stream from the local build
    stream = MixtureStream(ShardCache(f"s3://{BUCKET}/built", tmp_path / "cache"), batch_size=B)
    assert np.array_equal(rows(DataLoader(stream, batch_size=B)), local_rows(tmp_path / "local"))
    # written once: a second build of the same URL is refused unless --overwrite
    again = build_cli(corpus, f"s3://{BUCKET}/built")
    assert again.exit_code == 2 and "output already exists" in again.output and "s3://mixer-test/built" in again.output
    over = build_cli(corpus, f"s3://{BUCKET}/built", "--overwrite")
    assert over.exit_code == 0, over.output
    assert objects(BUCKET, "built") == got


def test_second_writer_of_a_url_fails_at_once_naming_the_holder(corpus, endpoint, tmp_path):
    from s3_server import objects

    from mixer.core.urls import filesystem
    from mixer.shards.remote import remote_lock

    url = f"s3://{BUCKET}/contended"
    fs, root = filesystem(url)
    with remote_lock(fs, root, url):
        r = build_cli(corpus, url)
        assert r.exit_code == 2, r.output
        line = r.output.strip()
        assert "\n" not in line, repr(line)
        assert f"{url}: another mixer process is writing it (pid {os.getpid()} on " in line
        assert f"delete {url}/.mixer.lock" in line
        assert list(objects(BUCKET, "contended")) == [".mixer.lock"]  # the second writer wrote nothing
        with pytest.raises(MixerError, match="another mixer process is writing it"), remote_lock(fs, root, url):
            pass  # the store refuses the create
    assert objects(BUCKET, "contended") == {}  # released
    assert build_cli(corpus, url).exit_code == 0


def test_train_on_s3_shards_equals_train_on_the_same_shards_on_disk(endpoint, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mixer.cli.main import main
    from mixer.formats.run import load_run
    from mixer.formats.synthetic import write_skewed_corpus

    rng = np.random.default_rng(1)
    corpus = tmp_path / "c"
    write_skewed_corpus(corpus, {"code": rng.integers(40, 200, 80), "news": rng.integers(40, 200, 80)},
                        {"code": [100] * 6, "news": [100] * 6}, vocab_size=256)
    built = CliRunner().invoke(main, ["build-shards", "--corpus", str(corpus), "--weight", "code=0.4", "--weight",
                                      "news=0.6", "--tokens", "8k", "--seq-len", "64", "--shard-tokens", "2k",
                                      "--quiet", "--out", str(tmp_path / "shards")])
    assert built.exit_code == 0, built.output
    upload_folder(tmp_path / "shards", BUCKET, "train")
    url = f"s3://{BUCKET}/train"
    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "cache"))
    common = ["train", "--model", "gpt2", "--preset", "tiny", "--eval-seqs", "4", "--quiet", "--steps", "4"]
    a = CliRunner().invoke(main, [*common, "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "a")])
    assert a.exit_code == 0, a.output
    b = CliRunner().invoke(main, [*common, "--shards", url, "--corpus", str(corpus), "--out", str(tmp_path / "b")])
    assert b.exit_code == 0, b.output
    ra, rb = load_run(tmp_path / "a" / "run.json"), load_run(tmp_path / "b" / "run.json")
    assert ra.tokens_per_domain == rb.tokens_per_domain and ra.final_loss == pytest.approx(rb.final_loss, rel=1e-6)
    assert list((tmp_path / "cache" / "shards").iterdir())  # read through the cache
    # the corpus itself on the bucket: sampled from its cached copy, the same sequences as the shards
    c = client()
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            c.put_object(Bucket=BUCKET, Key=f"train-corpus/{p.relative_to(corpus).as_posix()}", Body=p.read_bytes())
    sampled = CliRunner().invoke(main, [*common, "--corpus", f"s3://{BUCKET}/train-corpus", "--weight", "code=0.4",
                                        "--weight", "news=0.6", "--tokens", "8k", "--seq-len", "64",
                                        "--out", str(tmp_path / "s")])
    assert sampled.exit_code == 0, sampled.output
    rs = load_run(tmp_path / "s" / "run.json")
    assert rs.tokens_per_domain == ra.tokens_per_domain and rs.final_loss == pytest.approx(ra.final_loss, rel=1e-6)
    no_corpus = CliRunner().invoke(main, [*common, "--shards", url, "--out", str(tmp_path / "c2")])
    assert no_corpus.exit_code == 2
    assert f"--shards {url}: shards on object storage record no corpus path; pass --corpus DIR" in no_corpus.output


def test_kill_during_upload_leaves_nothing_complete_and_the_rerun_finishes(corpus, endpoint, tmp_path):
    """kill -9 part-way through the upload: shard objects but no index.json (reads as unfinished);
    the rerun on this host takes over the dead writer's lock object and publishes the build."""
    import signal
    import subprocess
    import sys
    import time

    from s3_server import objects

    url = f"s3://{BUCKET}/killed"
    many = [a if a != str(40 * SEQ_LEN) else str(SEQ_LEN) for a in BUILD]  # 150 shards: 300 objects to upload
    code = "import sys; from mixer.cli.main import main; sys.exit(main())"
    args = [sys.executable, "-c", code, "build-shards", "--corpus", str(corpus), *many, "--out", url]
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = client()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        keys = [o["Key"] for o in c.list_objects_v2(Bucket=BUCKET, Prefix="killed/").get("Contents", [])]
        if any(k.endswith(".zst") for k in keys):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = objects(BUCKET, "killed")
    assert ".mixer.lock" in left and any(k.endswith(".zst") for k in left) and "index.json" not in left
    with pytest.raises(MixerError, match="no index.json: not a shards folder, or its build has not finished"):
        MixtureStream(ShardCache(url, tmp_path / "cache"))
    rerun = build_cli(corpus, url, "--shard-tokens", str(SEQ_LEN))
    assert rerun.exit_code == 0, rerun.output
    local = build_cli(corpus, str(tmp_path / "local"), "--shard-tokens", str(SEQ_LEN))
    assert local.exit_code == 0, local.output
    done = objects(BUCKET, "killed")
    assert sorted(done) == sorted(p.name for p in (tmp_path / "local").iterdir())
    assert all(done[p.name] == p.read_bytes() for p in (tmp_path / "local").glob("*.zst"))


def test_server_gone_mid_stream_is_one_error_never_a_skipped_shard(shards, endpoint, tmp_path):
    """The store stops answering after index.json was read (shard 0 already cached): the stream
    yields shard 0 and then ends in one error naming shard 1's URL after retries; none skipped.
    A second server of its own, reached through `storage_options` (the endpoint fixture's
    credentials)."""
    import shutil

    import boto3
    from moto.server import ThreadedMotoServer
    from s3_server import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    gone = f"http://127.0.0.1:{port}"
    try:
        c = boto3.client("s3", endpoint_url=gone)
        c.create_bucket(Bucket="gone")
        for p in shards.iterdir():
            c.put_object(Bucket="gone", Key=f"shards/{p.name}", Body=p.read_bytes())
        stream = MixtureStream(ShardCache("s3://gone/shards", tmp_path / "cache",
                                          storage_options={"client_kwargs": {"endpoint_url": gone}}))
    finally:
        server.stop()
    folder = stream.source.cache.folder
    for name in ("shard-00000.zst", "shard-00000.domains.zst"):
        shutil.copy(shards / name, folder / name)
    got = []
    with pytest.raises(MixerError, match=r"^s3://gone/shards/shard-00001\.zst: download failed after 3 attempts"):
        for item in stream:
            got.append(item["input_ids"].numpy())
    assert len(got) == 40 and np.array_equal(np.stack(got), local_rows(shards)[:40])


def test_corpus_on_s3_is_downloaded_once_and_builds_the_same_shards(corpus, endpoint, tmp_path, monkeypatch):
    """`build-shards --corpus s3://...`: the corpus is fetched once into $MIXER_CACHE/corpora and
    the shards equal those built from the local corpus; a second build reads only corpus.json."""
    from s3_server import objects

    c = client()
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            c.put_object(Bucket=BUCKET, Key=f"corpus/{p.relative_to(corpus).as_posix()}", Body=p.read_bytes())
    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "cache"))
    local = build_cli(corpus, str(tmp_path / "local"))
    assert local.exit_code == 0, local.output
    remote = build_cli(f"s3://{BUCKET}/corpus", str(tmp_path / "from-s3"))
    assert remote.exit_code == 0, remote.output
    for p in (tmp_path / "local").glob("*.zst"):
        assert (tmp_path / "from-s3" / p.name).read_bytes() == p.read_bytes()
    (copy,) = (tmp_path / "cache" / "corpora").iterdir()
    assert sorted(p.relative_to(copy) for p in copy.rglob("*") if p.is_file()) == \
        sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    # the corpus's parts deleted from the bucket: a second build needs only corpus.json (the cached copy)
    for key in objects(BUCKET, "corpus"):
        if key != "corpus.json":
            c.delete_object(Bucket=BUCKET, Key=f"corpus/{key}")
    again = build_cli(f"s3://{BUCKET}/corpus", str(tmp_path / "again"))
    assert again.exit_code == 0, again.output
    missing = build_cli(f"s3://{BUCKET}/no-corpus", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "s3://mixer-test/no-corpus/corpus.json: not found" in missing.output


def test_prepare_from_s3_jsonl_and_parquet_sources_equals_prepare_from_local_files(endpoint, tmp_path, monkeypatch):
    """`prepare --source web=s3://.../web.jsonl --source code=s3://.../code/` (a prefix of Parquet
    files): fetched once into $MIXER_CACHE/sources, the corpus is byte-identical to the one
    prepared from the same files on disk."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from mixer.cli.main import main

    text = ("The committee met on Tuesday to discuss the budget for the coming year, and after a long debate "
            "the members agreed that the library should receive more money for new books. ") * 8
    raw = tmp_path / "raw"
    (raw / "code").mkdir(parents=True)
    (raw / "web.jsonl").write_text("".join(json.dumps({"text": f"Report {i}. {text}"}) + "\n" for i in range(30)))
    for part in range(2):
        pq.write_table(pa.table({"text": [f"def f{part}_{i}(x):\n    return x * {i}\n" * 60 for i in range(15)]}),
                       raw / "code" / f"part-{part}.parquet")
    c = client()
    for p in sorted(raw.rglob("*")):
        if p.is_file():
            c.put_object(Bucket=BUCKET, Key=f"raw/{p.relative_to(raw).as_posix()}", Body=p.read_bytes())
    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "cache"))
    common = ["prepare", "--kind", "code=code", "--heldout-docs", "3", "--quiet"]
    local = CliRunner().invoke(main, [*common, "--source", f"web={raw / 'web.jsonl'}", "--source",
                                      f"code={raw / 'code'}", "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    remote = CliRunner().invoke(main, [*common, "--source", f"web=s3://{BUCKET}/raw/web.jsonl", "--source",
                                       f"code=s3://{BUCKET}/raw/code", "--out", str(tmp_path / "remote")])
    assert remote.exit_code == 0, remote.output
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "remote") for p in (tmp_path / "remote").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "local" / f).read_bytes() == (tmp_path / "remote" / f).read_bytes(), f
    assert len(list((tmp_path / "cache" / "sources").iterdir())) == 2
    missing = CliRunner().invoke(main, ["prepare", "--quiet", "--source", f"web=s3://{BUCKET}/raw/nothing.jsonl",
                                        "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and f"s3://{BUCKET}/raw/nothing.jsonl: source of domain 'web'" in missing.output
    assert not (tmp_path / "x").exists()


def test_a_full_cache_disk_is_one_clear_error_and_nothing_half_cached(shards, url, tmp_path):
    """The cache's disk fills up (a file-size limit in a child process stands in for a small
    tmpfs: writes past it fail with EFBIG): one `MixerError` naming the cache, and no file in the
    cache that a later reader would take for a shard."""
    import subprocess
    import sys

    cache = tmp_path / "cache"
    limit = (shards / "shard-00000.zst").stat().st_size // 2  # not even one shard fits
    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from mixer import MixtureStream
from mixer.core.errors import MixerError
from mixer.stream.shard_cache import ShardCache
stream = MixtureStream(ShardCache({url!r}, {str(cache)!r}))
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
try:
    next(iter(stream))
except MixerError as exc:
    print(exc)
    sys.exit(2)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert r.returncode == 2, r.stderr
    assert "cannot write to the shard cache" in r.stdout and "free space or choose another cache_dir" in r.stdout
    (folder,) = cache.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["index.json"]  # no partial shard, no temporary left


def test_fetch_prefetches_the_next_shards_of_the_read_order(url, tmp_path):
    import time

    cache = ShardCache(url, tmp_path / "cache", prefetch=2)
    cache.read_order([3, 1, 0, 2])  # this process's order (a rank's or worker's share)
    assert cache.fetch(3).read_bytes()  # shard 3 is local when fetch returns ...
    names = [cache.index.shards[u].file for u in (1, 0, 2)]
    deadline = time.monotonic() + 30
    while not all((cache.folder / n).exists() for n in names[:2]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (cache.folder / names[0]).exists() and (cache.folder / names[1]).exists()  # ... 1 and 0 follow it
    time.sleep(0.2)
    assert not (cache.folder / names[2]).exists()  # 2 is three ahead: not yet


def test_verify_a_url_reads_every_object(shards, corpus, url, endpoint, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mixer.cli.main import main

    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "cache"))
    ok = CliRunner().invoke(main, ["verify", url])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"verified shards {url}: ") and "150" in ok.output
    c = client()
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            c.put_object(Bucket=BUCKET, Key=f"vcorpus/{p.relative_to(corpus).as_posix()}", Body=p.read_bytes())
    assert CliRunner().invoke(main, ["verify", f"s3://{BUCKET}/vcorpus"]).exit_code == 0
    data = bytearray((shards / "shard-00001.domains.zst").read_bytes())
    data[len(data) // 2] ^= 0x40
    upload_folder(shards, BUCKET, "vbad")
    c.put_object(Bucket=BUCKET, Key="vbad/shard-00001.domains.zst", Body=bytes(data))
    bad = CliRunner().invoke(main, ["verify", f"s3://{BUCKET}/vbad"])
    assert bad.exit_code == 2
    assert "s3://mixer-test/vbad/shard-00001.domains.zst: checksum mismatch on download" in bad.output



def test_mixture_sampler_from_an_s3_corpus_equals_the_local_one(corpus, endpoint, tmp_path, monkeypatch):
    """`MixtureSampler("s3://...")`: the corpus downloaded once into the cache, then the same
    sequences as the same corpus on disk."""
    from mixer import MixtureSampler
    from mixer.formats.corpus_handle import Corpus

    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "cache"))
    c = client()
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            c.put_object(Bucket=BUCKET, Key=f"sampler-corpus/{p.relative_to(corpus).as_posix()}", Body=p.read_bytes())
    names = Corpus.open(corpus).manifest.domain_names
    weights = {d: 1 / len(names) for d in names}
    kw = {"tokens": 60 * SEQ_LEN, "seq_len": SEQ_LEN, "seed": 3, "batch_size": B}
    local = rows(MixtureSampler(corpus, weights, **kw))
    remote = rows(MixtureSampler(f"s3://{BUCKET}/sampler-corpus", weights, **kw))
    assert local.size == 60 * SEQ_LEN
    np.testing.assert_array_equal(local, remote)
