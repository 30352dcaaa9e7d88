"""The batched backend: the proxies of a sweep trained K at a time in one model (`--batch-proxies K`).

    backend = BatchedBackend(k=11)
    for spec, files in backend(specs): ...     # as the sequential backend, K runs per training

Runs whose trainer settings and budget agree (they differ in mixture and seeds, as the 1+2m runs
of a DDO sweep do) go into groups of at most K, each trained by `mixer.trainers.batched.train_batched`:
one model build, compile and evaluation setup per group and one kernel per op for all K, which
is what fills a GPU that one small proxy leaves idle. Each run's files are exactly those it gives
trained alone (`mixer.loop.runner.execute` of a spec with `trainer="stacked"`), so a sweep's
cache holds the same run.json whichever of the two ran it; on a CPU bit for bit.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence

from mixer.core.errors import MixerError
from mixer.loop.runner import KEEP_FILES, RunSpec, _data_source


def _group_key(spec: RunSpec) -> tuple:
    train = {k: v for k, v in asdict(spec.train).items() if k not in ("seed", "data_seed")}
    return spec.corpus, int(spec.budget_tokens), tuple(sorted(train.items()))


def execute_batch(specs: Sequence[RunSpec], progress: bool = False) -> list[dict[str, bytes]]:
    """Train the specs together (one group: same corpus, budget and trainer settings); their files."""
    import torch

    from mixer.trainers.batched import Proxy, train_batched

    if len({_group_key(s) for s in specs}) != 1:
        raise MixerError("execute_batch: the runs of one batch need the same corpus, budget and trainer settings")
    torch.set_num_threads(specs[0].train.threads)  # as `execute`: bitwise results need a fixed count
    tmp = Path(tempfile.mkdtemp(prefix="mixer-batch-"))
    try:
        proxies = [Proxy(_data_source(s), out_dir=tmp / str(i), seed=s.train.seed) for i, s in enumerate(specs)]
        train_batched(specs[0].train.train_config(progress=progress), proxies,
                      progress_desc=f"{len(specs)} proxies" if progress else None)
        return [{n: (tmp / str(i) / n).read_bytes() for n in KEEP_FILES if (tmp / str(i) / n).exists()}
                for i in range(len(specs))]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BatchedBackend:
    """A `mixer.loop.sweep.Backend` training up to `k` compatible runs at once."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise MixerError(f"--batch-proxies {k}: give the number of proxies to train at once (1 or more)")
        self.k = int(k)

    def __call__(self, specs: Sequence[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, bytes]]]:
        groups: dict[tuple, list[RunSpec]] = {}
        for s in specs:
            if s.train.trainer != "stacked":
                raise MixerError(f"run {s.name}: trainer {s.train.trainer!r}; batched proxies need trainer 'stacked'")
            groups.setdefault(_group_key(s), []).append(s)
        for group in groups.values():
            for a in range(0, len(group), self.k):
                chunk = group[a:a + self.k]
                yield from zip(chunk, execute_batch(chunk))
