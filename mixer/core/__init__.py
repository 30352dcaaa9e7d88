"""Shared plumbing of every layer: `MixerError`, atomic writes, JSON reading, token counts."""
