"""Cutting a stream of decoded row blocks into batches, shared by the stream's own batched
iteration and `stream.loader()`'s worker path."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch


def cut_batches(rows: Iterator[tuple[np.ndarray, np.ndarray | None]], sizes: list[int],
         convert: Callable[[tuple[np.ndarray, np.ndarray | None]], dict[str, torch.Tensor]]
         ) -> Iterator[dict[str, torch.Tensor]]:
    """Cut a stream of raw (tokens, domains) row blocks into batches of the given sizes, each
    converted whole (a batch joining two blocks is joined before it is widened)."""
    tokens = domains = None
    at = have = 0
    for size in sizes:
        if size <= have - at:
            yield convert((tokens[at:at + size], None if domains is None else domains[at:at + size]))
            at += size
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
