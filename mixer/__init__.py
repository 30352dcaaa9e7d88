"""mixer: data preparation, the mixture sampler, shards and streams (see docs/architecture.md)."""
from mixer.errors import MixerError

__all__ = ["MixerError"]
__version__ = "0.1.0"
