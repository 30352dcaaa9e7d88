"""One import package: everything the project installs is `mixer` and its sub-packages.

Before, `kernels`, `solver`, `trainers` and `bench` were top-level packages. Hugging Face's
`kernels` distribution (which transformers 5 requires) has the same name, so from the repository
root `import kernels` found this project's folder and transformers could not build GPT-2. These
tests check the wheel's contents, what the four names resolve to in a fresh interpreter, and that
transformers builds and runs a GPT-2 when started from the repository root.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OLD_NAMES = ("kernels", "solver", "trainers", "bench")


def _python(code: str, cwd: Path) -> str:
    """Run `code` in a fresh interpreter started in `cwd`, as a user would (no PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_the_wheel_holds_only_the_mixer_package(tmp_path):
    pytest.importorskip("setuptools")  # the build backend (a test extra), so the wheel builds offline
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "mixer", src / "mixer", ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("mixer_toolkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"mixer"}, sorted(tops)
    modules = {n for n in names if n.endswith(".py")}
    # every part, in the package, and nothing only tests use
    for part in ("kernels", "core", "formats", "prepare", "shards", "stream", "trainers", "solver", "loop", "cli"):
        assert f"mixer/{part}/__init__.py" in modules, part
    assert "mixer/testing.py" not in modules
    assert not any("/tests/" in n or n.startswith(("tests/", "bench/", "examples/")) for n in names)
    assert "mixer/data/default_corpus.json" in names or any(n.startswith("mixer/data/") for n in names)
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")] or [None]
    if top_level is not None:
        assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["mixer"]


def test_old_top_level_names_are_not_this_project(tmp_path):
    """From a directory outside the tree no name resolves to this project; from the repository root
    only `bench` does (the benchmarks are run from there, `python -m bench.train`, and not installed)."""
    code = ("import importlib.util, json\n"
            f"out = {{}}\nfor n in {OLD_NAMES!r}:\n"
            "    s = importlib.util.find_spec(n)\n"
            "    out[n] = None if s is None else [str(p) for p in (s.submodule_search_locations or [s.origin])]\n"
            "print(json.dumps(out))")
    for cwd, allowed in ((tmp_path, ()), (ROOT, ("bench",))):
        found = json.loads(_python(code, cwd))
        for name, where in found.items():
            # A virtual environment inside the clone (`python -m venv .venv`, as users make it) holds
            # other projects' packages under ROOT: those are not this project.
            ours = [p for p in (where or []) if Path(p).resolve().is_relative_to(ROOT)
                    and "site-packages" not in Path(p).resolve().relative_to(ROOT).parts]
            if name in allowed:
                assert ours == [str(ROOT / name)] or [Path(p).resolve() for p in ours] == [ROOT / name], (name, where)
            else:
                assert not ours, f"`import {name}` from {cwd} finds this project: {where}"


def test_transformers_builds_gpt2_from_the_repository_root():
    """What broke: transformers' hub-kernels integration imports `kernels` while GPT-2 is built.
    From the repository root, with the transformers installed here (CI installs the newest the
    requirements allow), a GPT-2 is built, runs forward and backward, and `kernels` (when Hugging
    Face's package is installed) is theirs."""
    code = ("import importlib.util, json, torch, transformers\n"
            "from transformers import GPT2Config, GPT2LMHeadModel\n"
            "torch.manual_seed(0)\n"
            "m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=64, n_positions=16))\n"
            "ids = torch.randint(0, 64, (2, 16))\n"
            "out = m(input_ids=ids, labels=ids)\n"
            "out.loss.backward()\n"
            "k = importlib.util.find_spec('kernels')\n"
            "print(json.dumps({'version': transformers.__version__, 'loss': out.loss.item(),\n"
            "                  'kernels': None if k is None else str(k.origin)}))")
    got = json.loads(_python(code, ROOT))
    assert 3.0 < got["loss"] < 6.0  # ~ln(64) = 4.16 at initialisation
    if got["kernels"] is not None:   # theirs: not in the tree, or in a venv inside the clone
        where = Path(got["kernels"]).resolve()
        assert not where.is_relative_to(ROOT) or "site-packages" in where.relative_to(ROOT).parts, where


def test_the_project_is_importable_from_anywhere(tmp_path):
    """The installed package works outside the tree: the CLI's entry, the layers, the stream."""
    out = _python("import mixer, mixer.kernels.permute, mixer.solver.ddo, mixer.trainers.steps, mixer.cli.main\n"
                  "from mixer import MixtureStream, MixtureSampler\n"
                  "print(mixer.__file__)", tmp_path)
    assert Path(out.strip()).resolve() == ROOT / "mixer" / "__init__.py"
