"""What `MixtureStream` (shards) and `MixtureSampler` (corpus) share: an IterableDataset over
a *sequence source*, split over ranks and workers (`mixer.stream.partition`), read ahead on a
background thread (`mixer.stream.readahead`), with a resumable position.

A source is anything with `num_sequences`, `seq_len`, `pad_id` (None unless masked LM),
`fingerprint` (names the stream: equal for shards and sampler of the same plan), `bounds`
(int64[U + 1]: read unit u holds sequences bounds[u]..bounds[u+1], e.g. one shard), `dtypes` and
``read(u, runs)``: for global (first, count) runs inside unit u, an iterable of
``(tokens [count, seq_len], domains [count, seq_len] uint8 or uint16)``.

Position and resumption
-----------------------
The state is ``start`` (the rank-local sequence at which this pass's blocks were dealt to
workers) and ``yielded`` (sequences this process has yielded since). It reads the same in
the three places a position can be recorded:

* the main process (``num_workers=0``, e.g. `trainers`): ``state_dict()`` after k batches is
  ``start + yielded = k * batch_size`` sequences consumed by this rank;
* a DataLoader worker under `torchdata.stateful_dataloader.StatefulDataLoader`: each worker's
  copy of the dataset reports its own ``yielded`` with its ``worker`` / ``num_workers``, and
  each copy is restored into the same worker, which skips what it had yielded;
* a plain DataLoader with workers, whose dataset copies the main process cannot see: record
  the number of sequences the rank consumed (``steps * batch_size``) and resume with
  ``load_state_dict({"consumed": n})``; blocks are then dealt afresh from sequence n. The
  main process's ``state_dict()`` raises `MixerError` here (a flag in shared memory tells it
  workers did the reading) rather than report a position of 0.

Elastic: a rank-level state (one with ``consumed``) also loads into a stream with another
world size (or `drop_remainder`), as Mosaic's streaming resumes: the sequences the old ranks
had not consumed (each rank consumed the same count under DDP; any rank's state serves) are
split, in stream order, over the new ranks for the rest of the pass (`partition.remaining_pool`);
the state carries that ``pool``, so a stream can be resized again. The next pass is whole.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import numpy as np
import torch
import xxhash

from mixer.core.errors import MixerError, MixerNote
from mixer.stream.accelerate_split import check_not_split_twice
from mixer.stream.batching import cut_batches
from mixer.stream.partition import (
    check_split,
    rank_range,
    rank_runs,
    remaining_pool,
    to_global,
    unit_tasks,
    worker_runs,
)
from mixer.stream.readahead import read_ahead

STATE_VERSION = 1
PIECE_TOKENS = 1 << 18  # tokens per hand-over from the read-ahead thread (int64: 2 MiB per array)


class SequenceSource(Protocol):
    num_sequences: int
    seq_len: int
    pad_id: int | None
    fingerprint: str
    bounds: np.ndarray
    with_domains: bool  # False: read() returns None for domains
    dtypes: tuple[np.dtype, np.dtype]  # of the (tokens, domains) arrays read() returns

    def read(self, unit: int, runs: np.ndarray): ...


def stream_fingerprint(corpus_sha256: str, objective: str, seq_len: int, seed: int,
                       weights: Mapping[str, float], num_sequences: int, stages: list | None = None) -> str:
    """Names a stream by what decides it, so a saved position is never applied to another.
    `stages`: a schedule's [first_sequence, sequences, [weights in domain order]] per stage (none
    for one mixture, whose fingerprint is unchanged)."""
    head = [corpus_sha256, objective, int(seq_len), int(seed),
            sorted((k, float(v)) for k, v in weights.items()), int(num_sequences)]
    if stages:
        head.append([[int(a), int(n), [float(x) for x in w]] for a, n, w in stages])
    key = json.dumps(head)
    return xxhash.xxh64_hexdigest(key.encode())


def default_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Rank and world size: given, else from an initialised torch.distributed, else from the
    RANK / WORLD_SIZE environment variables (torchrun sets them), else 0 of 1."""
    if rank is not None and world_size is not None:
        return rank, world_size
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        r, w = dist.get_rank(), dist.get_world_size()
    else:
        try:
            r, w = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            raise MixerError(f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}: "
                             "not integers; fix the environment or pass rank= and world_size=") from None
    return (r if rank is None else rank), (w if world_size is None else world_size)


