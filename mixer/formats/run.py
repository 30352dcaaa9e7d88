"""`run.json`: what one training run produced; the one writer (`save_run`, used by the trainers)
and the one reader (`load_run`, used by the solver, the loop and `mixer train`).

Example (abridged)::

    {"format_version": 1, "model": "gpt2", "preset": "small", "seed": 0,
     "corpus_sha256": "9f…", "budget_tokens": 30000000,
     "weights": {"code": 0.25, "news": 0.75},
     "tokens_per_domain": {"code": 7500000, "news": 22500000},   # tokens actually trained on
     "final_loss": {"code": 2.91, "news": 3.40},                  # held-out, mean per token
     "final_perplexity": {"code": 18.4, "news": 30.0},
     "extra_loss": {"ood/pubmed": 3.9},                           # held-out domains never trained on
     "tokens_seen": 30000000, "steps": 3662, "wall_time_s": 5120.3, "tokens_per_s": 5859.0,
     "loss_history": {"code": [7.1, 6.2], …},                     # = curve.train.loss (DoReMi reads it)
     "curve": {"train": {"step": [10, 20], "loss": {"code": [7.1, 6.2], …}},
               "eval": {"step": [500, 3662], "loss": {"code": [3.5, 2.91], …}}},
     "config": {…TrainConfig…}, "provenance": {"mixer_version": "0.1.0", "source": {…}, …}}

`final_loss` names exactly the corpus's domains; every loss is finite; the weights sum to 1.
Read with `RunRecord.from_json(json.load(f))` or `load_run(path)`: a wrong version, a missing or
unknown field, or a bad value is one `MixerError` line naming the file and the field. Unknown
fields are refused rather than ignored: a misspelt field would otherwise be read as absent and
change what the solver fits without a word; a newer writer bumps `FORMAT_VERSION` instead.

Provenance written by the loop (read by `mixer.solver.runs` to group a DDO sweep): `role` ("base" |
"perturbed" | "target" | "random"), `domain` and `factor` of a perturbed run, `total` ("fixed" |
"grown").
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mixer.core.atomic import write_json_atomic
from mixer.core.errors import MixerError
from mixer.core.jsonio import read_json_object

FORMAT_VERSION = 1
RUN_NAME = "run.json"


@dataclass(frozen=True)
class RunRecord:
    format_version: int
    corpus_sha256: str
    budget_tokens: int  # the mixture's token budget N (the stream's); tokens_seen is what was trained
    weights: dict[str, float]  # the mixture the stream was built from
    tokens_per_domain: dict[str, int]  # tokens trained on per domain (counted from domain_ids)
    final_loss: dict[str, float]  # held-out loss per domain at the end
    model: str  # "gpt2" | "bert"
    preset: str
    seed: int
    provenance: dict[str, Any]
    final_perplexity: dict[str, float] = field(default_factory=dict)
    extra_loss: dict[str, float] = field(default_factory=dict)  # out-of-domain held-out sets
    tokens_seen: int = 0  # tokens trained on, all ranks (MLM: real tokens, padding excluded)
    steps: int = 0  # optimiser steps
    wall_time_s: float = 0.0  # training time over all sessions of the run, evaluation excluded
    tokens_per_s: float = 0.0  # tokens_seen / wall_time_s
    curve: dict[str, Any] = field(default_factory=dict)  # {"train"|"eval": {"step": [...], "loss": {d: [...]}}}
    # Training loss per domain at curve["train"]["step"] (null: no tokens of it in that interval).
    loss_history: dict[str, list] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any, source: str = RUN_NAME) -> "RunRecord":
        if not isinstance(obj, dict):
            raise MixerError(f"{source}: not a JSON object; expected a run record written by `mixer train`")
        if obj.get("format_version") != FORMAT_VERSION:
            raise MixerError(f"{source}: format_version {obj.get('format_version')!r} is not supported "
                             f"(expected {FORMAT_VERSION}); re-run the training with this version of mixer")
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in obj]
        if missing:
            raise MixerError(f"{source}: missing field {missing[0]!r}; the file is not a complete run record")
        unknown = sorted(set(obj) - names)
        if unknown:
            raise MixerError(f"{source}: unknown field {unknown[0]!r}; was it written by a newer mixer?")
        rec = cls(**obj)
        rec.validate(source)
        return rec

    def validate(self, source: str = RUN_NAME) -> None:
        def fail(what: str) -> MixerError:
            return MixerError(f"{source}: {what}")

        for k, t in (("corpus_sha256", str), ("model", str), ("preset", str), ("budget_tokens", int), ("seed", int),
                     ("tokens_seen", int), ("steps", int), ("provenance", dict), ("curve", dict),
                     ("loss_history", dict), ("config", dict)):
            v = getattr(self, k)
            if not isinstance(v, t) or isinstance(v, bool):
                raise fail(f"field {k!r} is {v!r}, not a {t.__name__}")
        if len(self.corpus_sha256) != 64:
            raise fail(f"corpus_sha256 {self.corpus_sha256!r} is not a sha256 hex digest")
        for k in ("weights", "tokens_per_domain", "final_loss", "final_perplexity", "extra_loss"):
            d = getattr(self, k)
            if not isinstance(d, dict):
                raise fail(f"field {k!r} is not an object of domain -> number")
            for dom, v in d.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise fail(f"{k} of domain {dom!r} is {v!r}; expected a finite non-negative number")
        if not self.final_loss:
            raise fail("final_loss is empty; the run ended before its final evaluation")
        for k in ("weights", "tokens_per_domain"):
            extra = sorted(set(getattr(self, k)) - set(self.final_loss))
            if extra:
                raise fail(f"{k} names domain {extra[0]!r}, which has no final_loss")
        if abs(math.fsum(self.weights.values()) - 1.0) > 1e-6:
            raise fail(f"weights sum to {math.fsum(self.weights.values())}, not 1")


def save_run(path: str | Path, record: RunRecord) -> None:
    record.validate(str(path))
    write_json_atomic(path, record.to_json())


def load_run(path: str | Path) -> RunRecord:
    path = Path(path)
    obj = read_json_object(path, "run file", "pass run.json files written by `mixer train`, or folders holding them")
    return RunRecord.from_json(obj, source=str(path))
