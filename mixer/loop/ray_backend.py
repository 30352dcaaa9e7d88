"""Proxy runs as Ray tasks: one task per run, one GPU each where the cluster has GPUs.

    backend = RayBackend("local", num_cpus=2)   # starts a local cluster (no dashboard)
    backend = RayBackend("auto")                # joins the running cluster (`ray start --head`)
    backend = RayBackend("ray://head:10001")    # or one at an address
    for spec, files in backend(specs): ...      # yields runs as they finish, any order

A task returns the finished run's files as bytes (`mixer.loop.runner.execute`); the driver commits
them to the cache, so workers need the corpus at the same path but no shared output folder. A
corpus given as a URL (`corpus_url`, `--corpus s3://bucket/corpus`) needs not even that: each
task opens the URL, fetched once per node into its own cache (`$MIXER_CACHE/corpora/`, keyed by
the manifest's sha256), and trains from there.
Each task fixes its torch thread count (`TrainSpec.threads`) and asks Ray for that many CPUs,
so a 2-CPU local cluster runs two single-thread runs at once and gets the same losses, bit for
bit, as a sequential sweep. Ray is an optional dependency (`pip install "ray[default]"`).
Connecting (local / auto / an address) is `mixer.core.cluster.connect`, which `prepare --ray` and
`build-shards --ray` share.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator, Sequence

from mixer.core.cluster import ClusterConfig, connected, run_tasks
from mixer.loop.runner import RunSpec
from mixer.loop.runner import execute


def _remote_execute(spec: RunSpec, corpus_url: str | None = None) -> tuple[RunSpec, dict[str, bytes]]:
    """Run `spec` on a worker; with `corpus_url`, from this node's copy of the corpus at the URL."""
    run = spec
    if corpus_url is not None:
        from mixer.formats.corpus_handle import Corpus

        corpus = Corpus.open(corpus_url)
        if corpus.sha256 != spec.corpus_sha256:
            from mixer.core.errors import MixerError

            raise MixerError(f"{corpus_url}: its corpus.json changed since the sweep started; run the sweep again")
        run = replace(spec, corpus=str(corpus.folder))
    return spec, execute(run)


class RayBackend:
    """Callable backend for `mixer.loop.sweep.run_all`; connects on first use, disconnects when done."""

    def __init__(self, address: str = "local", *, num_cpus: int | None = None, corpus_url: str | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.corpus_url = corpus_url

    def __call__(self, specs: Sequence[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, bytes]]]:
        if not specs:
            return
        cluster = ClusterConfig(self.address, self.num_cpus)
        with connected(cluster) as ray:
            # One GPU per run where there are GPUs (the trainer picks cuda); else its CPU threads.
            gpus = ray.cluster_resources().get("GPU", 0) > 0
            threads = max(spec.train.threads for spec in specs)  # one sweep: the same for every run
            resources = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": threads}
            for _, result in run_tasks(_remote_execute, [(spec, self.corpus_url) for spec in specs], cluster,
                                       **resources):
                yield result
