"""The kernels compiled ahead of time (`mixer.kernels.aot`): a call runs a compiled variant only
when numba would type its arguments exactly as that variant's; every argument type a causal build
passes has its variant; the shards are the same bytes either way; the store's key follows the
sources; a compile that fails is remembered and the build still runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from mixer.formats.corpus_handle import Corpus
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from mixer.kernels import aot
from mixer.kernels.aot import COMPILED, compiled_kernels, kernel, store
from mixer.kernels.aot.keys import call_key, from_json, numba_key, value_key
from mixer.shards import build
from mixer.shards.plan import PlanConfig
from mixer.shards.write import ShardConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """The compiled module, compiled once (where `mixer build-shards` keeps it, as numba's cache)."""
    path = store.default_cache(tmp_path_factory.mktemp("kernels"))
    with compiled_kernels(path) as status:
        assert status.active, status.reason
    return path


def values() -> list:
    """Arguments of many kinds: every dtype, contiguous or not, read-only, unaligned, byte-swapped,
    scalars at the edges of int64, numpy scalars, tuples of all of these."""
    rng = np.random.default_rng(0)
    out: list = []
    for dt in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8", "?"):
        a = (rng.integers(0, 100, 24) % 2 == 0) if dt == "?" else rng.integers(0, 100, 24).astype(dt)
        ro = a.copy()
        ro.flags.writeable = False
        out += [a, a[::2], a.reshape(4, 6), a.reshape(4, 6).T, a.reshape(4, 6)[:, ::2], ro, a[:0],
                a.astype(a.dtype.newbyteorder()) if a.dtype.itemsize > 1 else a[1:]]
        raw = np.zeros(a.nbytes + 1, np.uint8)[1:].view(a.dtype) if a.dtype.itemsize > 1 else a
        out.append(raw)  # unaligned
        out.append(a.dtype.type(a[0]))
    out += [0, -1, (1 << 63) - 1, -(1 << 63), 1 << 63, 2.5, True, False, np.uint64(7), np.int32(-3), np.float32(1.5),
            np.bool_(True), (1, 2, 3), (1, 2.0), (np.arange(3), np.arange(3.0)), ((1, 2), (np.uint64(1),)), (), "x",
            None, np.arange(3, dtype=np.complex128), np.datetime64("2020-01-01")]
    return out


def test_value_key_is_numbas_type_or_none():
    """For every value: the key numba's own type gives, or None (then no compiled variant runs it);
    never a key of another type (that would run compiled code on memory it misreads)."""
    known = 0
    for v in values():
        k = value_key(v)
        try:
            want = numba_key(numba.typeof(v))
        except (ValueError, TypeError, numba.core.errors.NumbaError):
            want = None
        if k is not None:
            assert k == want, (v, k, want)
            known += 1
    assert known > 80  # the kinds the build passes are all known


def test_a_call_of_other_types_runs_numbas_kernel(cache):
    """Arguments no variant was compiled for (int32 lengths, float32 weights, a strided array)
    run numba's dispatcher: the same answers, and nothing misread."""
    w = np.array([0.2, 0.3, 0.5])
    lengths = np.arange(1, 50, dtype=np.int64)
    perm = np.arange(49, dtype=np.int64)[::-1].copy()
    with compiled_kernels(cache) as status:
        assert status.active
        lr = kernel("largest_remainder")
        assert call_key((w, 100)) in lr.variants  # the compiled one runs this call
        assert call_key((w.astype(np.float32), 100)) not in lr.variants
        got = [lr(w, 100), lr(w.astype(np.float32), 100), lr(np.repeat(w, 2)[::2], 100)]
        sel = kernel("select_causal")
        picked = [sel(lengths, perm, 300), sel(lengths.astype(np.int32), perm, 300)]
    jit = aot.jit_kernel("largest_remainder")
    for g in got:
        np.testing.assert_array_equal(g, jit(w, 100))
    want = aot.jit_kernel("select_causal")(lengths, perm, 300)
    for p in picked:
        for a, b in zip(p, want):
            np.testing.assert_array_equal(a, b)
    assert kernel("largest_remainder") is jit  # outside the block: numba's


def corpus(path: Path, k: int, vocab: int) -> Corpus:
    write_synthetic_corpus(path, {f"d{i:03d}": lognormal_lengths(40, 50, 1.0, i + 1) for i in range(k)},
                           vocab_size=vocab, seed=k)
    return Corpus.open(path)


CASES = [  # (domains, vocabulary: uint16 or uint32 tokens, compression threads, passes over the documents, objective)
    (3, 5000, 1, 1, "causal"), (3, 70_000, 2, 1, "causal"), (70, 5000, 2, 1, "causal"), (300, 70_000, 1, 1, "causal"),
    (3, 5000, 2, 3, "causal"), (300, 5000, 2, 2, "causal"), (3, 5000, 1, 1, "mlm"), (300, 70_000, 2, 1, "mlm"),
    (3, 70_000, 2, 2, "mlm-blend"), (70, 5000, 1, 1, "mlm-blend")]


def plan_config(k: int, passes: int, objective: str) -> PlanConfig:
    causal = objective == "causal"
    return PlanConfig(tokens=(40 * 50 * k * passes // 2) if causal else 64 * 20 * k * passes, seq_len=64, seed=7,
                      max_epochs=4 * passes, objective=objective.split("-")[0],
                      interleave="blend" if objective.endswith("blend") else "auto")


@pytest.mark.parametrize("k, vocab, threads, passes, objective", CASES)
def test_shards_are_the_same_bytes_and_no_call_falls_back(cache, tmp_path, monkeypatch, k, vocab, threads, passes,
                                                          objective):
    """A build inside `compiled_kernels` writes numba's bytes, and every kernel call of it ran a
    compiled variant (causal and masked-LM with both orders; uint16 / uint32 tokens, uint8 /
    uint16 domain ids, the merge and the sort interleave, repeated passes, 1 and 2 threads)."""
    c = corpus(tmp_path / "corpus", k, vocab)
    plan = plan_config(k, passes, objective)
    shards = ShardConfig(shard_tokens=64 * 40, workers=threads)
    w = {f"d{i:03d}": (i + 1) / (k * (k + 1) / 2) for i in range(k)}
    build(c, w, tmp_path / "jit", plan=plan, shards=shards, weights_source="test")
    fell_back = []
    jit = aot.jit_kernel
    monkeypatch.setattr(aot, "jit_kernel", lambda name: fell_back.append(name) or jit(name))
    with compiled_kernels(cache) as status:
        assert status.active
        build(c, w, tmp_path / "aot", plan=plan, shards=shards, weights_source="test")
    assert fell_back == []
    files = sorted(p.name for p in (tmp_path / "jit").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "aot").iterdir()) and len(files) > 2
    for name in files:
        assert (tmp_path / "jit" / name).read_bytes() == (tmp_path / "aot" / name).read_bytes(), name


RECORD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import numba
from test_kernels_aot import CASES, corpus, plan_config
from mixer.kernels.aot import COMPILED
from mixer.kernels import aot
from mixer.kernels.aot.keys import numba_key
from mixer.shards import build
from mixer.shards.write import ShardConfig
tmp = Path(sys.argv[1])
for i, (k, vocab, threads, passes, objective) in enumerate(CASES):
    c = corpus(tmp / f"c{i}", k, vocab)
    build(c, {n: 1.0 / k for n in c.manifest.domain_names}, tmp / f"o{i}", plan=plan_config(k, passes, objective),
          shards=ShardConfig(shard_tokens=2560, workers=threads), weights_source="test")
print(json.dumps({name: [[numba_key(t) for t in sig if not isinstance(t, numba.types.Omitted)]
                         for sig in aot.jit_kernel(name).signatures] for name in COMPILED}))
"""


def test_every_type_a_build_passes_has_its_variant(cache, tmp_path):
    """The argument types of every kernel call of numba-run causal builds (a fresh process, so
    only theirs are recorded) are among the compiled variants: a change of a kernel's argument
    types that `compile.py` does not follow fails here, not silently slower."""
    res = subprocess.run([sys.executable, "-c", RECORD, str(tmp_path), str(ROOT / "tests")], capture_output=True,
                         text=True, check=False, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads(res.stdout.splitlines()[-1])
    table = json.loads((cache / store.key() / "variants.json").read_text())["kernels"]
    assert set(table) == set(COMPILED)
    for name, sigs in seen.items():
        compiled = {from_json(key) for _, key in table[name]}
        assert sigs, f"{name}: no call recorded"  # each compiled kernel is used by these builds
        for sig in sigs:
            assert from_json(sig) in compiled, (name, sig)


def test_the_key_follows_the_kernel_sources(tmp_path, monkeypatch):
    src = tmp_path / "kernels"
    src.mkdir()
    for p in store.KERNELS_DIR.glob("*.py"):
        (src / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(store, "KERNELS_DIR", src)
    before = store.key()
    assert store.key() == before  # the same sources: the same key
    (src / "permute.py").write_text((src / "permute.py").read_text() + "\n# changed\n")
    assert store.key() != before


def test_a_failed_compile_is_remembered_and_the_build_runs(tmp_path, monkeypatch):
    """A compile that fails (here: its process exits 1) leaves `<key>.failed` with the reason; the
    build then runs numba's kernels, the same bytes, and the next command does not compile again."""
    calls = []

    def failing(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "error: no C compiler found\n")

    monkeypatch.setattr(subprocess, "run", failing)
    said, told = [], []
    for _ in range(2):
        with compiled_kernels(tmp_path / "cache", on_compile=lambda: said.append(1), on_failure=told.append) as status:
            assert not status.active and status.reason == "error: no C compiler found"
            assert kernel("permutation") is aot.jit_kernel("permutation")
    assert len(calls) == 1 and said == [1] and told == ["error: no C compiler found"]  # compiled and told once
    assert (tmp_path / "cache" / f"{store.key()}.failed").read_text() == "error: no C compiler found\n"
    k = store.key()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"{k}.failed", f"{k}.lock"]  # no temporary


