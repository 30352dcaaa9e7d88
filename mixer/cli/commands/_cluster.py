"""Options `mixer prepare` and `mixer build-shards` share for running on a Ray cluster (one
definition, so the two commands cannot drift apart; `mixer loop --ray` means the same)."""
from __future__ import annotations

from typing import Callable

import click

from mixer.cli.commands._options import ray_option


def cluster_options(*, task_mb: bool = False, local: str) -> Callable:
    """Decorator adding --ray, --ray-cpus, --shared-fs (and --task-mb for prepare); `local` names
    the command's own option for parallelism on this machine, which --ray replaces."""
    opts = [
        ray_option(f"the work (same output bytes; an interrupted run resumes; {local} is then unused: each task "
                   "takes one Ray CPU; docs/scaling.md)"),
        click.option("--ray-cpus", type=int, default=None, help="CPUs of a --ray local cluster (default: all)."),
        click.option("--shared-fs", is_flag=True,
                     help="With --ray: the output's folder is visible at the same path on every node, so tasks write "
                          "their results there instead of sending them to this process."),
    ]
    if task_mb:
        opts.append(click.option("--task-mb", type=float, default=64, show_default=True,
                                 help="With --ray: source megabytes per task (whole files)."))

    def apply(fn: Callable) -> Callable:
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return apply


def cluster_config(ray: str | None, ray_cpus: int | None, shared_fs: bool, task_mb: float | None = None):
    """The `ClusterConfig` the options describe, or None to run on this machine."""
    from mixer.core.cluster import ClusterConfig
    from mixer.core.errors import MixerError

    if ray is None:
        if ray_cpus is not None or shared_fs:
            raise MixerError("--ray-cpus and --shared-fs only apply with --ray local|auto|ADDRESS; "
                             "add --ray or drop them")
        return None
    if ray_cpus is not None and ray_cpus < 1:
        raise MixerError(f"--ray-cpus {ray_cpus}: need at least 1")
    if task_mb is not None and not task_mb > 0:
        raise MixerError(f"--task-mb {task_mb}: must be positive")
    kw = {} if task_mb is None else {"task_bytes": max(1, int(task_mb * 1e6))}
    return ClusterConfig(address=ray, num_cpus=ray_cpus, shared_fs=shared_fs, **kw)
