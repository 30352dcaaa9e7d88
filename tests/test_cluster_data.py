"""`mixer prepare --ray` and `mixer build-shards --ray` on a real local Ray cluster (2 CPUs).

One cluster serves the whole module (Ray starts slowly on 2 cores); the commands join it (`--ray
local` inside a connected process reuses the connection). Each test compares bytes with the
single-process run of the same inputs and seed, and the resume tests kill a run after a known
number of committed tasks (MIXER_STOP_AFTER_TASKS) and check that the rerun redoes only the rest.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.core.cluster import STOP_ENV, ClusterConfig
from mixer.core.errors import MixerError
from mixer.prepare.config import DomainSource, PrepareConfig
from mixer.prepare.pipeline import prepare_corpus
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from test_prepare import FRENCH, english, write_docs

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def folder_bytes(path: Path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, tuple[DomainSource, ...]]:
    """Four domains whose tasks disagree on nothing only if the driver decides order-dependent
    rules: duplicates across files (and so across tasks), a binary file, short documents,
    English-only filtering, random-block cutting, and JSONL files of several documents."""
    d = tmp_path_factory.mktemp("raw")
    web = write_docs(d / "web", [english(1100 + 37 * (i % 25), i % 25) for i in range(40)] + ["short"])
    (web / "zz-binary.dat").write_bytes(b"\0\1\2binary")
    code = write_docs(d / "code", ["x = 1\n" * (200 + i) for i in range(20)])
    enc = write_docs(d / "enc", [english(2000, i) if i % 3 else (FRENCH * 20)[: 2000 + i] for i in range(15)])
    (d / "news").mkdir()
    for f in "ab":
        rows = [json.dumps({"text": english(1500, i % (4 if f == "a" else 6))}) for i in range(10)]
        (d / "news" / f"{f}.jsonl").write_text("\n".join(rows) + "\n")
    return d, (DomainSource("web", web), DomainSource("code", code, kind="code"),
               DomainSource("enc", enc, kind="encyclopedia"), DomainSource("news", d / "news"))


SMALL_TASKS = 5_000  # bytes per prepare task: 30-odd tasks over the raw fixture


def base_config(sources, out: Path, **kw) -> PrepareConfig:
    return PrepareConfig(sources=sources, out=out, heldout_docs=2, seed=3, batch_docs=8, progress=False, **kw)


def test_prepare_on_ray_is_byte_identical_and_leaves_no_cache(cluster, raw, tmp_path):
    _, sources = raw
    one = prepare_corpus(base_config(sources, tmp_path / "one"))
    res = prepare_corpus(base_config(sources, tmp_path / "ray"), ClusterConfig(task_bytes=SMALL_TASKS))
    assert res.tasks >= 20 and len(res.ran) == res.tasks and not res.reused
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "ray")
    assert [(r.seen, r.kept, r.dropped, r.skipped_binary) for r in res.reports] == \
           [(r.seen, r.kept, r.dropped, r.skipped_binary) for r in one.reports]
    assert res.reports[0].dropped["duplicate"] > 0 and res.reports[2].dropped["non_english"] == 5
    assert res.source_bytes == one.source_bytes and res.chars == one.chars
    assert leftovers(tmp_path, "ray") == []  # cache and lock gone
    # --max-docs is decided by the driver, in source order, across tasks
    prepare_corpus(base_config(sources, tmp_path / "one13", max_docs=13))
    prepare_corpus(base_config(sources, tmp_path / "ray13", max_docs=13), ClusterConfig(task_bytes=SMALL_TASKS))
    assert folder_bytes(tmp_path / "one13") == folder_bytes(tmp_path / "ray13")


def test_prepare_on_ray_trains_the_same_tokenizer(cluster, raw, tmp_path):
    """--tokenizer train: a first pass of tasks returns the cut texts, the driver trains on the
    training split in the single-machine order, a second pass tokenizes."""
    _, sources = raw
    prepare_corpus(base_config(sources, tmp_path / "one", tokenizer="train", vocab_size=400))
    res = prepare_corpus(base_config(sources, tmp_path / "ray", tokenizer="train", vocab_size=400),
                         ClusterConfig(task_bytes=SMALL_TASKS))
    assert len(res.ran) == 2 * res.tasks and res.manifest.tokenizer.kind == "trained-bpe"
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "ray")


def test_prepare_killed_half_way_reruns_only_unfinished_tasks(cluster, raw, tmp_path, monkeypatch):
    _, sources = raw
    prepare_corpus(base_config(sources, tmp_path / "one"))
    config, cl = base_config(sources, tmp_path / "ray"), ClusterConfig(task_bytes=SMALL_TASKS)
    monkeypatch.setenv(STOP_ENV, "5")
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(config, cl)
    assert not (tmp_path / "ray").exists()  # nothing that looks complete
    work = tmp_path / ".ray.work"
    first = {p.stem for p in work.glob("*.task")}
    assert len(first) == 5 and not [p for p in work.iterdir() if ".tmp-" in p.name]
    monkeypatch.delenv(STOP_ENV)
    res = prepare_corpus(config, cl)
    assert set(res.reused) == first and len(res.ran) == res.tasks - 5 and not set(res.ran) & first
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "ray")
    assert leftovers(tmp_path, "ray") == []
    # a task result damaged on disk is redone, not trusted
    monkeypatch.setenv(STOP_ENV, "2")
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(replace(config, out=tmp_path / "again"), replace(cl, shared_fs=True))
    entry = sorted((tmp_path / ".again.work").glob("*.task"))[0]
    entry.write_bytes(entry.read_bytes()[:-3])
    monkeypatch.delenv(STOP_ENV)
    res = prepare_corpus(replace(config, out=tmp_path / "again"), replace(cl, shared_fs=True))
    assert entry.stem in res.ran and entry.stem not in res.reused
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "again")


def test_bad_input_on_a_worker_is_the_same_one_line_error(cluster, raw, tmp_path):
    d, _ = raw
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jsonl").write_text(json.dumps({"text": english(1500)}) + "\n")
    (bad / "b.jsonl").write_text(json.dumps({"text": english(1500, 1)}) + "\n{not json\n")
    runs = []
    for extra in ([], ["--ray", "local", "--task-mb", "0.001"]):
        r = CliRunner().invoke(main, ["prepare", "--source", f"web={d / 'web'}", "--source", f"bad={bad}",
                                      "--out", str(tmp_path / "c"), "--heldout-docs", "0", "--quiet", *extra])
        assert r.exit_code == 2, r.output
        assert not (tmp_path / "c").exists() and not [n for n in leftovers(tmp_path, "c") if ".tmp-" in n]
        runs.append(r.stderr.strip())
    assert runs[0] == runs[1] and len(runs[0].splitlines()) == 1 and "b.jsonl:2: invalid JSON" in runs[0]
    r = CliRunner().invoke(main, ["prepare", "--source", f"web={d / 'web'}", "--out", str(tmp_path / "d"),
                                  "--tokenizer", str(tmp_path / "missing.json"), "--ray", "local"])
    assert r.exit_code == 2 and "tokenizer file not found" in r.stderr
    assert leftovers(tmp_path, "d") == []  # failed before any task finished: no cache folder either
    r = CliRunner().invoke(main, ["prepare", "--source", f"web={d / 'web'}", "--out", str(tmp_path / "c"),
                                  "--shared-fs"])
    assert r.exit_code == 2 and "only apply with --ray" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_max_docs_decides_whether_a_bad_file_is_reached_as_one_machine_does(cluster, tmp_path):
    """One machine stops reading once --max-docs documents were seen, but it asks the reader for
    one document more first: with 5 good documents before a bad line, --max-docs 4 never reaches
    it and --max-docs 5 does. The tasks read every file; the driver must decide the same."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps({"text": english(1500, i)}) + "\n" for i in range(5)))
    (src / "b.jsonl").write_text("{not json\n")
    sources = (DomainSource("web", src),)
    cl = ClusterConfig(task_bytes=100)  # one task per file
    for max_docs in (4, 5):
        single = base_config(sources, tmp_path / f"one{max_docs}", max_docs=max_docs)
        on_ray = base_config(sources, tmp_path / f"ray{max_docs}", max_docs=max_docs)
        if max_docs == 4:
            prepare_corpus(single)
            assert prepare_corpus(on_ray, cl).tasks == 2
            assert folder_bytes(tmp_path / "one4") == folder_bytes(tmp_path / "ray4")
        else:
            with pytest.raises(MixerError) as one_err:
                prepare_corpus(single)
            with pytest.raises(MixerError) as ray_err:
                prepare_corpus(on_ray, cl)
            assert str(one_err.value) == str(ray_err.value) and "b.jsonl:1: invalid JSON" in str(ray_err.value)
            assert not (tmp_path / "ray5").exists()


