"""Fault injection: flip one byte of one file of a corpus or shards folder, read it back as a
user would, and classify what happened. Used by `tests/test_faults.py`; runnable on its own
(`python tests/faults.py SPEC.json`) so a crash (a signal) kills only this process, not pytest.

Every trial works on a fresh copy. A read's outcome is one of:
- ``same``: the output is byte-identical to the undamaged folder's (the byte did not matter
  to this reader, e.g. a held-out part for the sampler, or whitespace in a JSON file);
- ``named``: a `MixerError` (exit 2 for the CLI) whose one line names the damaged file;
- ``misnamed``: a `MixerError` that names some other file;
- ``silent``: different output and no error (wrong tokens, wrong table);
- ``crash``: any other exception (a traceback), or the process dying (seen by the caller).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

SEQ_LEN, TOKENS, SHARD_TOKENS = 64, 4096, 1024
READERS = {"corpus": ("sampler", "build", "verify"), "tokenizer": ("sampler", "build", "verify", "sample"),
           "manifest": ("sampler", "build", "verify", "sample"), "shards": ("stream", "inspect", "verify")}


def kind_of(rel: str) -> str:
    if rel.endswith(".arrow"):
        return "corpus"
    if rel == "tokenizer.json":
        return "tokenizer"
    if rel == "corpus.json":
        return "manifest"
    return "shards"


def _digest_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _tensor_digest(batches) -> str:
    h = hashlib.sha256()
    for b in batches:
        for k in sorted(b):
            h.update(k.encode() + b[k].numpy().tobytes())
    return h.hexdigest()


class Readers:
    """The ways a user reads a corpus or shards folder; each returns a digest of its output."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = weights

    def sampler(self, corpus: Path, shards: Path, out: Path) -> str:
        from mixer.stream.sampler import MixtureSampler

        s = MixtureSampler(corpus, self.weights, TOKENS, SEQ_LEN, seed=3, batch_size=8, batched=True, read_ahead=1)
        return _tensor_digest(iter(s))

    def build(self, corpus: Path, shards: Path, out: Path) -> str:
        from mixer.shards.plan import PlanConfig, build_plan
        from mixer.shards.write import ShardConfig, write_shards

        plan = build_plan(corpus, self.weights, PlanConfig(tokens=TOKENS, seq_len=SEQ_LEN, seed=3))
        write_shards(plan, corpus, out / "built", ShardConfig(shard_tokens=SHARD_TOKENS, workers=1))
        return _digest_folder(out / "built")

    def stream(self, corpus: Path, shards: Path, out: Path) -> str:
        from mixer.stream.stream import MixtureStream

        return _tensor_digest(iter(MixtureStream(shards, 0, 1, batch_size=8, batched=True, read_ahead=1)))

    def _cli(self, args: list[str], *paths: Path) -> str:
        from click.testing import CliRunner

        from mixer.cli import main

        r = CliRunner().invoke(main, args)
        text = r.output
        for p in paths:
            if p is not None:
                text = text.replace(str(p), "<DIR>")
        if r.exit_code == 2:
            raise _CliError(text.strip().splitlines()[-1])
        if r.exit_code != 0:
            raise RuntimeError(f"exit {r.exit_code}: {text[-2000:]}{''.join(traceback.format_exception(*r.exc_info)) if r.exc_info else ''}")
        return hashlib.sha256(text.encode()).hexdigest()

    def verify(self, corpus: Path, shards: Path, out: Path) -> str:
        return self._cli(["verify", str(corpus if shards is None else shards)], corpus, shards)

    def inspect(self, corpus: Path, shards: Path, out: Path) -> str:
        return self._cli(["inspect", str(shards)], shards)

    def sample(self, corpus: Path, shards: Path, out: Path) -> str:
        return self._cli(["inspect", str(shards), "--no-verify", "--sample", "3", "--corpus", str(corpus)],
                         corpus, shards)


class _CliError(Exception):
    """The CLI's exit 2: one line on stderr, like MixerError in the library."""


def _flip(path: Path, offset: int, xor: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= xor
    path.write_bytes(bytes(data))


def run_trial(fixture: dict[str, Any], trial: dict[str, Any], work: Path, baseline: dict[str, str]) -> dict[str, str]:
    """Copy the pristine folders, flip trial['offset'] of trial['file'] with trial['xor'], read."""
    from mixer.core.errors import MixerError

    rel, kind = trial["file"], kind_of(trial["file"])
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    corpus, shards = work / "corpus", work / "shards"
    shutil.copytree(fixture["corpus"], corpus)
    shutil.copytree(fixture["shards"], shards)
    target = (shards if kind == "shards" else corpus) / rel
    _flip(target, trial["offset"], trial["xor"])
    readers = Readers(fixture["weights"])
    outcome = {}
    for name in READERS[kind]:
        out = work / f"out-{name}"
        out.mkdir()
        fn: Callable = getattr(readers, name)
        try:
            got = fn(corpus, None if name == "verify" and kind != "shards" else shards, out)
            outcome[name] = "same" if got == baseline[f"{kind}:{name}"] else "silent"
        except (MixerError, _CliError) as exc:
            msg = str(exc)
            outcome[name] = "named" if rel in msg and "\n" not in msg else f"misnamed: {msg[:300]}"
        except Exception:  # noqa: BLE001 - anything else is what the test hunts for
            outcome[name] = "crash: " + traceback.format_exc()[-1500:]
    return outcome


def baselines(fixture: dict[str, Any], work: Path) -> dict[str, str]:
    """Every reader's output on pristine copies laid out as a trial's (`corpus/`, `shards/` and
    the outputs side by side), so paths recorded relative to each other are the same."""
    readers = Readers(fixture["weights"])
    corpus, shards = work / "corpus", work / "shards"
    for src, dst in ((fixture["corpus"], corpus), (fixture["shards"], shards)):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
    out = {}
    for kind, names in READERS.items():
        for name in names:
            o = work / f"base-{kind}-{name}"
            shutil.rmtree(o, ignore_errors=True)
            o.mkdir(parents=True)
            out[f"{kind}:{name}"] = getattr(readers, name)(corpus, None if name == "verify" and kind != "shards"
                                                            else shards, o)
    return out


def main(spec_path: str) -> None:
    """Run trials spec['trials'][start:], one JSON line per trial on stdout ("start" first, so
    the caller knows which trial a dead process was in)."""
    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work"])
    base = baselines(spec["fixture"], work / "base")
    for i in range(spec["start"], len(spec["trials"])):
        print(json.dumps({"start": i}), flush=True)
        outcome = run_trial(spec["fixture"], spec["trials"][i], work / "trial", base)
        print(json.dumps({"trial": i, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