def test_build_shards_says_a_failed_compile_once_and_writes_the_same_bytes(tmp_path, monkeypatch):
    """`mixer build-shards` where the kernels cannot be compiled: one note on stderr naming the
    reason and the fix, exit 0, numba's kernels, the library's bytes; the next run says nothing."""
    from click.testing import CliRunner

    from mixer.cli.main import main

    c = corpus(tmp_path / "corpus", 3, 5000)
    monkeypatch.setattr(store, "default_cache", lambda fallback: tmp_path / "kernels")
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "error: Python.h: no such file\n"))
    args = ["build-shards", "--corpus", str(tmp_path / "corpus"), "--weight", "d000=0.5", "--weight", "d001=0.3",
            "--weight", "d002=0.2", "--tokens", "3000", "--seq-len", "64", "--shard-tokens", "1280"]
    first = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    again = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b")])
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    notes = [line for line in first.stderr.splitlines() if "could not be compiled ahead of time" in line]
    assert notes == [f"note: mixer's kernels could not be compiled ahead of time (error: Python.h: no such file); "
                     f"numba runs them, the same bytes (to retry, delete {tmp_path / 'kernels'}/*.failed)"]
    assert "compiling mixer's kernels" in first.stderr and "compil" not in again.stderr
    build(c, {"d000": 0.5, "d001": 0.3, "d002": 0.2}, tmp_path / "lib", plan=PlanConfig(tokens=3000, seq_len=64),
          shards=ShardConfig(shard_tokens=1280), weights_source="--weight")
    for out in ("a", "b"):
        files = sorted(p.name for p in (tmp_path / "lib").iterdir())
        assert files == sorted(p.name for p in (tmp_path / out).iterdir())
        assert all((tmp_path / out / f).read_bytes() == (tmp_path / "lib" / f).read_bytes() for f in files)


