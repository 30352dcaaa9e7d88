"""The layers hold: the import-linter contracts in pyproject.toml pass, a deliberate back-import
breaks them, there is no import cycle between folders, and folders and modules stay small."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mixer",)


def lint_imports(root: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    return subprocess.run([*cmd, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=cwd or root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_contracts_pass():
    res = lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 1 kept, 0 broken." in res.stdout


def test_contracts_give_the_same_answer_from_any_directory(tmp_path):
    """Only `mixer` is analysed, so no other distribution's `kernels` or `solver` on the path
    can change what the contract sees: the same result from a directory outside the tree."""
    here = lint_imports(ROOT)
    elsewhere = lint_imports(ROOT, cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    count = [line for line in here.stdout.splitlines() if line.startswith("Analyzed")]
    assert count and count == [line for line in elsewhere.stdout.splitlines() if line.startswith("Analyzed")]


def copy_tree(dst: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


@pytest.mark.parametrize("module, wrong", [
    ("mixer/formats/weights.py", "import mixer.loop.sweep"),    # a format reaching up to the loop
    ("mixer/solver/runs.py", "import mixer.trainers.hf_train"),     # two peers of one layer
    ("mixer/kernels/pack.py", "import mixer.core.errors"),      # two peers of the bottom layer
    ("mixer/stream/feed.py", "import mixer.cli.main"),          # the data path reaching up to the CLI
])
def test_a_back_import_breaks_a_contract(tmp_path, module, wrong):
    root = copy_tree(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{wrong}  # deliberately wrong\n")
    res = lint_imports(root)
    assert res.returncode != 0
    assert "BROKEN" in res.stdout and wrong.split()[1] in res.stdout


def folder_of(module: str) -> str:
    """A module's folder; a package's __init__ is a node of its own."""
    path = ROOT / Path(*module.split("."))
    if path.is_dir():
        return f"{module.replace('.', '/')}/__init__"
    return module.rpartition(".")[0].replace(".", "/")


def test_no_cycle_between_folders():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges: dict[str, set[str]] = defaultdict(set)
    for mod in graph.modules:
        for imported in graph.find_modules_directly_imported_by(mod):
            a, b = folder_of(mod), folder_of(imported)
            # A folder importing its own package (__init__) is fine.
            if a != b and b != f"{a}/__init__":
                edges[a].add(b)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("folder import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_no_cycle_between_modules():
    """No module imports one that (directly or not) imports it back: Tarjan's strongly connected
    components over grimp's module graph, imports inside functions included."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    succ = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(succ):
        if m not in index:
            strong(m)
    assert not cycles, f"module import cycles: {cycles}"


def test_every_import_is_one_the_contract_sees():
    """No import hidden from the graph: no `__import__`, `importlib.import_module` or
    `pkgutil`-driven discovery anywhere in the package (resources and metadata are not imports)."""
    hidden = ("__import__(", "import_module(", "pkgutil", "importlib.util")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted((ROOT / "mixer").rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if any(h in line for h in hidden)]
    assert not found, found


def test_no_part_imports_the_package_root():
    """`mixer/__init__.py` offers the public names; the parts import each other by their own
    modules, so the root stays a re-export and never sits inside an import chain."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert sorted(graph.find_modules_that_directly_import("mixer")) == []


def test_folders_and_modules_stay_small():
    for pkg in PACKAGES:
        for folder in [ROOT / pkg, *(p for p in (ROOT / pkg).rglob("*") if p.is_dir())]:
            modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
            assert len(modules) <= 12, f"{folder.relative_to(ROOT)} holds {len(modules)} modules"
            for m in modules:
                lines = len(m.read_text().splitlines())
                assert lines <= 400, f"{m.relative_to(ROOT)} has {lines} lines"
