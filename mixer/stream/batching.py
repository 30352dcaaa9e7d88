"""Cutting a stream of decoded row blocks into batches, shared by the stream's own batched
iteration and `stream.loader()`'s worker path."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

WIDEN_TOKENS = 1 << 16  # tokens widened at once (512 KiB of int64: stays in cache), handed out as views


def cut_batches(rows: Iterator[tuple[np.ndarray, np.ndarray | None]], sizes: list[int],
                convert: Callable[[tuple[np.ndarray, np.ndarray | None]], dict[str, torch.Tensor]],
                widen_rows: int = 1) -> Iterator[dict[str, torch.Tensor]]:
    """Cut a stream of raw (tokens, domains) row blocks into batches of the given sizes.
    Consecutive batches of one size inside one block are converted together, up to
    `widen_rows` rows at a time, and handed out as views of that conversion: one widening and
    one dict per group instead of per batch (a batch is ~10 us of Python otherwise, as much as
    widening it). A batch joining two blocks is joined raw, then converted alone."""
    n = len(sizes)
    # ends[i]: one past the last batch of the run of equal sizes that batch i belongs to
    change = np.flatnonzero(np.diff(np.asarray(sizes, dtype=np.int64))) + 1
    bounds = np.r_[change, n]
    ends = np.repeat(bounds, np.diff(np.r_[0, bounds])).tolist()
    tokens = domains = None
    at = have = i = 0
    while i < n:
        size = sizes[i]
        while at == have:  # this block is used up: the next one (only when a batch needs it)
            tokens, domains = next(rows)
            at, have = 0, len(tokens)
        if size <= have - at:
            m = min(max(1, widen_rows // size), (have - at) // size, ends[i] - i)
            stop = at + m * size
            batch = convert((tokens[at:stop], None if domains is None else domains[at:stop]))
            at, i = stop, i + m
            if m == 1:
                yield batch
            elif len(batch) == 1:
                (key, value), = batch.items()
                for view in value.split(size):
                    yield {key: view}
            else:
                keys = tuple(batch)
                for views in zip(*(v.split(size) for v in batch.values())):
                    yield dict(zip(keys, views))
            continue
        parts, need = [], size
        while need:
            if at == have:
                tokens, domains = next(rows)
                at, have = 0, len(tokens)
            k = min(need, have - at)
            parts.append((tokens[at:at + k], None if domains is None else domains[at:at + k]))
            at, need = at + k, need - k
        joined = np.concatenate([t for t, _ in parts]) if len(parts) > 1 else parts[0][0]
        side = None if parts[0][1] is None else \
            (np.concatenate([d for _, d in parts]) if len(parts) > 1 else parts[0][1])
        yield convert((joined, side))
        i += 1
