"""The one way a rank-split stream goes silently wrong under Hugging Face `Trainer`.

Accelerate (which `Trainer` and `accelerator.prepare` use) splits any IterableDataset over its
processes itself: by default (`dispatch_batches`) process 0 reads the dataset and deals each
batch's rows to the processes; with `dispatch_batches=False` every process reads it and keeps
every n-th batch (`IterableDatasetShard`). A stream that already holds only its rank's share
is then split twice: under torchrun with 2 processes, measured, both processes trained on rank
0's half and rank 1's half was never read (with `dispatch_batches=False` each would read a
quarter). Nothing errs, the loss falls, the mixture is half used.

The fix is the stream of the whole mixture in every process (`rank=0, world_size=1`), which
Accelerate then splits (`tests/test_ddp.py`: disjoint rows, together the stream in order).
`check_not_split_twice` refuses the other case when iteration starts, from the frames that
call it (Accelerate's loaders are in `accelerate.data_loader`; a DataLoader worker forked from
there still has them), so the fix is one line away instead of a silent half.
"""
from __future__ import annotations

import sys

from mixer.core.errors import MixerError

_ACCELERATE_LOADERS = "accelerate.data_loader"
_DEPTH = 64  # frames looked at: Trainer -> accelerate -> torch's DataLoader -> this stream is ~10


def accelerate_processes() -> int:
    """Accelerate's process count when this stream is being read by one of its data loaders
    (frames of `accelerate.data_loader` on the stack), else 0."""
    if _ACCELERATE_LOADERS not in sys.modules:
        return 0
    frame = sys._getframe(1)
    for _ in range(_DEPTH):
        if frame is None:
            return 0
        if frame.f_globals.get("__name__") == _ACCELERATE_LOADERS:
            from accelerate.state import PartialState

            return int(PartialState().num_processes)
        frame = frame.f_back
    return 0


def check_not_split_twice(kind: str, rank: int, world_size: int) -> None:
    """Raise when this rank's share (world_size > 1) is read through Accelerate on several
    processes: Accelerate would split it again and the other ranks' shares never be read."""
    if world_size <= 1:
        return
    processes = accelerate_processes()
    if processes > 1:
        raise MixerError(
            f"{kind} (rank {rank} of {world_size}) is read through Accelerate's data loader (Hugging Face "
            f"Trainer, accelerator.prepare) on {processes} processes: Accelerate deals the dataset's batches to "
            "the processes itself, so this rank's share would be split again and the other ranks' shares never "
            "read; create it with rank=0, world_size=1 (the whole mixture; Accelerate splits it)")