def attention_mask(tokens: np.ndarray, pad_id: int) -> np.ndarray:
    """1 up to and including each row's last non-[PAD] token ([SEP]), 0 on the padding after."""
    nonpad = tokens != pad_id
    last = tokens.shape[1] - 1 - np.argmax(nonpad[:, ::-1], axis=1)
    return (np.arange(tokens.shape[1])[None, :] <= last[:, None]).astype(np.int64)


class MixtureFeed(torch.utils.data.IterableDataset):
    """Base class: yields {"input_ids", "domain_ids"[, "attention_mask"]} int64 [seq_len]
    tensors for this rank's (and worker's) sequences, in stream order."""

    def __init__(self, source: SequenceSource, *, rank: int | None = None, world_size: int | None = None,
                 batch_size: int = 1, drop_remainder: bool = True, read_ahead: int = 2,
                 batched: bool = False, domain_ids: bool = True) -> None:
        rank, world_size = default_rank(rank, world_size)
        check_split(rank, world_size, batch_size)
        self.source = source
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.drop_remainder, self.read_ahead, self.batched = drop_remainder, read_ahead, batched
        # domain_ids=False: a loop that needs no per-domain loss skips the sidecar and its conversion.
        source.with_domains = bool(domain_ids)
        self.first, self.stop = rank_range(source.num_sequences, rank, world_size, drop_remainder)
        # Sequences no rank reads (drop_remainder): said once, so a missing tail is never a surprise.
        self.dropped = source.num_sequences - rank_range(source.num_sequences, world_size - 1, world_size,
                                                         drop_remainder)[1]
        if self.dropped and rank == 0:
            warnings.warn(f"stream: {source.num_sequences} sequences over {world_size} ranks: "
                          f"{self.stop - self.first} each, the last {self.dropped} left out so that every rank "
                          "takes the same number of steps (drop_remainder=False keeps them)", MixerNote, stacklevel=3)
        self._pool = np.array([[0, source.num_sequences]], dtype=np.int64)  # this pass's sequences (elastic)
        self._runs = np.array([[self.first, self.stop - self.first]], dtype=np.int64)  # this rank's share of it
        self.seq_len = source.seq_len
        self.epoch = 0  # completed passes over this rank's sequences
        self._start = 0  # rank-local sequence where this pass's blocks were dealt
        self._yielded = 0  # sequences yielded by this process since `_start`
        self._layout: tuple[int, int] | None = None  # (worker, num_workers) that `_yielded` counts
        # Set (through shared memory) when a DataLoader worker iterates a copy of this dataset:
        # the main process's copy has then consumed nothing and its position would be a lie.
        self._read_by_workers = torch.zeros(1, dtype=torch.uint8).share_memory_()

    def __len__(self) -> int:
        """Items per pass for this rank (all its workers together): sequences, or batches
        when `batched`."""
        n = self._length
        return -(-n // self.batch_size) if self.batched else n

    @property
    def _unit_depth(self) -> int:
        """Read units decoded ahead on a thread; read_ahead=0: none, all on the consumer's thread."""
        return max(1, self.read_ahead - 1) if self.read_ahead > 0 else 0

    @property
    def budget_tokens(self) -> int:
        return self.source.num_sequences * self.seq_len

    def loader(self, num_workers: int = 0, *, stateful: bool = False, **kwargs: Any):
        """The fast way to read this stream: a `StreamLoader` (`mixer.stream.loader`) yielding
        this rank's batches of the stream's `batch_size`, in stream order, the same for any
        `num_workers` and equal to ``DataLoader(stream, batch_size=B)``'s. With 0 workers the
        batches are cut in this process (no DataLoader); with workers each worker decodes
        whole shards of its own and hands over ~1M-token chunks in shared memory, which this
        process cuts into batches. The loader's `state_dict()` is the stream's, exact at any
        `num_workers` (`stateful` is accepted and changes nothing). Keywords: `pin_memory`,
        `collate_fn` (called on each whole batch, e.g. `MixtureCollator()`), the rest go to
        the workers' DataLoader (e.g. `multiprocessing_context`, `timeout`)."""
        from mixer.stream.loader import StreamLoader

        del stateful  # the loader always resumes exactly
        return StreamLoader(self, num_workers, **kwargs)

    # --- position ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The exact position of this copy. Called in the main process after plain DataLoader
        workers read the stream, it raises: only the workers' copies know what they yielded."""
        if self._layout is None and torch.utils.data.get_worker_info() is None and int(self._read_by_workers):
            raise MixerError(
                "stream.state_dict() in the main process after DataLoader workers read the stream: the workers' "
                "positions are not visible here (this copy consumed nothing); iterate with torchdata's "
                "StatefulDataLoader(stream, batch_size=..., num_workers=...) and save loader.state_dict(), or record "
                "steps * batch_size and resume with stream.load_state_dict({'consumed': n})")
        worker, workers = self._layout or (0, 1)
        return {"version": STATE_VERSION, "fingerprint": self.source.fingerprint, "rank": self.rank,
                "world_size": self.world_size, "batch_size": self.batch_size,
                "drop_remainder": self.drop_remainder, "epoch": self.epoch, "start": self._start,
                "yielded": self._yielded, "worker": worker, "num_workers": workers,
                "consumed": self._start + self._yielded if workers == 1 else None, "pool": self._pool.tolist()}

    @property
    def _length(self) -> int:
        """Sequences of this rank in the current pass."""
        return int(self._runs[:, 1].sum())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at the exact next sequence; accepts a `state_dict()` or ``{"consumed": n}``."""
        if set(state) <= {"consumed", "epoch"}:
            n = int(state["consumed"])
            if not 0 <= n <= self._length:
                raise MixerError(f"consumed={n}: this rank has {self._length} sequences in this pass")
            self._start, self._yielded, self._layout = n, 0, None
            self.epoch = int(state.get("epoch", self.epoch))
            self._read_by_workers.zero_()  # the caller's own count is the position now
            return
        if state.get("version") != STATE_VERSION:
            raise MixerError(f"stream state version {state.get('version')!r} is not {STATE_VERSION}; "
                             "it was saved by another version of mixer")
        if state["fingerprint"] != self.source.fingerprint:
            raise MixerError("stream state was saved from another stream (different corpus, weights, seed, "
                             "seq_len or budget); resume with the stream it came from")
        pool = np.array(state.get("pool") or [[0, self.source.num_sequences]], dtype=np.int64).reshape(-1, 2)
        if (state["world_size"], state["drop_remainder"]) != (self.world_size, self.drop_remainder):
            return self._resize(state, pool)
        if state["rank"] != self.rank:
            raise MixerError(f"stream state was saved with rank={state['rank']!r}, this stream has {self.rank!r}; "
                             "resume each rank from its own state")
        self._set_pool(pool)
        workers = int(state["num_workers"])
        if workers > 1 and state["batch_size"] != self.batch_size:
            raise MixerError(f"stream state was saved with batch_size={state['batch_size']}, this stream has "
                             f"{self.batch_size}; resume with the same batch_size")
        self.epoch, self._start, self._yielded = int(state["epoch"]), int(state["start"]), int(state["yielded"])
        self._layout = (int(state["worker"]), workers) if workers > 1 else None

    def _set_pool(self, pool: np.ndarray) -> None:
        self._pool = pool
        self._runs = rank_runs(pool, self.rank, self.world_size, self.drop_remainder)

    def _resize(self, state: Mapping[str, Any], pool: np.ndarray) -> None:
        """Elastic: continue a pass saved with another world size (see the module docstring)."""
        if state.get("consumed") is None:
            raise MixerError(f"stream state was saved by DataLoader worker {state['worker']} of {state['num_workers']} "
                             f"with world_size={state['world_size']}; resuming on world_size={self.world_size} needs "
                             "the rank's position: load {'consumed': steps * batch_size, ...} into the saved state")
        self._set_pool(remaining_pool(pool, int(state["world_size"]), bool(state["drop_remainder"]),
                                      int(state["consumed"])))
        self.epoch, self._start, self._yielded, self._layout = int(state["epoch"]), 0, 0, None
        self._read_by_workers.zero_()

    # --- iteration --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self._iterate(self.batched)

    def _begin_pass(self, layout: tuple[int, int] | None) -> None:
        """Settle the position this pass starts from, for `layout` (worker, num_workers) or the
        main process (None)."""
        if self._layout is None:  # a rank-level position: deal blocks afresh from there
            self._start, self._yielded = self._start + self._yielded, 0
        elif self._layout != layout and self._yielded:
            now = "the main process" if layout is None else f"worker {layout[0]} of {layout[1]}"
            raise MixerError(f"stream state was saved by DataLoader worker {self._layout[0]} of "
                             f"{self._layout[1]} and cannot resume in {now}; use the same num_workers "
                             "(StatefulDataLoader) or load_state_dict({'consumed': n})")
        self._layout = layout

    def _end_pass(self) -> None:
        self.epoch += 1
        self._start, self._yielded, self._layout = 0, 0, None
        if len(self._pool) != 1 or self._pool[0, 1] != self.source.num_sequences:  # a resized pass ends: whole again
            self._set_pool(np.array([[0, self.source.num_sequences]], dtype=np.int64))

    def _counted_batches(self, blocks, local: np.ndarray) -> Iterator[dict[str, torch.Tensor]]:
        """Batches cut from decoded row `blocks` by this pass's runs `local` (their sizes), the
        position advanced by each batch's planned size (no per-batch `len`), for both the
        0-worker path and the loader's workers."""
        sizes = local[:, 1].tolist()
        for size, batch in zip(sizes, cut_batches(blocks, sizes, self._convert)):
            self._yielded += size
            yield batch

    def _iterate(self, batched: bool) -> Iterator[dict[str, torch.Tensor]]:
        check_not_split_twice(type(self).__name__, self.rank, self.world_size)
        info = torch.utils.data.get_worker_info()
        layout = (info.id, info.num_workers) if info is not None and info.num_workers > 1 else None
        self._read_by_workers.fill_(0 if info is None else 1)  # who holds the position: main process or workers
        self._begin_pass(layout)
        worker, workers = layout or (0, 1)
        local = worker_runs(self._length, self._start, self.batch_size, worker, workers, skip=self._yielded)
        runs = to_global(local, self._runs)
        tasks = unit_tasks(runs, self.source.bounds)
        if batched:  # cut batches from the decoded rows, widened per batch: small, reused allocations
            rows = self._rows(tasks)
            try:
                yield from self._counted_batches(rows, local)
            finally:
                rows.close()
        else:
            pieces = read_ahead(self._convert, self._pieces(tasks), depth=self.read_ahead * 2)
            for piece in pieces:
                rows = {k: v.unbind(0) for k, v in piece.items()}
                for i in range(len(rows["input_ids"])):
                    self._yielded += 1
                    yield {k: v[i] for k, v in rows.items()}
        self._end_pass()

    def _rows(self, tasks: list) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Raw (tokens, domains) row blocks of each run, in order, units decoded ahead on a thread."""
        read_order = getattr(self.source, "read_order", None)  # a source that fetches ahead learns the order
        if read_order is not None:
            read_order([unit for unit, _ in tasks])
        units = read_ahead(lambda task: list(self.source.read(*task)), tasks, depth=self._unit_depth)
        try:
            for pieces in units:
                yield from pieces
        finally:
            units.close()

    def _pieces(self, tasks: list) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Raw (tokens, domains) row blocks of at most PIECE_TOKENS."""
        rows = max(1, PIECE_TOKENS // self.seq_len)
        blocks = self._rows(tasks)
        try:
            for tokens, domains in blocks:
                for a in range(0, len(tokens), rows):
                    yield tokens[a:a + rows], None if domains is None else domains[a:a + rows]
        finally:
            blocks.close()

    def _convert(self, piece: tuple[np.ndarray, np.ndarray]) -> dict[str, torch.Tensor]:
        tokens, domains = piece
        out = {"input_ids": torch.from_numpy(tokens.astype(np.int64))}
        if domains is not None:
            out["domain_ids"] = torch.from_numpy(domains.astype(np.int64))
        if self.source.pad_id is not None:
            out["attention_mask"] = torch.from_numpy(attention_mask(tokens, self.source.pad_id))
        return out


def _blocks(pieces: Iterator[dict[str, torch.Tensor]], sizes: list[int]) -> Iterator[dict[str, torch.Tensor]]:
    """Re-cut a stream of row pieces into batches of the given sizes (views where a batch lies
    inside one piece, a copy where it straddles two)."""
    held: list[dict[str, torch.Tensor]] = []
    have = 0
    for size in sizes:
        while have < size:
            piece = next(pieces)
            held.append(piece)
            have += len(piece["input_ids"])
        parts, need = [], size
        while need:
            piece = held[0]
            n = len(piece["input_ids"])
            if n <= need:
                parts.append(held.pop(0))
                need -= n
            else:
                parts.append({k: v[:need] for k, v in piece.items()})
                held[0] = {k: v[need:] for k, v in piece.items()}
                need = 0
        have -= size
        yield parts[0] if len(parts) == 1 else {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
