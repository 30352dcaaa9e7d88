"""`weights.json`: the mixture, the file that the solver writes and the mixer reads (its one
writer, `save_weights`, and one reader, `load_weights`).

    {"format_version": 1, "weights": {"news": 0.25, "code": 0.75}, "method": "ddo",
     "budget_tokens": 30000000,
     "intervals": {"news": [0.18, 0.31], "code": [0.69, 0.82]},      # 95 %, where the method gives one
     "verdict": "supported", "reasons": [],                          # or "unsupported" and why
     "provenance": {...}}

Weights are numbers (not strings), non-negative, sum to 1 within 1e-9 and name only domains of
the corpus. A map may name a subset of the corpus's domains, as Megatron's blend and Hugging
Face's `interleave_datasets` take one: the domains it leaves out get weight 0, with a
`WeightNote` warning that names them (the CLI prints it as a `note:` line). `provenance` holds what the method knows: the runs, the fits, `intervals`
({domain: [2.5 %, 97.5 %]}) and `interval_method`. The writer always records `format_version`;
the reader also takes a hand-written file without one (a mixture typed by a person is version
1) and refuses any other version.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from mixer.core.atomic import write_json_atomic
from mixer.core.errors import MixerError, MixerNote, listed
from mixer.core.jsonio import read_json_object

SIMPLEX_TOL = 1e-9
FORMAT_VERSION = 1


class WeightNote(MixerNote):
    """Something about a mixture the user should see but that is not an error (domains left out
    of a weight map, which get weight 0)."""


@dataclass(frozen=True)
class MixtureWeights:
    weights: dict[str, float]
    method: str = "manual"
    budget_tokens: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)  # {domain: [2.5 %, 97.5 %]}
    verdict: str | None = None  # "supported" | "unsupported" | None (not judged)
    reasons: list[str] = field(default_factory=list)  # why unsupported

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, **asdict(self)}


def validate_weights(weights: Mapping[str, float], domains: Iterable[str] | None = None,
                     source: str = "weights", require_all: bool = False) -> dict[str, float]:
    """Check a mixture; return it as plain floats. Errors say which domain or sum is wrong.
    With `domains`, those the map leaves out get weight 0 (a `WeightNote` names them), unless
    `require_all`."""
    out: dict[str, float] = {}
    for name, w in weights.items():
        if isinstance(w, (str, bytes, bool)):   # "0.6" in a JSON file is a typo'd number, not a weight
            raise MixerError(f"{source}: weight of domain {name!r} is {w!r}, not a number; write it without quotes")
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise MixerError(f"{source}: weight of domain {name!r} is {w!r}, not a number") from None
        if not math.isfinite(w) or w < 0:
            raise MixerError(f"{source}: weight of domain {name!r} is {w}; weights must be finite and >= 0")
        out[str(name)] = w
    if not out:
        raise MixerError(f"{source}: no weights given; name at least one domain")
    if domains is not None:
        known = set(domains)
        unknown = sorted(set(out) - known)
        if unknown:
            raise MixerError(f"{source}: unknown domain {unknown[0]!r}; the corpus has: {listed(sorted(known))}")
        missing = sorted(known - set(out))
        if require_all and missing:
            raise MixerError(f"{source}: no weight for domain {missing[0]!r}; give every corpus domain a weight (0 is allowed)")
        if missing:
            shown = ", ".join(repr(m) for m in missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            warnings.warn(f"{source}: no weight for domain{'s' if len(missing) > 1 else ''} {shown}: "
                          "weight 0 (not sampled)", WeightNote, stacklevel=2)
            out.update({m: 0.0 for m in missing})
    total = math.fsum(out.values())
    if abs(total - 1.0) > SIMPLEX_TOL:
        fix = " or pass --normalize" if source == "--weight" else ""
        raise MixerError(f"{source}: weights sum to {total!r}, not 1 (within {SIMPLEX_TOL}); normalise them{fix}")
    return out


def load_weights(path: str | Path, domains: Iterable[str] | None = None) -> MixtureWeights:
    path = Path(path)
    obj = read_json_object(path, "weights file", "pass a file written by `mixer solve` or use --weight dom=w")
    version = obj.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise MixerError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION}); "
                         "re-solve with this version of mixer")
    if not isinstance(obj.get("weights"), dict):
        raise MixerError(f"{path}: missing the 'weights' object; expected {{\"weights\": {{\"domain\": w, ...}}}}")
    weights = validate_weights(obj["weights"], domains, source=str(path))
    budget = obj.get("budget_tokens")
    verdict = obj.get("verdict")
    if verdict not in (None, "supported", "unsupported"):
        raise MixerError(f"{path}: verdict {verdict!r}; expected \"supported\" or \"unsupported\"")
    intervals = obj.get("intervals") or {}
    if not isinstance(intervals, dict) or any(not isinstance(v, list) or len(v) != 2 for v in intervals.values()):
        raise MixerError(f"{path}: intervals must map each domain to [low, high]")
    return MixtureWeights(weights=weights, method=str(obj.get("method", "manual")),
                          budget_tokens=int(budget) if budget is not None else None,
                          provenance=dict(obj.get("provenance") or {}),
                          intervals={str(d): [float(v[0]), float(v[1])] for d, v in intervals.items()},
                          verdict=verdict, reasons=[str(r) for r in obj.get("reasons") or []])


def save_weights(path: str | Path, mixture: MixtureWeights) -> None:
    validate_weights(mixture.weights, source=str(path))
    write_json_atomic(path, mixture.to_json())


ROUNDING_TOL = 0.01  # typed weights that sum to 1 within this are rounded shares (3 x 0.333), not a mistake


def parse_weight_options(pairs: Iterable[str], normalize: bool = False) -> dict[str, float]:
    """`["news=0.3", "code=0.7"]` -> dict; used by every command taking `--weight dom=w`.

    Typed shares are rounded (`--weight a=0.333` three times sums to 0.999): a sum within
    ROUNDING_TOL of 1 is normalised with a `WeightNote` saying so; `normalize` (`--normalize`)
    scales any positive sum (e.g. `a=1 b=3`). Other sums are left for `validate_weights` to refuse."""
    out = _parse_pairs(pairs)
    total = math.fsum(out.values())
    if total > 0 and math.isfinite(total) and abs(total - 1.0) > SIMPLEX_TOL and all(w >= 0 for w in out.values()) \
            and (normalize or abs(total - 1.0) <= ROUNDING_TOL):
        out = {name: w / total for name, w in out.items()}
        warnings.warn(f"--weight: the weights sum to {total:.6g}; normalised to sum to 1 "
                      f"({', '.join(f'{n}={w:.6g}' for n, w in out.items())})", WeightNote, stacklevel=2)
    return out


def _parse_pairs(pairs: Iterable[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise MixerError(f"--weight {pair!r}: expected DOMAIN=WEIGHT, e.g. news=0.25")
        if name in out:
            raise MixerError(f"--weight {pair!r}: domain {name!r} is given twice (also --weight {name}={out[name]:g}); "
                             "give each domain one --weight")
        try:
            out[name] = float(value)
        except ValueError:
            raise MixerError(f"--weight {pair!r}: {value!r} is not a number") from None
    return out
