"""mixer: data preparation, the mixture sampler, shards and streams (see docs/architecture.md)."""
from mixer.core.errors import MixerError

__all__ = ["MixerError", "MixtureStream", "MixtureSampler", "MixtureCollator"]
__version__ = "0.1.0"

_LAZY = {"MixtureStream": "mixer.stream.stream", "MixtureSampler": "mixer.stream.sampler",
         "MixtureCollator": "mixer.stream.collate"}


def __getattr__(name: str):
    # Imported on first use: `import mixer` stays light (no torch) for the CLI and the solver.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixer' has no attribute {name!r}")
