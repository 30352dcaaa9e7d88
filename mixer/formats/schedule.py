"""`schedule.json`: a mixture that changes as training grows, its one writer (`save_schedule`) and
one reader (`load_schedule`). It sits beside `weights.json`, which holds one mixture for a whole run.

    {"format_version": 1, "method": "autoscale",
     "stages": [
       {"until_tokens": 1000000, "weights": {"code": 0.31, "news": 0.69},
        "intervals": {"code": [0.22, 0.40], "news": [0.60, 0.78]}},       # 95 %, where the fit has them
       {"until_tokens": 2000000, "weights": {"code": 0.36, "news": 0.64}, "intervals": {}},
       ...],
     "provenance": {...}}

Stage `k` covers the tokens from the previous stage's `until_tokens` (0 for the first) up to its
own: a run reads `weights` of stage 0 for its first `until_tokens[0]` tokens, then those of stage
1, and so on; the last `until_tokens` is the schedule's whole budget. Every stage's weights are a
mixture (`mixer.formats.weights.validate_weights`) over the same domains. A schedule with one stage
is one fixed mixture. The AutoScale curve turns into stages in `mixer.solver.schedule`; the plan
that follows one is `mixer.shards.plan.build_schedule_plan`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixer.core.atomic import write_json_atomic
from mixer.core.errors import MixerError
from mixer.core.jsonio import read_json_object
from mixer.formats.weights import validate_weights

FORMAT_VERSION = 1
NAME = "schedule.json"


@dataclass(frozen=True)
class ScheduleStage:
    """Tokens up to `until_tokens` (counted from the start of the run) are drawn at `weights`."""

    until_tokens: int
    weights: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95 %, where known

    def to_json(self) -> dict[str, Any]:
        return {"until_tokens": self.until_tokens, "weights": dict(self.weights),
                "intervals": {d: [float(lo), float(hi)] for d, (lo, hi) in self.intervals.items()}}


@dataclass(frozen=True)
class MixtureSchedule:
    """Stages in training order; build one with `make_schedule`, which checks it."""

    stages: tuple[ScheduleStage, ...]
    method: str = "manual"
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def budget_tokens(self) -> int:
        return self.stages[-1].until_tokens

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted(self.stages[0].weights))

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "method": self.method,
                "stages": [s.to_json() for s in self.stages], "provenance": dict(self.provenance)}


def _until(value: Any, k: int, previous: int, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value:
        raise MixerError(f"{source}: stages[{k}].until_tokens is {value!r}; give a whole number of tokens")
    value = int(value)
    if value <= previous:
        raise MixerError(f"{source}: stages[{k}].until_tokens {value} is not above the previous stage's {previous}; "
                         "list stages in training order with increasing until_tokens")
    return value


def _intervals(obj: Any, k: int, source: str) -> dict[str, tuple[float, float]]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping) or any(
            not isinstance(v, (list, tuple)) or len(v) != 2 or any(isinstance(x, (str, bool)) for x in v)
            for v in obj.values()):
        raise MixerError(f"{source}: stages[{k}].intervals must map each domain to [low, high]")
    return {str(d): (float(v[0]), float(v[1])) for d, v in obj.items()}


def make_schedule(stages: Sequence[tuple[int, Mapping[str, float]] | Mapping[str, Any] | ScheduleStage], *,
                  method: str = "manual", provenance: Mapping[str, Any] | None = None,
                  source: str = "schedule") -> MixtureSchedule:
    """A checked schedule from `[(until_tokens, weights), ...]`, stage objects or their JSON form.
    One-line `MixerError`s name the stage at fault: no stages, until_tokens not increasing whole
    numbers, weights off the simplex, or a stage naming other domains than the first."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise MixerError(f"{source}: no stages; give a list of {{\"until_tokens\": N, \"weights\": {{...}}}}")
    out: list[ScheduleStage] = []
    previous = 0
    for k, s in enumerate(stages):
        if isinstance(s, ScheduleStage):
            until, weights, intervals = s.until_tokens, s.weights, s.intervals
        elif isinstance(s, Mapping):
            if "until_tokens" not in s or not isinstance(s.get("weights"), Mapping):
                raise MixerError(f"{source}: stages[{k}] needs \"until_tokens\" and a \"weights\" object")
            until, weights, intervals = s["until_tokens"], s["weights"], s.get("intervals")
        elif isinstance(s, (tuple, list)) and len(s) == 2 and isinstance(s[1], Mapping):
            until, weights, intervals = s[0], s[1], None
        else:
            raise MixerError(f"{source}: stages[{k}] is {s!r}; expected (until_tokens, {{domain: weight}})")
        previous = _until(until, k, previous, source)
        w = validate_weights(weights, source=f"{source}: stages[{k}]")
        if out and set(w) != set(out[0].weights):
            odd = min(set(w) ^ set(out[0].weights))
            raise MixerError(f"{source}: stages[{k}] and stages[0] differ in domain {odd!r}; "
                             "name the same domains in every stage (weight 0 is allowed)")
        out.append(ScheduleStage(until_tokens=previous, weights=w, intervals=_intervals(intervals, k, source)))
    return MixtureSchedule(stages=tuple(out), method=str(method), provenance=dict(provenance or {}))


def load_schedule(path: str | Path) -> MixtureSchedule:
    path = Path(path)
    obj = read_json_object(path, "schedule file", "pass a file written by `mixer loop autoscale` or by hand "
                           "({\"format_version\": 1, \"stages\": [...]})")
    version = obj.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise MixerError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION}); "
                         "rewrite it with this version of mixer")
    if not isinstance(obj.get("stages"), list):
        raise MixerError(f"{path}: missing the 'stages' list; expected "
                         "{\"stages\": [{\"until_tokens\": N, \"weights\": {...}}, ...]}")
    return make_schedule(obj["stages"], method=str(obj.get("method", "manual")),
                         provenance=dict(obj.get("provenance") or {}), source=str(path))


def save_schedule(path: str | Path, schedule: MixtureSchedule) -> None:
    make_schedule(schedule.stages, source=str(path))  # the same checks as the reader
    write_json_atomic(path, schedule.to_json())
