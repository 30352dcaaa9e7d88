"""Run a producer ahead of its consumer on a background thread.

    for chunk in read_ahead(load, tasks, depth=2):   # load(task) runs on a thread, 2 ahead
        ...

The reader uses it so decompression (zstd and NumPy release the GIL) and the corpus gather
(a numba kernel without the GIL) overlap the training loop. An exception in `load` is
re-raised in the consumer at the item where it happened; closing the generator (a `break`,
garbage collection) stops the thread.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()


def read_ahead(load: Callable[[T], R], tasks: Iterable[T], depth: int = 2) -> Iterator[R]:
    """Yield load(task) for every task in order, computing up to `depth` results ahead."""
    if depth < 1:
        yield from map(load, tasks)
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for task in tasks:
                if stop.is_set() or not put((True, load(task))):
                    return
        except BaseException as exc:  # handed to the consumer, re-raised there
            put((False, exc))
            return
        put((True, _END))

    thread = threading.Thread(target=work, name="mixer-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = q.get()
            if not ok:
                raise value
            if value is _END:
                return
            yield value
    finally:
        stop.set()
        thread.join()
        close = getattr(tasks, "close", None)  # a generator of tasks: run its cleanup now
        if close is not None:
            close()
