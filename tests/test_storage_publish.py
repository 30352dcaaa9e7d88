"""Outputs written to object storage, against a real S3-protocol server (moto in server mode,
bytes over HTTP): `prepare --out s3://` gives the local run's files, `corpus.json` last; `mixer
inspect` / `export-shards` read a URL; an interrupted upload leaves nothing that reads as complete
and the same command finishes it, uploading only what is missing; a stale lock names its holder;
the store answering 503 or dropping connections part-way ends in retries or one error naming the
URL; a full local disk under the staging folder is one error and nothing complete on the URL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from s3_server import FaultProxy, client, endpoint_at, objects, s3_server, upload_folder
from test_stream import SEQ_LEN, make_corpus, make_shards, rows
from torch.utils.data import DataLoader

from mixer import MixtureStream
from mixer.cli.main import main

BUCKET = "mixer-publish"
ROOT = Path(__file__).parents[1]
BUILD = ["--weight", "code=0.2", "--weight", "news=0.5", "--weight", "web=0.3", "--tokens", "4800",
         "--seq-len", str(SEQ_LEN), "--data-seed", "11", "--shard-tokens", str(40 * SEQ_LEN), "--quiet"]


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        client().create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "mixer-cache"))
    return tmp_path / "mixer-cache"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("pub") / "corpus")


@pytest.fixture(scope="module")
def shards(corpus: Path) -> Path:
    return make_shards(corpus, corpus.parent / "shards")  # 150 sequences in 4 shards of 40


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def build(corpus, out, *extra):
    return cli("build-shards", "--corpus", corpus, *BUILD, "--out", out, *extra)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(r, *parts: str) -> str:
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


# --- prepare --out URL ------------------------------------------------------------------------------

def raw_sources(tmp_path: Path) -> list[str]:
    text = ("The committee met on Tuesday to discuss the budget for the coming year, and after a long debate "
            "the members agreed that the library should receive more money for new books. ") * 8
    raw = tmp_path / "raw"
    (raw / "code").mkdir(parents=True)
    (raw / "web.jsonl").write_text("".join(json.dumps({"text": f"Report {i}. {text}"}) + "\n" for i in range(30)))
    for i in range(12):
        (raw / "code" / f"f{i}.py").write_text(f"def f{i}(x):\n    return x * {i}\n" * 60)
    return ["--source", f"web={raw / 'web.jsonl'}", "--source", f"code={raw / 'code'}", "--kind", "code=code",
            "--heldout-docs", "3", "--quiet"]


def test_prepare_out_url_uploads_the_local_corpus_manifest_last(endpoint, tmp_path, cache):
    src = raw_sources(tmp_path)
    local = cli("prepare", *src, "--out", tmp_path / "local")
    assert local.exit_code == 0, local.output
    url = f"s3://{BUCKET}/corpus"
    r = cli("prepare", *src, "--out", url)
    assert r.exit_code == 0, r.output
    assert f"wrote {url}" in r.output and not (Path.cwd() / "s3:").exists()
    want = files_of(tmp_path / "local")
    assert objects(BUCKET, "corpus") == want  # byte for byte; no lock, no .mixer.partial left
    assert not (cache / "uploads").exists() or not any((cache / "uploads").iterdir())  # staging removed
    # the corpus on the bucket is a corpus: shards built from it equal the shards of the local one
    mix = ["--weight", "code=0.5", "--weight", "web=0.5", "--tokens", "2k", "--seq-len", "64", "--quiet"]
    a = cli("build-shards", "--corpus", tmp_path / "local", *mix, "--out", tmp_path / "sa")
    b = cli("build-shards", "--corpus", url, *mix, "--out", tmp_path / "sb")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert {k: v for k, v in files_of(tmp_path / "sa").items() if k.endswith(".zst")} == \
        {k: v for k, v in files_of(tmp_path / "sb").items() if k.endswith(".zst")}
    # written once: refused again, replaced with --overwrite
    one_error(cli("prepare", *src, "--out", url), url, "output already exists (it has a corpus.json)", "--overwrite")
    assert cli("prepare", *src, "--out", url, "--overwrite").exit_code == 0
    assert objects(BUCKET, "corpus") == want


def test_prepare_whose_manifest_upload_fails_leaves_no_corpus_and_the_rerun_finishes(endpoint, tmp_path, monkeypatch):
    """The store refuses every PUT of corpus.json: every part is on the URL, corpus.json is not,
    so the URL does not open as a corpus; the store back, the same command publishes it."""
    monkeypatch.setattr("mixer.core.urls.RETRY_WAIT_S", 0.01)  # the retries still happen, without the waits
    src = raw_sources(tmp_path)
    url = f"s3://{BUCKET}/corpus-down"
    with FaultProxy(endpoint) as proxy, endpoint_at(proxy.url):
        proxy.fault = lambda method, path: "503" if method == "PUT" and "corpus.json" in path else None
        one_error(cli("prepare", *src, "--out", url), f"{url}/corpus.json: upload failed after 3 attempts",
                  "nothing reads as complete (no corpus.json)")
    left = objects(BUCKET, "corpus-down")
    assert "corpus.json" not in left and ".mixer.partial" in left and any(k.endswith(".arrow") for k in left)
    one_error(cli("verify", url), f"{url}/corpus.json: not found")
    assert cli("prepare", *src, "--out", url).exit_code == 0
    assert cli("prepare", *src, "--out", tmp_path / "local").exit_code == 0
    assert objects(BUCKET, "corpus-down") == files_of(tmp_path / "local")


def test_objects_that_are_no_mixer_output_are_never_replaced(endpoint, corpus, tmp_path):
    client().put_object(Bucket=BUCKET, Key="mine/notes.txt", Body=b"keep me")
    for extra in ((), ("--overwrite",)):
        one_error(build(corpus, f"s3://{BUCKET}/mine", *extra), f"s3://{BUCKET}/mine: holds 1 objects",
                  "no mixer output")
    assert objects(BUCKET, "mine") == {"notes.txt": b"keep me"}


# --- reading a URL: inspect, export-shards -----------------------------------------------------------

def test_inspect_and_export_shards_of_a_url_equal_those_of_the_folder(endpoint, shards, corpus, tmp_path):
    url = f"s3://{BUCKET}/ro-shards"
    upload_folder(shards, BUCKET, "ro-shards")
    r = cli("inspect", url)
    assert r.exit_code == 0, r.output
    assert "verified 4 shards and their domain sidecars" in r.output and f"{url}: read through the shard cache" in r.output
    quick = cli("inspect", url, "--no-verify")  # index.json only
    assert quick.exit_code == 0 and "150 sequences" in quick.output and "verified" not in quick.output
    sample = cli("inspect", url, "--sample", "2", "--corpus", corpus)  # the corpus matched; it has no tokenizer
    assert "corpus.json: this corpus records no tokenizer" in sample.output, sample.output
    one_error(cli("inspect", url, "--sample", "2"), url, "record no corpus path; pass --corpus")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = cli("export-shards", shards, "--format", "megatron", "--out", tmp_path / "a" / "mix")
    b = cli("export-shards", url, "--corpus", corpus, "--format", "megatron", "--out", tmp_path / "b" / "mix")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b") and len(files_of(tmp_path / "a")) == 2
    one_error(cli("export-shards", url, "--format", "megatron", "--out", tmp_path / "c"), url, "pass --corpus")
    one_error(cli("inspect", f"s3://{BUCKET}/nothing-here"), "no index.json")


# --- interrupted uploads, locks ----------------------------------------------------------------------

def build_args(corpus: Path, url: str) -> list[str]:
    many = [a if a != str(40 * SEQ_LEN) else str(SEQ_LEN) for a in BUILD]  # 150 shards: 300 objects
    return ["build-shards", "--corpus", str(corpus), *many, "--out", url]


def test_killed_upload_resumes_uploading_only_what_is_missing(endpoint, corpus, tmp_path, cache):
    """kill -9 part-way through the upload: no index.json, a `.mixer.partial` object; the same
    command again skips the objects already uploaded (its journal) and ends byte-identical to
    a local build, nothing else on the URL."""
    url = f"s3://{BUCKET}/resumed"
    code = "import sys; from mixer.cli.main import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, *build_args(corpus, url)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    c = client()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        keys = [o["Key"] for o in c.list_objects_v2(Bucket=BUCKET, Prefix="resumed/").get("Contents", [])]
        if sum(k.endswith(".zst") for k in keys) >= 40:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = objects(BUCKET, "resumed")
    uploaded = sum(k.endswith(".zst") for k in left)
    assert "index.json" not in left and ".mixer.partial" in left and ".mixer.lock" in left and uploaded >= 40
    with FaultProxy(endpoint) as proxy, endpoint_at(proxy.url):
        rerun = cli(*build_args(corpus, url))
    assert rerun.exit_code == 0, rerun.output
    puts = [p for m, p in proxy.requests if m == "PUT" and p.split("?")[0].endswith(".zst")]
    assert len(puts) <= 300 - uploaded + 2  # the rest (and at most the one or two cut by the kill)
    local = cli(*build_args(corpus, str(tmp_path / "local")))
    assert local.exit_code == 0, local.output
    done = objects(BUCKET, "resumed")
    want = files_of(tmp_path / "local")
    assert sorted(done) == sorted(want)  # no lock, no .mixer.partial, nothing else
    assert all(done[k] == v for k, v in want.items() if k != "index.json")


def test_a_stale_lock_of_another_host_names_its_holder_and_the_fix(endpoint, corpus):
    url = f"s3://{BUCKET}/stale"
    holder = {"pid": 4242, "host": "worker-7", "since": "2026-01-02T03:04:05Z"}
    client().put_object(Bucket=BUCKET, Key="stale/.mixer.lock", Body=json.dumps(holder).encode())
    one_error(build(corpus, url), f"{url}: another mixer process is writing it (pid 4242 on worker-7 since "
              "2026-01-02T03:04:05Z)", f"delete {url}/.mixer.lock", f"aws s3 rm {url}/.mixer.lock")
    client().delete_object(Bucket=BUCKET, Key="stale/.mixer.lock")
    assert build(corpus, url).exit_code == 0
    assert "index.json" in objects(BUCKET, "stale")


# --- faults: 503, dropped connections, a full disk ----------------------------------------------------

def test_uploads_ride_out_503s_and_dropped_connections(endpoint, corpus, tmp_path):
    """Every shard PUT fails once (alternately 503 SlowDown and a dropped connection): retried,
    and the output equals the local build."""
    seen: set[str] = set()

    def once(method, path):
        key = path.split("?")[0]
        if method == "PUT" and key.endswith(".zst") and key not in seen:
            seen.add(key)
            return "503" if len(seen) % 2 else "drop"
        return None

    url = f"s3://{BUCKET}/flaky"
    with FaultProxy(endpoint) as proxy, endpoint_at(proxy.url):
        proxy.fault = once
        r = build(corpus, url)
    assert r.exit_code == 0, r.output
    assert len(proxy.faults) == 8 and {f[2] for f in proxy.faults} == {"503", "drop"}
    local = build(corpus, tmp_path / "local")
    assert local.exit_code == 0
    got, want = objects(BUCKET, "flaky"), files_of(tmp_path / "local")
    assert sorted(got) == sorted(want) and all(got[k] == v for k, v in want.items() if k != "index.json")


def test_a_store_failing_part_way_is_one_error_and_the_rerun_finishes(endpoint, corpus, tmp_path, monkeypatch):
    """After 3 shard objects every PUT answers 503: one error naming the object's URL, exit 2,
    no index.json; the store back, the same command finishes the output."""
    monkeypatch.setattr("mixer.core.urls.RETRY_WAIT_S", 0.01)  # the retries still happen, without the waits
    url = f"s3://{BUCKET}/down"
    puts: list[str] = []

    def down(method, path):
        if method == "PUT" and ".mixer" not in path:
            puts.append(path)
            return "503" if len(puts) > 3 else None
        return None

    with FaultProxy(endpoint) as proxy, endpoint_at(proxy.url):
        proxy.fault = down
        line = one_error(build(corpus, url), "upload failed after 3 attempts", "nothing reads as complete",
                         "run the same command again")
    assert line.startswith(f"error: {url}/shard-0000")
    left = objects(BUCKET, "down")
    assert "index.json" not in left and ".mixer.partial" in left and ".mixer.lock" not in left
    assert build(corpus, url).exit_code == 0
    assert build(corpus, tmp_path / "local").exit_code == 0
    got, want = objects(BUCKET, "down"), files_of(tmp_path / "local")
    assert sorted(got) == sorted(want) and all(got[k] == v for k, v in want.items() if k != "index.json")


def test_a_stream_reading_through_dropped_connections_misses_no_shard(endpoint, shards, tmp_path):
    """Every shard GET fails once (a dropped connection or a 503): the stream from the URL is
    still the stream from disk, sequence for sequence."""
    from mixer.stream.shard_cache import ShardCache

    upload_folder(shards, BUCKET, "rd")
    seen: set[str] = set()

    def once(method, path):
        key = path.split("?")[0]
        if method == "GET" and key.endswith(".zst") and key not in seen:
            seen.add(key)
            return "drop" if len(seen) % 2 else "503"
        return None

    want = rows(DataLoader(MixtureStream(shards, batch_size=4), batch_size=4))
    with FaultProxy(endpoint) as proxy, endpoint_at(proxy.url):
        proxy.fault = once
        got = rows(DataLoader(MixtureStream(ShardCache(f"s3://{BUCKET}/rd", tmp_path / "c"), batch_size=4),
                              batch_size=4))
    assert len(proxy.faults) == 8 and np.array_equal(got, want) and len(got) == 150


def test_a_full_disk_under_the_staging_folder_is_one_error_and_nothing_complete(endpoint, corpus, tmp_path):
    """The local build before the upload cannot write (a file-size limit in a child process
    stands in for a full tmpfs: writes past it fail with EFBIG): exit 2, one line naming the URL
    and where to free space, and nothing on the URL."""
    url = f"s3://{BUCKET}/full"
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000)); "
            "from mixer.cli.main import main; sys.exit(main())")
    r = subprocess.run([sys.executable, "-c", code, "build-shards", "--corpus", str(corpus), *BUILD, "--out", url],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {url}: the local build before the upload failed"), r.stderr
    assert "free space there (or point MIXER_CACHE at a larger disk)" in err[0]
    assert objects(BUCKET, "full") == {}


# --- the loop: --corpus URL, --out URL ----------------------------------------------------------------

@pytest.mark.slow  # two sweeps of 7 tiny runs: ~40 s on 2 cores
def test_loop_with_corpus_and_out_on_s3_gives_the_local_weights(endpoint, tmp_path, monkeypatch):
    """`mixer loop ddo --corpus s3://... --out s3://...`: the corpus fetched once, the sweep run in
    a staging folder and uploaded with weights.json last; interrupted after 3 runs, nothing on the
    URL and the rerun trains only the other 4; the weights are the local sweep's and the objects
    are the local output's files."""
    import mixer.loop.sweep
    from mixer.formats.synthetic import random_skewed_corpus

    corpus = random_skewed_corpus(tmp_path / "lc", ("a", "b", "c"), 150, 12)
    c = client()
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            c.put_object(Bucket=BUCKET, Key=f"lc/{p.relative_to(corpus).as_posix()}", Body=p.read_bytes())
    args = ["--tokens", "8192", "--factors", "2,0.5", "--eval-seqs", "8", "--bootstrap", "0", "--quiet"]
    local = cli("loop", "ddo", "--corpus", corpus, "--out", tmp_path / "local", *args)
    assert local.exit_code == 0, local.output
    url = f"s3://{BUCKET}/loop"
    real, calls = mixer.loop.sweep.execute, []

    def stop_after_three(spec, **kw):
        calls.append(spec.name)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(spec, **kw)

    monkeypatch.setattr(mixer.loop.sweep, "execute", stop_after_three)
    stopped = cli("loop", "ddo", "--corpus", f"s3://{BUCKET}/lc", "--out", url, *args)
    assert stopped.exit_code != 0 and objects(BUCKET, "loop") == {}  # not even the finished runs: no upload began
    monkeypatch.setattr(mixer.loop.sweep, "execute", real)
    r = cli("loop", "ddo", "--corpus", f"s3://{BUCKET}/lc", "--out", url, *args)
    assert r.exit_code == 0, r.output
    assert "7 runs, 4 trained now, 3 from the cache" in r.output
    assert f"wrote {url}/weights.json" in r.output and f"config: {url}/loop.toml" in r.output
    got, want = objects(BUCKET, "loop"), files_of(tmp_path / "local")
    assert sorted(got) == sorted(want) and sum(k.endswith("run.json") for k in got) == 7
    assert json.loads(got["weights.json"])["weights"] == json.loads(want["weights.json"])["weights"]
    toml = got["loop.toml"].decode()
    assert f'out = "{url}"' in toml and f'corpus = "s3://{BUCKET}/lc"' in toml, toml
