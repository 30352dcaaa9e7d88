"""The gather's thread pool survives a fork: a DataLoader worker forked after the parent used
it must still get its rows (before the fix, work submitted in the child never ran)."""
from __future__ import annotations

import numpy as np
import torch

from mixer.shards.gather import gather_sequences, open_sources
from mixer.shards.plan import PlanConfig, build_plan
from mixer.formats.synthetic import write_synthetic_corpus


class _Rows(torch.utils.data.IterableDataset):
    def __init__(self, plan, sources):
        self.plan, self.sources = plan, sources

    def __iter__(self):
        yield gather_sequences(self.plan, self.sources, 0, 8, threads=2)[0]


def test_gather_in_forked_worker_after_parent_used_the_pool(tmp_path):
    write_synthetic_corpus(tmp_path / "c", {"a": [50] * 100, "b": [70] * 100})
    plan = build_plan(tmp_path / "c", {"a": 0.5, "b": 0.5}, PlanConfig(tokens=4096, seq_len=64))
    sources = open_sources(tmp_path / "c", plan)
    expected, _ = gather_sequences(plan, sources, 0, 8, threads=2)  # the parent starts the pool
    loader = torch.utils.data.DataLoader(_Rows(plan, sources), batch_size=None, num_workers=1,
                                         multiprocessing_context="fork", timeout=60)
    assert np.array_equal(next(iter(loader)).numpy(), expected)
