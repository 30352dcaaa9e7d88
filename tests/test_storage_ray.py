"""`--ray` with URLs, on a real local Ray cluster (2 CPUs) and a real S3-protocol server (moto):
the workers open the corpus URL themselves, into a cache of their own (`MIXER_CACHE` of the
workers differs from the driver's, as on another node: nothing shared but the bucket), and the
driver uploads what they return; no `--shared-fs`. Slow: Ray starts slowly on 2 cores."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from s3_server import ENV, client, objects, s3_server
from test_stream import SEQ_LEN, make_corpus

from mixer.cli.main import main

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

BUCKET = "mixer-ray"
BUILD = ["--weight", "code=0.2", "--weight", "news=0.5", "--weight", "web=0.3", "--tokens", "4800",
         "--seq-len", str(SEQ_LEN), "--data-seed", "11", "--shard-tokens", str(20 * SEQ_LEN), "--quiet"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The S3 server, then a Ray cluster whose workers see it and have their own cache."""
    workers_cache = tmp_path_factory.mktemp("worker-cache")
    with s3_server() as endpoint:
        client().create_bucket(Bucket=BUCKET)
        env = {**ENV, "AWS_ENDPOINT_URL": endpoint, "MIXER_CACHE": str(workers_cache),
               "PYTHONPATH": str(Path(__file__).parents[1])}
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": env})
        try:
            yield workers_cache
        finally:
            ray.shutdown()


@pytest.fixture(autouse=True)
def driver_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "driver-cache"))
    return tmp_path / "driver-cache"


def upload_tree(folder: Path, prefix: str) -> str:
    c = client()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            c.put_object(Bucket=BUCKET, Key=f"{prefix}/{p.relative_to(folder).as_posix()}", Body=p.read_bytes())
    return f"s3://{BUCKET}/{prefix}"


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_build_shards_on_ray_from_and_to_s3_without_a_shared_folder(cluster, tmp_path, driver_cache, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus")
    url = upload_tree(corpus, "corpus")
    local = cli("build-shards", "--corpus", corpus, *BUILD, "--out", tmp_path / "local")
    assert local.exit_code == 0, local.output
    out = f"s3://{BUCKET}/shards"
    # interrupted after 3 of 8 shard tasks: nothing on the URL reads as complete
    monkeypatch.setenv("MIXER_STOP_AFTER_TASKS", "3")
    stopped = cli("build-shards", "--corpus", url, *BUILD, "--out", out, "--ray", "local")
    assert stopped.exit_code != 0 and "index.json" not in objects(BUCKET, "shards")
    (work,) = [p for p in (driver_cache / "uploads").iterdir()]
    assert len(list((work / ".out.work").glob("*.task"))) == 3  # the finished tasks, kept for the rerun
    monkeypatch.delenv("MIXER_STOP_AFTER_TASKS")
    r = cli("build-shards", "--corpus", url, *BUILD, "--out", out, "--ray", "local")
    assert r.exit_code == 0, r.output
    got, want = objects(BUCKET, "shards"), files_of(tmp_path / "local")
    assert sorted(got) == sorted(want) and len(got) == 17  # 8 shards, 8 sidecars, index.json
    assert all(got[k] == v for k, v in want.items() if k != "index.json")
    assert not (driver_cache / "uploads").exists() or not any((driver_cache / "uploads").iterdir())
    # the workers read the corpus from the URL into their own cache, not from the driver's copy
    (copy,) = (cluster / "corpora").iterdir()
    assert files_of(copy) == files_of(corpus)
    shared = cli("build-shards", "--corpus", url, *BUILD, "--out", f"s3://{BUCKET}/x", "--ray", "local", "--shared-fs")
    assert shared.exit_code == 2 and "--shared-fs does not apply to an output on object storage" in shared.output


def test_loop_on_ray_with_the_corpus_on_s3_gives_the_sequential_weights(cluster, tmp_path):
    from mixer.formats.synthetic import random_skewed_corpus

    corpus = random_skewed_corpus(tmp_path / "lc", ("a", "b", "c"), 150, 12)
    url = upload_tree(corpus, "loop-corpus")
    args = ["--tokens", "8192", "--factors", "2,0.5", "--eval-seqs", "8", "--bootstrap", "0", "--quiet"]
    seq = cli("loop", "ddo", "--corpus", corpus, "--out", tmp_path / "seq", *args)
    assert seq.exit_code == 0, seq.output
    r = cli("loop", "ddo", "--corpus", url, "--out", f"s3://{BUCKET}/loop", "--ray", "local", *args)
    assert r.exit_code == 0, r.output
    got = objects(BUCKET, "loop")
    assert json.loads(got["weights.json"])["weights"] == json.loads((tmp_path / "seq" / "weights.json").read_text())[
        "weights"]
    assert sorted(got) == sorted(files_of(tmp_path / "seq"))
    assert (cluster / "corpora").is_dir() and os.listdir(cluster / "corpora")


def test_prepare_on_ray_into_s3_equals_the_one_machine_corpus(cluster, tmp_path):
    from test_storage_publish import raw_sources

    src = raw_sources(tmp_path)
    one = cli("prepare", *src, "--out", tmp_path / "one")
    assert one.exit_code == 0, one.output
    url = f"s3://{BUCKET}/ray-corpus"
    r = cli("prepare", *src, "--out", url, "--ray", "local", "--task-mb", "0.001")
    assert r.exit_code == 0, r.output
    assert objects(BUCKET, "ray-corpus") == files_of(tmp_path / "one")