@pytest.mark.parametrize("damage", ["variants", "module"])
def test_a_damaged_compiled_folder_leaves_the_build_to_numba(cache, tmp_path, damage):
    """A compiled folder damaged after the fact (its variants file cut short, or its module
    replaced by a file that is not one): the compiled kernels are not used, numba's run, the
    same bytes; nothing raises."""
    k = store.key()
    copy = tmp_path / "cache" / k
    copy.mkdir(parents=True)
    for p in (cache / k).iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    if damage == "variants":
        (copy / "variants.json").write_text((copy / "variants.json").read_text()[:100])
    else:
        name = store.module_name(k)
        for p in copy.glob(name + "*"):
            p.write_bytes(b"not an extension module")
        sys.modules.pop(name, None)  # (loaded from `cache` by the fixture: load this copy afresh)
    c = corpus(tmp_path / "corpus", 3, 5000)
    plan, shards = plan_config(3, 1, "causal"), ShardConfig(shard_tokens=2560, workers=1)
    build(c, {f"d{i:03d}": 1 / 3 for i in range(3)}, tmp_path / "jit", plan=plan, shards=shards, weights_source="t")
    with compiled_kernels(tmp_path / "cache") as status:
        assert not status.active
        assert kernel("gather_frame") is aot.jit_kernel("gather_frame")
        build(c, {f"d{i:03d}": 1 / 3 for i in range(3)}, tmp_path / "aot", plan=plan, shards=shards,
              weights_source="t")
    for p in (tmp_path / "jit").iterdir():
        assert p.read_bytes() == (tmp_path / "aot" / p.name).read_bytes()


def test_processes_compiling_at_once_compile_once(tmp_path, monkeypatch):
    """Four callers at once on a fresh cache (threads here; each opens the lock file itself, as
    processes do): one compiles, the others wait and find its folder."""
    import threading
    import time

    calls = []

    def slow(cmd, **kwargs):
        calls.append(cmd)
        time.sleep(0.3)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", slow)
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.compile_into(tmp_path / "cache", "k1")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [None] * 4 and len(calls) == 1
    assert (tmp_path / "cache" / "k1").is_dir() and not list((tmp_path / "cache").glob(".k1.*"))
