"""Human token counts: `30M`, `1.2B`, `512k`, `2e6`, and binary `32Mi` (= 2**25)."""
from __future__ import annotations

from mixer.core.errors import MixerError

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_BINARY = {"KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}


def parse_count(text: str | int, what: str = "--tokens") -> int:
    """Parse a positive count with an optional K/M/B/T suffix; exact for integral results."""
    if isinstance(text, int):
        value = text
    else:
        s = str(text).strip().upper().replace("_", "").replace(",", "")
        if s[-2:] in _BINARY:
            number, factor = s[:-2], _BINARY[s[-2:]]
        else:
            suffix = s[-1] if s and s[-1] in _SUFFIX else ""
            number, factor = s[: len(s) - len(suffix)], _SUFFIX[suffix]
        try:
            scaled = float(number) * factor
        except ValueError:
            raise MixerError(f"{what} {text!r}: not a count; use e.g. 30M, 1.2B or 2000000") from None
        if scaled != int(scaled):
            raise MixerError(f"{what} {text!r}: not a whole number of tokens")
        value = int(scaled)
    if value <= 0:
        raise MixerError(f"{what} {text!r}: must be positive")
    return value


def format_count(n: int | float) -> str:
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:g}"
