"""One writer per output folder: a second writer fails at once naming the first; a `kill -9`'d
writer's temporary folder is removed by the next run."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.core.atomic import atomic_dir
from mixer.core.errors import MixerError
from mixer.core.lock import lock_path, output_lock
from mixer.formats.synthetic import write_ab_corpus

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ["--weight", "a=0.5", "--weight", "b=0.5"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_ab_corpus(tmp_path_factory.mktemp("lock") / "corpus", 400, 50, vocab_size=1000, seed=4)


def slow_writer(corpus: Path, out: Path) -> subprocess.Popen:
    """A child process writing shards into `out`, sleeping after each shard (so it is caught mid-write)."""
    code = textwrap.dedent(f"""
        import sys, time
        from mixer.shards.plan import PlanConfig, build_plan
        from mixer.shards.write import ShardConfig, write_shards
        plan = build_plan({str(corpus)!r}, {{"a": 0.5, "b": 0.5}}, PlanConfig(tokens=8000, seq_len=100, seed=0))
        write_shards(plan, {str(corpus)!r}, {str(out)!r}, ShardConfig(shard_tokens=1000, workers=1),
                     on_shard=lambda done, total: time.sleep(30))
    """)
    with open(out.parent / "writer.log", "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=log)


def wait_for(predicate, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"writer exited early: {log.read_text()[-2000:]}")
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the writer")
        time.sleep(0.05)


def tmp_siblings(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tmp-*"))


def build(corpus: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["build-shards", "--corpus", str(corpus), *WEIGHTS, "--tokens", "8000",
                                     "--seq-len", "100", "--shard-tokens", "1000", "--out", str(out), *extra])


def test_a_second_writer_fails_at_once_naming_the_first(corpus, tmp_path):
    out = tmp_path / "shards"
    proc = slow_writer(corpus, out)
    try:
        wait_for(lambda: bool(tmp_siblings(out)), proc, tmp_path / "writer.log")  # the first writer holds the lock, mid-write
        for extra in ((), ("--overwrite",)):
            t0 = time.monotonic()
            r = build(corpus, out, *extra)
            assert r.exit_code == 2, r.output
            line = r.output.strip().splitlines()[-1]
            assert line.startswith(f"error: {out}: another mixer process is writing this output (pid {proc.pid} on "
                                   f"{socket.gethostname()}, since ")
            assert "choose another --out" in line and time.monotonic() - t0 < 5
        # prepare into the same folder is refused the same way
        raw = tmp_path / "raw"
        raw.mkdir()
        (raw / "d.txt").write_text("word " * 300)
        r = CliRunner().invoke(main, ["prepare", "--source", f"w={raw}", "--out", str(out), "--overwrite", "--quiet"])
        assert r.exit_code == 2 and f"(pid {proc.pid} on" in r.output
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()


def test_a_killed_writers_temporary_folder_is_removed_by_the_next_run(corpus, tmp_path):
    out = tmp_path / "shards"
    proc = slow_writer(corpus, out)
    wait_for(lambda: any(any(p.glob("shard-*.zst")) for p in tmp_siblings(out)), proc, tmp_path / "writer.log")
    os.kill(proc.pid, signal.SIGKILL)  # kill -9: no cleanup runs in the writer
    proc.wait()
    stale = tmp_siblings(out)
    assert len(stale) == 1 and any(stale[0].glob("shard-*.zst")) and not out.exists()
    r = build(corpus, out)
    assert r.exit_code == 0, r.output
    assert tmp_siblings(out) == [] and not lock_path(out).exists()
    clean = tmp_path / "clean"
    assert build(corpus, clean).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in clean.iterdir())
    assert all((out / p.name).read_bytes() == p.read_bytes() for p in clean.iterdir())


def test_lock_is_reentrant_in_one_thread_and_released_on_error(tmp_path):
    out = tmp_path / "o"
    with output_lock(out):
        assert lock_path(out).exists()
        with pytest.raises(RuntimeError, match="boom"):
            with atomic_dir(out) as tmp:  # takes the same lock again: re-entrant
                (tmp / "f").write_text("x")
                raise RuntimeError("boom")
        assert tmp_siblings(out) == [] and not out.exists()
    assert not lock_path(out).exists()
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("x")
    assert (out / "f").read_text() == "x" and not lock_path(out).exists()
    with pytest.raises(MixerError, match="output already exists"):
        with atomic_dir(out):
            pass


def test_a_writer_killed_between_its_two_renames_loses_nothing(tmp_path):
    out = tmp_path / "o"
    # what atomic_dir leaves if killed after moving the old output aside, before renaming the new one in
    (tmp_path / ".o.old-123").mkdir()
    (tmp_path / ".o.old-123" / "f").write_text("previous")
    (tmp_path / ".o.tmp-abc").mkdir()
    with output_lock(out):
        assert (out / "f").read_text() == "previous" and tmp_siblings(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o027, 0o750)])
def test_output_folders_follow_the_umask(tmp_path, umask, mode):
    """corpus/ and shards/ were 0700 (tempfile.mkdtemp): unreadable by another user or container."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(4):
        (raw / f"doc-{i}.txt").write_text(f"Story {i}. " + "The river rose through the night. " * 40)
    old = os.umask(umask)
    try:
        r = CliRunner().invoke(main, ["prepare", "--source", f"a={raw}", "--source", f"b={raw}", "--heldout-docs", "1",
                                      "--out", str(tmp_path / "corpus"), "--quiet"])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["build-shards", "--corpus", str(tmp_path / "corpus"), *WEIGHTS,
                                      "--tokens", "1000", "--seq-len", "50", "--out", str(tmp_path / "shards"), "--quiet"])
        assert r.exit_code == 0, r.output
    finally:
        os.umask(old)
    for name in ("corpus", "shards"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