def test_json_and_csv_record_files_on_ray_are_the_one_machine_corpus(cluster, tmp_path):
    """`.json` sources (an object, an array, JSON Lines per file) and CSV files cut into tasks by file: the same
    bytes as one machine; and a folder mixing them with text is refused before any task runs."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.json").write_text(json.dumps({"text": english(1500, 0)}))
    (src / "b.json").write_text(json.dumps([{"text": english(1500, i)} for i in (1, 2, 1)]))  # (a duplicate)
    (src / "c.json").write_text("".join(json.dumps({"text": english(1500, i)}) + "\n" for i in (3, 4)))
    table = tmp_path / "table"
    table.mkdir()
    for k in range(2):
        (table / f"{k}.csv").write_text("id,text\n" + "".join(f'{i},"{english(1500, 10 + i)}"\n' for i in range(3 * k, 3 * k + 3)))
    sources = (DomainSource("docs", src), DomainSource("table", table))
    res = prepare_corpus(base_config(sources, tmp_path / "ray"), ClusterConfig(task_bytes=100))
    prepare_corpus(base_config(sources, tmp_path / "one"))
    assert res.tasks == 5 and folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "ray")
    assert [(r.seen, r.kept, r.dropped["duplicate"]) for r in res.reports] == [(6, 5, 1), (6, 6, 0)]
    (src / "notes.txt").write_text(english(1500, 9))
    with pytest.raises(MixerError, match="domain 'docs' mixes 3 JSON files"):
        prepare_corpus(base_config(sources[:1], tmp_path / "mixed"), ClusterConfig(task_bytes=100))
    assert not (tmp_path / "mixed").exists()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("shards") / "corpus"
    write_synthetic_corpus(path, {"code": lognormal_lengths(500, 60, 1.0, 1), "news": lognormal_lengths(700, 40, 0.8, 2),
                                  "wiki": lognormal_lengths(300, 90, 1.2, 3)}, vocab_size=5000, seed=5)
    return path


def build(corpus: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["build-shards", "--corpus", str(corpus), "--weight", "code=0.25", "--weight",
                                     "news=0.45", "--weight", "wiki=0.3", "--tokens", "30k", "--seq-len", "128",
                                     "--data-seed", "7", "--out", str(out), "--shard-tokens", "2048", "--quiet", *extra])


def test_build_shards_on_ray_is_byte_identical(cluster, corpus, tmp_path):
    assert build(corpus, tmp_path / "one", "--threads", "1").exit_code == 0
    for name, extra in (("ray", []), ("shared", ["--shared-fs"])):
        r = build(corpus, tmp_path / name, "--ray", "local", *extra)
        assert r.exit_code == 0, r.output
        assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / name)
        assert leftovers(tmp_path, name) == []
    assert len(folder_bytes(tmp_path / "one")) == 2 * 15 + 1  # 234 rows of 128 in shards of 16 rows + index
    # masked LM: the plan travels whole (its kernels index segments by row)
    assert build(corpus, tmp_path / "mlm1", "--objective", "mlm").exit_code == 0
    assert build(corpus, tmp_path / "mlm", "--objective", "mlm", "--ray", "local").exit_code == 0
    assert folder_bytes(tmp_path / "mlm1") == folder_bytes(tmp_path / "mlm")


def settled_tasks(work: Path, *, quiet_s: float = 1.0, limit_s: float = 60.0) -> int:
    """Finished task files in `work` once no temporary file is left and the count has held for
    `quiet_s` (at most `limit_s`)."""
    import time

    end, last, since = time.monotonic() + limit_s, -1, time.monotonic()
    while time.monotonic() < end:
        count = len(list(work.glob("*.task")))
        if count != last or any(work.glob(".*.tmp-*")):
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.05)
    return last


def test_build_shards_killed_half_way_reruns_only_unfinished_shards(cluster, corpus, tmp_path, monkeypatch):
    from mixer.shards.distributed import write_shards_on_cluster
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.shards.write import ShardConfig, write_shards

    plan = build_plan(corpus, {"code": 0.25, "news": 0.45, "wiki": 0.3}, PlanConfig(tokens=30_000, seq_len=128, seed=7))
    config = ShardConfig(shard_tokens=2048)
    write_shards(plan, corpus, tmp_path / "one", config)
    monkeypatch.setenv(STOP_ENV, "6")
    r = build(corpus, tmp_path / "ray", "--ray", "local", "--shared-fs")
    assert r.exit_code != 0 and not (tmp_path / "ray").exists()
    # Tasks in flight when it stopped still finish and write themselves: wait until none is writing
    # and the finished set holds still (counted too early, one finishing late was "reused" uncounted).
    finished = settled_tasks(tmp_path / ".ray.work")
    assert 6 <= finished < 15
    monkeypatch.delenv(STOP_ENV)
    stats = write_shards_on_cluster(plan, corpus, tmp_path / "ray", config, cluster=ClusterConfig())
    assert len(stats.reused) == finished and len(stats.ran) == 15 - finished
    assert sorted(stats.ran + stats.reused) == list(range(15))
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "ray")
    assert leftovers(tmp_path, "ray") == []
