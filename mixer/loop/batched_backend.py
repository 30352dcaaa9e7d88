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

from typing import Iterator, Sequence

from mixer.formats.corpus_handle import Corpus
from mixer.core.errors import MixerError
from mixer.loop.runner import RunSpec, execute_batch, group_key


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
            groups.setdefault(group_key(s), []).append(s)
        for group in groups.values():
            corpus = Corpus.open(group[0].corpus)  # a group reads one corpus (group_key): one handle
            for a in range(0, len(group), self.k):
                chunk = group[a:a + self.k]
                yield from zip(chunk, execute_batch(chunk, corpus=corpus))
