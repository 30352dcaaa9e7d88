"""Ray plumbing every distributed command shares: connect (local / auto / address), run tasks.

    cluster = ClusterConfig("local", num_cpus=2)         # or "auto", or "ray://head:10001"
    with connected(cluster):                              # starts or joins; shuts down what it started
        for i, result in run_tasks(fn, [(a,), (b,)], cluster):
            ...                                           # as tasks finish, any order; i is the task's index

`mixer loop --ray`, `mixer prepare --ray` and `mixer build-shards --ray` all connect here, so
their options mean the same thing. A task that raises `MixerError` (one line naming the bad
file and the fix) re-raises the same `MixerError` on the driver, so a bad input on a worker is
the same one-line error and exit code 2 as on one machine. With `cluster=None` the same tasks
run one after another in this process (no Ray needed), which tests and small inputs use.

Ray is an optional dependency (`pip install "ray[default]"`) and is imported only here, on use.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from mixer.core.errors import MixerError


@dataclass(frozen=True)
class ClusterConfig:
    """Where tasks run; none of these change an output's bytes."""

    address: str = "local"  # "local": start a cluster on this machine; "auto": join the running one; or an address
    num_cpus: int | None = None  # CPUs of a "local" cluster (None: all of this machine's)
    # True: the output's parent folder is visible at the same path on every node, so tasks write
    # their results there themselves and return only a small record; False: tasks return their bytes
    # and the driver writes them (workers then need no shared output folder, only the inputs).
    shared_fs: bool = False
    task_bytes: int = 64 << 20  # source bytes per `prepare` task (whole files; a larger file is one task)
    max_in_flight: int | None = None  # tasks submitted but not yet collected (None: 2 per cluster CPU)


def ray_module():
    try:
        import ray
    except ImportError:
        raise MixerError("--ray needs Ray: pip install 'ray[default]' (or drop --ray to run on this machine)") from None
    return ray


def connect(address: str = "local", num_cpus: int | None = None) -> bool:
    """Start or join a Ray cluster unless this process is already connected; returns whether
    this call connected (and so must call `ray.shutdown()`)."""
    ray = ray_module()
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local cluster" if address == "local" else f"the Ray cluster at {address!r}"
        raise MixerError(f"--ray {address}: cannot start or join {where} ({str(exc).splitlines()[0]}); "
                         "use --ray local, start one with `ray start --head`, or drop --ray") from None
    return True


@contextlib.contextmanager
def connected(cluster: ClusterConfig | None) -> Iterator[Any]:
    """Yield the `ray` module connected as `cluster` says (None: yield None, nothing started)."""
    if cluster is None:
        yield None
        return
    started = connect(cluster.address, cluster.num_cpus)
    ray = ray_module()
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def lost_task(i: int, n: int, exc: BaseException) -> str:
    """The one line for task i of n that did not finish because Ray lost it (its worker process
    died, killed for memory or by a crash, twice, as Ray retries it once; its node died; its
    result was lost), rather than a traceback of Ray's: what happened and what to do."""
    what = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"task {i + 1} of {n} did not finish on the Ray cluster ({type(exc).__name__}"
            f"{': ' + what if what else ''}); the tasks that finished are kept, so running the same command "
            "again redoes only the rest; if a worker ran out of memory, give the workers more memory or smaller tasks "
            "(prepare --task-mb, build-shards --shard-tokens)")


def reraise_task_error(exc: BaseException) -> None:
    """A task's `MixerError` becomes the driver's own (same one line); anything else propagates."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, MixerError):
        raise cause from None
    raise exc


STOP_ENV = "MIXER_STOP_AFTER_TASKS"


def stop_for_tests(committed: int) -> None:
    """Interrupt (as Ctrl-C would) once `committed` tasks were committed in this run, when the
    environment sets MIXER_STOP_AFTER_TASKS to that number: how tests kill a run half-way at
    a known point, then check that running it again redoes only the unfinished tasks."""
    limit = os.environ.get(STOP_ENV)
    if limit and committed >= int(limit):
        raise KeyboardInterrupt(f"{STOP_ENV}={limit}: stopped after {committed} committed tasks")


def run_tasks(fn: Callable[..., Any], args: Sequence[tuple], cluster: ClusterConfig | None, *,
              num_cpus: float = 1, num_gpus: float = 0) -> Iterator[tuple[int, Any]]:
    """Run `fn(*args[i])` for every i; yield `(i, result)` as tasks finish (in index order when
    `cluster` is None). At most `max_in_flight` tasks are outstanding, so results that are not
    yet collected never fill the object store.

    Stopping the iteration early (an error, Ctrl-C, a `break`) leaves the tasks in flight, at
    most `max_in_flight`, to finish on their own; their results are dropped with their
    references, and a process that exits takes its job's tasks with it. They are not
    `ray.cancel`led: in Ray 2.60 a cancel that meets the task's completion aborts the whole
    driver process (a failed RAY_CHECK in the core worker's task manager, "Tried to complete task
    that was not pending"), which struck a test of a run stopped half-way; with the cancel,
    `tests/test_cluster_stop.py` (300 runs of small tasks stopped early, 2 CPUs) died 4 of 4 times."""
    if cluster is None:
        for i, a in enumerate(args):
            yield i, fn(*a)
        return
    ray = ray_module()
    if not args:
        return
    remote = ray.remote(max_retries=1, num_cpus=num_cpus, **({"num_gpus": num_gpus} if num_gpus else {}))(fn)
    limit = cluster.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict[Any, int] = {}  # (dropped with the generator when it stops: nothing is cancelled)
    nxt = 0
    while nxt < len(args) or pending:
        while nxt < len(args) and len(pending) < limit:
            pending[remote.remote(*args[nxt])] = nxt
            nxt += 1
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except ray.exceptions.RayTaskError as exc:
            reraise_task_error(exc)
        except ray.exceptions.RayError as exc:  # the task raised nothing: its worker or node died
            raise MixerError(lost_task(i, len(args), exc)) from None
        yield i, result
