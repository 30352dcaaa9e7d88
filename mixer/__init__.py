"""mixer: data preparation, the mixture sampler, shards and streams (see docs/architecture.md).

The package holds every part, in layers that import only downwards (pyproject.toml's contract):
kernels, core <- formats <- prepare, shards <- stream <- trainers, solver <- loop <- cli.
"""
from __future__ import annotations

from mixer.core.errors import MixerError
from mixer.core.version import __version__

__all__ = ["MixerError", "MixtureStream", "MixtureSampler", "MixtureCollator", "__version__"]


def __getattr__(name: str):
    # Imported on first use, so `import mixer` stays light (no torch) for the CLI and the solver.
    # Plain imports, so the import graph (and its layer contract) sees them.
    if name == "MixtureStream":
        from mixer.stream.stream import MixtureStream

        return MixtureStream
    if name == "MixtureSampler":
        from mixer.stream.sampler import MixtureSampler

        return MixtureSampler
    if name == "MixtureCollator":
        from mixer.stream.collate import MixtureCollator

        return MixtureCollator
    raise AttributeError(f"module 'mixer' has no attribute {name!r}")
