"""Proxy runs as Ray tasks: one task per run, one GPU each where the cluster has GPUs.

    backend = RayBackend("local", num_cpus=2)   # starts a local cluster (no dashboard)
    backend = RayBackend("auto")                # joins the running cluster (`ray start --head`)
    backend = RayBackend("ray://head:10001")    # or one at an address
    for spec, files in backend(specs): ...      # yields runs as they finish, any order

A task returns the finished run's files as bytes (`mixer.loop.runner.execute`); the driver commits
them to the cache, so workers need the corpus at the same path but no shared output folder.
Each task fixes its torch thread count (`TrainSpec.threads`) and asks Ray for that many CPUs,
so a 2-CPU local cluster runs two single-thread runs at once and gets the same losses, bit for
bit, as a sequential sweep. Ray is an optional dependency (`pip install "ray[default]"`).
Connecting (local / auto / an address) is `mixer.core.cluster.connect`, which `prepare --ray` and
`build-shards --ray` share.
"""
from __future__ import annotations

from typing import Iterator, Sequence

from mixer.core.cluster import connect, ray_module, reraise_task_error
from mixer.loop.runner import RunSpec


def _remote_execute(spec: RunSpec) -> tuple[RunSpec, dict[str, bytes]]:
    from mixer.loop.runner import execute

    return spec, execute(spec)


class RayBackend:
    """Callable backend for `mixer.loop.sweep.run_all`; connects on first use, disconnects when done."""

    def __init__(self, address: str = "local", *, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus

    def __call__(self, specs: Sequence[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, bytes]]]:
        if not specs:
            return
        ray = ray_module()
        started = connect(self.address, self.num_cpus)
        try:
            gpus = ray.cluster_resources().get("GPU", 0) > 0
            pending = []
            for spec in specs:
                # One GPU per run where there are GPUs (the trainer picks cuda); else its CPU threads.
                opts = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": spec.train.threads}
                task = ray.remote(max_retries=1, **opts)(_remote_execute)
                pending.append(task.remote(spec))
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                try:
                    yield ray.get(ready[0])
                except ray.exceptions.RayTaskError as exc:
                    reraise_task_error(exc)
        finally:
            if started:
                ray.shutdown()
