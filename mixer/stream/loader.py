"""`StreamLoader`: what `stream.loader(num_workers)` returns, the fast way to feed a loop.

    loader = stream.loader(num_workers=2)       # MixtureStream or MixtureSampler
    for batch in loader:                         # {"input_ids", "domain_ids"}: int64 [B, seq_len]
        ...
    state = loader.state_dict()                  # exact at any num_workers (the stream's own)

It yields this rank's batches of the stream's `batch_size` in stream order: the same batches
as ``DataLoader(stream, batch_size=B)`` for any number of workers, per-sequence or `batched`
stream alike.

Why not a plain DataLoader with workers: it hands every batch over as its own shared-memory
tensors (a new segment and a file descriptor passed over a socket per tensor, 1-3 ms each on a
busy VM), and its round-robin of batch-sized blocks makes every worker decode every shard.
Measured on 2 cores, that made 2 workers 8x slower than none. Here instead:

* 0 workers: batches are cut in this process straight from the stream (no DataLoader
  machinery per batch), widened to int64 one batch at a time, shards decoded ahead on one
  background thread (`read_ahead=0`: on the consumer's thread).
* workers: each shard is cut into *parts* of at most `PART_TOKENS` tokens (a whole shard
  when it is smaller), dealt to the workers round-robin, so a worker decodes only the shards
  it is dealt. A worker copies its rows, still raw (uint16/uint32 tokens, uint8/uint16 domain
  ids), in *chunks* of `CHUNK_TOKENS` tokens into shared-memory slots made once per pass
  (`_Ring`) and hands over only the slot's number. This process copies each chunk out,
  frees its slot, puts the chunks back in stream order (`partition.deal_chunks` says which
  worker has which) and cuts and widens batches as with 0 workers. While it finishes one
  worker's part it holds the next worker's chunks already delivered: at most about one part
  (3 bytes a token raw, ~24 MiB at the default).

The position lives in this process (the stream's `state_dict()`), counted as batches are
yielded, so `loader.state_dict()` after k batches is ``consumed = k * batch_size`` whatever
`num_workers` is, and loads into a loader with any other number of workers or world size.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from mixer.core.errors import MixerError
from mixer.stream.partition import (
    deal_chunks,
    merge_runs,
    to_global,
    unit_tasks,
    worker_runs,
)
from mixer.stream.readahead import read_ahead

CHUNK_TOKENS = 1 << 20  # tokens per hand-over from a worker (8 MiB per int64 field)
PART_TOKENS = 1 << 23  # tokens of a shard dealt to one worker (larger shards are split)


class StreamLoader:
    """Batches of a `MixtureFeed` (`feed`) in stream order, read by `num_workers` processes (0: this one).

    `collate_fn` is applied to each whole batch in this process (e.g. `MixtureCollator()`),
    `pin_memory` pins each batch; other keywords go to the workers' `DataLoader`."""

    def __init__(self, feed: Any, num_workers: int = 0, *, collate_fn: Callable | None = None,
                 pin_memory: bool = False, chunk_tokens: int = CHUNK_TOKENS, part_tokens: int = PART_TOKENS,
                 **loader_kwargs: Any) -> None:
        if not isinstance(num_workers, int) or num_workers < 0:
            raise MixerError(f"num_workers {num_workers!r}: must be an integer >= 0")
        for key in ("batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"):
            if key in loader_kwargs:
                raise MixerError(f"stream.loader(): {key}= is the stream's to decide (batch_size is the stream's "
                                 f"{feed.batch_size}, the order is the stream's); leave it out")
        self.feed, self.num_workers = feed, num_workers
        # pinning needs a GPU; without one it is skipped, as a DataLoader does
        self.collate_fn, self.loader_kwargs = collate_fn, loader_kwargs
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        rows = max(1, chunk_tokens // feed.seq_len // feed.batch_size) * feed.batch_size
        self.chunk_rows = rows  # a multiple of batch_size: chunks of a shard never split a batch
        self.part_rows = max(1, part_tokens // feed.seq_len // rows) * rows

    def __len__(self) -> int:
        """Batches per pass of this rank."""
        return (self.feed._length + self.feed.batch_size - 1) // self.feed.batch_size

    @property
    def batch_size(self) -> int:
        return self.feed.batch_size

    def state_dict(self) -> dict[str, Any]:
        return self.feed.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.feed.load_state_dict(state)

    def __iter__(self) -> Iterator[Any]:
        batches = self.feed._iterate(True) if self.num_workers == 0 else self._from_workers()
        if not self.pin_memory and self.collate_fn is None:
            return batches  # nothing to do per batch: no generator between the stream and the loop
        return self._finish(batches)

    def _finish(self, batches: Iterator[dict[str, torch.Tensor]]) -> Iterator[Any]:
        for batch in batches:
            if self.pin_memory:
                batch = {k: v.pin_memory() for k, v in batch.items()}
            yield batch if self.collate_fn is None else self.collate_fn(batch)

    def _from_workers(self) -> Iterator[dict[str, torch.Tensor]]:
        feed = self.feed
        feed._read_by_workers.fill_(0)  # this process counts what it yields: its position is exact
        feed._begin_pass(None)
        start, length = feed._start, feed._length
        local = worker_runs(length, start, feed.batch_size, 0, 1)
        runs = to_global(np.array([[start, length - start]], dtype=np.int64), feed._runs) if length > start \
            else np.zeros((0, 2), np.int64)
        # this process reads the first part itself while the workers start (~0.1-0.3 s a pass)
        plan = deal_chunks(runs, feed.source.bounds, self.num_workers, self.part_rows, self.chunk_rows, lead=1)
        own = [chunk for w, _, chunk in plan if w < 0]  # the first chunks of the plan
        it = ring = head = None
        if len(plan) > len(own):
            slots = int(self.loader_kwargs.get("prefetch_factor") or 2) + 1
            ring = _Ring(feed.source, self.num_workers, slots, self.chunk_rows)
            chunks = _Chunks(feed.source, plan, ring, feed._unit_depth)
            it = iter(torch.utils.data.DataLoader(chunks, batch_size=None, num_workers=self.num_workers,
                                                  **self.loader_kwargs))
        try:
            head = feed._rows(unit_tasks(np.concatenate(own), feed.source.bounds)) if own else iter(())
            blocks = head if it is None else itertools.chain(head, _in_order(it, ring, len(own), len(plan)))
            yield from feed._counted_batches(blocks, local)
        finally:
            if own:
                head.close()  # its decode-ahead thread
            if ring is not None:
                ring.closed()
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:  # stop the workers now, not at garbage collection
                shutdown()
        feed._end_pass()


class _Ring:
    """Per worker, `slots` shared-memory slots of one chunk of raw (tokens, domains) rows, made
    once per pass: a worker writes chunk m into slot m % slots after this process has copied
    chunk m - slots out (`released`), and hands over only the slot's number. New shared memory
    per hand-over costs ~3 ms per segment on a VM; a reused slot costs a memcpy."""

    def __init__(self, source: Any, workers: int, slots: int, rows: int) -> None:
        self.seq_len, self.slots = source.seq_len, slots
        self.dtypes = (source.dtypes[0], source.dtypes[1] if source.with_domains else None)
        per_row = sum(d.itemsize for d in self.dtypes if d is not None) * source.seq_len
        self.buffer = torch.empty((workers, slots, rows * per_row), dtype=torch.uint8).share_memory_()
        self.released = torch.zeros(workers + 1, dtype=torch.int64).share_memory_()  # [-1]: closed

    def views(self, worker: int, slot: int, rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(tokens, domains) [rows, seq_len] views of one slot."""
        raw, out, at = self.buffer.numpy()[worker, slot], [], 0
        for dtype in self.dtypes:
            if dtype is None:
                out.append(None)
                continue
            n = rows * self.seq_len * dtype.itemsize
            out.append(raw[at:at + n].view(dtype).reshape(rows, self.seq_len))
            at += n
        return out[0], out[1]

    def wait(self, worker: int, item: int) -> bool:
        """Until chunk `item - slots` of `worker` is copied out; False when the reader stopped."""
        released = self.released.numpy()
        while released[worker] < item - self.slots + 1:
            if released[-1]:
                return False
            time.sleep(0.0002)
        return not released[-1]

    def closed(self) -> None:
        self.released[-1] = 1


def _in_order(items: Iterator[dict[str, int]], ring: _Ring, first: int, count: int
              ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """The workers' chunks `first`.. `count - 1`, copied out of their slots as they arrive, in
    stream order."""
    pending: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    released = ring.released.numpy()
    want = first
    for item in items:
        tokens, domains = ring.views(item["worker"], item["slot"], item["rows"])
        pending[item["chunk"]] = (tokens.copy(), None if domains is None else domains.copy())
        released[item["worker"]] += 1
        while want in pending:
            yield pending.pop(want)
            want += 1
    if want != count:
        raise MixerError(f"stream loader: the workers delivered {want} of {count} chunks in order; "
                         "a worker ended early")


class _Chunks(torch.utils.data.IterableDataset):
    """What each DataLoader worker runs: its parts of the plan, decoded a shard ahead on a
    thread, each chunk copied into its next ring slot."""

    def __init__(self, source: Any, plan: list[tuple[int, int, np.ndarray]], ring: _Ring, depth: int) -> None:
        self.source, self.plan, self.ring, self.depth = source, plan, ring, depth

    def __iter__(self) -> Iterator[dict[str, int]]:
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        groups: list[tuple[int, list[tuple[int, int]]]] = []  # (unit, [(chunk, rows)])
        runs: list[list[np.ndarray]] = []
        for k, (w, unit, chunk_runs) in enumerate(self.plan):
            if w != worker:
                continue
            if not groups or groups[-1][0] != unit:
                groups.append((unit, []))
                runs.append([])
            groups[-1][1].append((k, int(chunk_runs[:, 1].sum())))
            runs[-1].append(chunk_runs)
        tasks = [(unit, merge_runs(np.concatenate(r))) for (unit, _), r in zip(groups, runs)]
        read_order = getattr(self.source, "read_order", None)  # a shard cache prefetches along it
        if read_order is not None:
            read_order([unit for unit, _ in tasks])
        units = read_ahead(lambda task: list(self.source.read(*task)), tasks, depth=self.depth)
        item = 0
        try:
            for (_, chunks), pieces in zip(groups, units):
                rows = _Rows(pieces)
                for k, n in chunks:
                    if not self.ring.wait(worker, item):
                        return
                    slot = item % self.ring.slots
                    rows.take(*self.ring.views(worker, slot, n))
                    yield {"chunk": k, "worker": worker, "slot": slot, "rows": n}
                    item += 1
        finally:
            units.close()


class _Rows:
    """Consecutive rows of a unit's (tokens, domains) run pieces, copied out in order."""

    def __init__(self, pieces: list[tuple[np.ndarray, np.ndarray | None]]) -> None:
        self.pieces, self.at, self.row = pieces, 0, 0  # piece index, row in it

    def take(self, tokens_out: np.ndarray, domains_out: np.ndarray | None) -> None:
        n, done = len(tokens_out), 0
        while done < n:
            tokens, domains = self.pieces[self.at]
            k = min(n - done, len(tokens) - self.row)
            tokens_out[done:done + k] = tokens[self.row:self.row + k]
            if domains_out is not None:
                domains_out[done:done + k] = domains[self.row:self.row + k]
            done, self.row = done + k, self.row + k
            if self.row == len(tokens):
                self.at, self.row = self.at + 1, 0
