"""`mixer build-shards` as a user runs it (a fresh process) loads only what the build needs: no
other command's module, and none of the packages numba would import for features no mixer kernel
uses (`mixer.kernels.without_numba_extras`); its objects are frozen before Python's teardown; the
shards are the bytes the library writes without either."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from mixer.kernels import NUMBA_EXTRAS, without_numba_extras

ROOT = Path(__file__).resolve().parents[1]
# Never imported by `mixer build-shards --quiet` on local folders.
NOT_NEEDED = {"scipy", "cffi", "yaml", "torch", "pandas", "matplotlib", "ray", "rich", "fsspec"}
OTHER_COMMANDS = ("corpus", "demo", "export", "inspect", "loop", "prepare", "solve", "train", "verify")
RUN = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count()))  # runs after the command's own
from mixer.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print(" ".join(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("startup") / "corpus"
    write_synthetic_corpus(path, {"code": lognormal_lengths(400, 60, 1.0, 1), "news": lognormal_lengths(600, 40, 0.8, 2)},
                           vocab_size=5000, seed=5)
    return path


def build_in_fresh_process(corpus: Path, out: Path, *extra: str, env: dict | None = None) -> set[str]:
    """The modules a fresh `mixer build-shards --quiet` process has imported when it ends; and
    that its objects were frozen before Python's teardown (no full collections at exit)."""
    args = ["build-shards", "--corpus", str(corpus), "--weight", "code=0.4", "--weight", "news=0.6", "--tokens", "20k",
            "--seq-len", "128", "--data-seed", "3", "--shard-tokens", "4096", "--out", str(out), "--quiet", *extra]
    res = subprocess.run([sys.executable, "-c", RUN, *args], check=False, capture_output=True, text=True, cwd=out.parent,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=600)
    assert res.returncode == 0, res.stderr
    *lines, last = res.stdout.splitlines()
    assert last.startswith("frozen at exit: ") and int(last.split()[-1]) > 1_000, last  # 0 without
    return set(lines[-1].split())


def library_build(corpus: Path, out: Path, objective: str = "causal") -> dict[str, bytes]:
    """The same build through `mixer.shards.build` in this process, no import refused."""
    from mixer.shards import build
    from mixer.shards.plan import PlanConfig
    from mixer.shards.write import ShardConfig

    build(corpus, {"code": 0.4, "news": 0.6}, out, plan=PlanConfig(tokens=20_000, seq_len=128, seed=3, objective=objective),
          shards=ShardConfig(shard_tokens=4096, workers=1), weights_source="--weight")
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def folder(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.mark.parametrize("objective, compiled", [("causal", "1"), ("causal", "0"), ("mlm", "1"), ("mlm", "0")])
def test_build_shards_imports_only_what_the_build_needs(corpus, tmp_path, objective, compiled):
    """A build runs the kernels compiled ahead of time and never imports numba (unless
    MIXER_COMPILED_KERNELS=0)."""
    modules = build_in_fresh_process(corpus, tmp_path / "cli", "--objective", objective,
                                     env={"MIXER_COMPILED_KERNELS": compiled})
    tops = {m.partition(".")[0] for m in modules}
    assert "zstandard" in tops  # it did build
    assert ("numba" in tops) == (compiled == "0")
    assert any(m.startswith("mixer_kernels_") for m in modules) == (compiled == "1")  # the compiled module
    assert tops & NOT_NEEDED == set()
    assert [m for m in modules if m.startswith("mixer.cli.commands.") and m.split(".")[3] in OTHER_COMMANDS] == []
    heavier = ("mixer.solver", "mixer.trainers", "mixer.loop.", "mixer.stream", "mixer.prepare", "mixer.export")
    assert [m for m in modules - {"mixer.loop.defaults"} if m.startswith(heavier)] == []  # (defaults: option defaults)
    blend = {"mixer.kernels.blend", "mixer.kernels.edf"}
    assert modules & blend == ({"mixer.kernels.edf"} if (objective, compiled) == ("mlm", "0") else set())
    assert folder(tmp_path / "cli") == library_build(corpus, tmp_path / "lib", objective)


@pytest.mark.slow
def test_kernels_compiled_without_the_extras_write_the_same_bytes(corpus, tmp_path):
    """With numba's cache cold, every kernel the build runs is compiled while scipy, cffi and yaml
    are refused (about 15 s): numba compiles them all, and the shards are the library's bytes.
    The kernels compiled ahead of time are turned off (MIXER_COMPILED_KERNELS=0): with them on,
    the build never calls numba and this test would check nothing (it failed so, unnoticed in
    the default run, once builds loaded those kernels)."""
    cache = tmp_path / "numba-cache"
    for objective in ("causal", "mlm"):
        out = tmp_path / f"cli-{objective}"
        build_in_fresh_process(corpus, out, "--objective", objective,
                               env={"NUMBA_CACHE_DIR": str(cache), "MIXER_COMPILED_KERNELS": "0"})
        assert folder(out) == library_build(corpus, tmp_path / f"lib-{objective}", objective)
    assert any(cache.rglob("*.nbc"))  # compiled there, not loaded from the usual cache


def test_without_numba_extras_refuses_them_only_inside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = list(sys.meta_path)
    with without_numba_extras():
        finder = sys.meta_path[0]
        for name in ("scipy", "scipy.linalg.cython_blas", "cffi", "yaml"):
            with pytest.raises(ModuleNotFoundError, match="not imported while mixer loads its kernels"):
                finder.find_spec(name)
        assert finder.find_spec("numpy") is None and finder.find_spec("scipyx") is None  # not theirs: the next finder
        assert importlib.import_module("json") is sys.modules["json"]  # others import as ever
    assert sys.meta_path == before
    assert set(NUMBA_EXTRAS) == {"scipy", "cffi", "yaml"}


def test_a_numba_config_file_keeps_yaml(tmp_path, monkeypatch):
    """numba reads `.numba_config.yaml` with yaml: where that file is, yaml is not refused."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".numba_config.yaml").write_text("DEBUG_CACHE: 0\n")
    with without_numba_extras():
        finder = sys.meta_path[0]
        assert finder.find_spec("yaml") is None
        with pytest.raises(ModuleNotFoundError):
            finder.find_spec("scipy")
