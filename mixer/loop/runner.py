"""One proxy run of the loop: sample the mixture from the corpus, train, evaluate, return run.json.

    spec = RunSpec(corpus="corpus/", corpus_sha256=..., name="base", weights={...},
                   budget_tokens=2_000_000, train=TrainSpec(model="gpt2", preset="tiny"))
    files = execute(spec)          # {"run.json": b"...", "loss_curves.png": b"..."}
    spec.key()                     # sha256 of every input that changes the result: the cache key

`execute` is a pure function of the spec (fixed seeds, a fixed torch thread count, the on-the-fly
`MixtureSampler`, so no shards are written): the same spec gives the same losses on any CPU
process, which is what lets a Ray sweep and a sequential one agree to the bit. It trains in a
temporary folder and returns the finished files as bytes, so a Ray task on another machine needs
only the corpus at the same path, not a shared output folder; the driver (`mixer.loop.sweep`) commits
them to the cache. The checkpoint is dropped: the loop needs the losses, not the model.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from mixer.formats.corpus_handle import Corpus
from mixer.core.atomic import atomic_dir
from mixer.core.errors import MixerError
from mixer.shards.plan import PlanConfig, check_max_epochs, max_epochs_json

CACHE_VERSION = 1  # bump when a change to the loop makes old cached runs wrong
KEEP_FILES = ("run.json", "loss_curves.png")  # what a finished run folder holds


@dataclass(frozen=True)
class TrainSpec:
    """The trainer settings of every run of a sweep (a subset of `mixer.trainers.TrainConfig`)."""

    model: str = "gpt2"  # "gpt2" (causal LM) or "bert" (masked LM)
    preset: str = "tiny"  # mixer.trainers.presets name
    seed: int = 0  # model init, dropout, MLM masks
    data_seed: int = 0  # the sampler's permutation seed; the same for every run of a sweep (common random numbers)
    lr: float | None = None  # None: the preset's
    batch_size: int | None = None  # None: the preset's
    seq_len: int | None = None  # None: the preset's
    eval_seqs: int = 64  # held-out sequences per domain
    eval_every: int = 0  # 0: evaluate at the end only (the loss curve of the experiment sets it)
    log_every: int = 10
    max_epochs: float = 1.0  # the most passes over any domain's data (1: without replacement; math.inf: no cap)
    threads: int = 1  # torch CPU threads per run; results are bitwise reproducible only at a fixed count
    device: str = "auto"  # "auto": the run's GPU if it has one, else CPU
    trainer: str = "hf"  # "hf": mixer.trainers.hf_train.train; "stacked": mixer.trainers.batched (what --batch-proxies trains)
    log: tuple[str, ...] = ()  # metrics also to "tensorboard" / "wandb" (mixer.core.metrics); not in the key
    log_dir: str = ""  # their folder: one run per proxy, named as its cache folder

    def __post_init__(self) -> None:

        check_max_epochs(self.max_epochs)  # a bad cap fails before a sweep plans anything

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON holds them (spec.json, weights.json provenance, the cache key):
        no repetition cap (math.inf) is null; where metrics are logged is left out (it changes
        no result, so neither the key nor the outputs)."""

        settings = {k: v for k, v in asdict(self).items() if k not in ("log", "log_dir")}  # where metrics go: no input
        return {**settings, "max_epochs": max_epochs_json(self.max_epochs)}

    def train_config(self, progress: bool = False):
        from mixer.trainers.hf_train import TrainConfig

        return TrainConfig(model=self.model, preset=self.preset, seed=self.seed, lr=self.lr,
                           batch_size=self.batch_size, seq_len=self.seq_len, eval_seqs=self.eval_seqs,
                           eval_every=self.eval_every, log_every=self.log_every, device=self.device,
                           progress=progress)


@dataclass(frozen=True)
class RunSpec:
    corpus: str  # the prepared corpus folder (same path on every Ray worker)
    corpus_sha256: str  # of its corpus.json: part of the key, so a re-prepared corpus re-runs everything
    name: str  # "base", "code-x3", ... (display only; not in the key)
    weights: dict[str, float]
    budget_tokens: int
    train: TrainSpec = field(default_factory=TrainSpec)
    provenance: dict[str, Any] = field(default_factory=dict)  # role/domain/factor/total: recorded in run.json
    # A mixture schedule's stages as schedule.json holds them ([{"until_tokens", "weights"}, ...]):
    # the run follows it and `weights` are its whole-run shares; None: one mixture, `weights`.
    schedule: list[dict[str, Any]] | None = None

    def key(self) -> str:
        """sha256 of the inputs that decide the result (not the corpus path, name, threads or device)."""
        train = {k: v for k, v in self.train.to_json().items() if k not in ("threads", "device")}
        obj = {"cache_version": CACHE_VERSION, "corpus_sha256": self.corpus_sha256,
               "weights": {d: float(w) for d, w in sorted(self.weights.items())},
               "budget_tokens": int(self.budget_tokens), "train": train, "provenance": self.provenance}
        if self.schedule is not None:  # one-mixture runs keep their keys
            obj["schedule"] = [[int(s["until_tokens"]), sorted((d, float(w)) for d, w in s["weights"].items())]
                               for s in self.schedule]
        return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "train": self.train.to_json(), "key": self.key()}

    def metrics(self):
        """Where this run's metrics go (`--log`): a run named as its cache folder, or None."""
        from mixer.core.metrics import MetricsConfig

        if not self.train.log:
            return None
        return MetricsConfig(targets=tuple(self.train.log), folder=self.train.log_dir or "logs", name=self.folder())

    def folder(self) -> str:
        """`<scale>/<role>-<domain>-x<factor>-s<seed>-<hash8>`: the run's cache folder, readable by
        people (so one scale's runs are one `ls` away) and still unique through the key's first
        8 hex digits; parts that do not apply read `all` (a mixture of every domain) and `x1`."""
        prov = self.provenance
        role = _ROLES.get(str(prov.get("role")), _token(str(prov.get("role") or "run")))
        domain = prov.get("domain") if prov.get("domain") is not None else prov.get("mixture") or "all"
        factor = prov.get("factor")
        x = "x1" if factor is None else f"x{float(factor):.3g}"
        scale = prov.get("sweep_budget") or self.budget_tokens  # a grown run stays with its sweep
        return f"{exact_count(int(scale))}/{role}-{_token(str(domain))}-{x}-s{self.train.seed}-{self.key()[:8]}"


# provenance role -> the folder's first word
_ROLES = {"base": "base", "perturbed": "perturb", "validation": "validate", "target": "target", "regmix": "regmix",
          "doremi-reference": "doremi_ref", "doremi-proxy": "doremi_proxy"}


def _token(text: str) -> str:
    """A name safe as one part of a folder name: letters, digits, `.`, `_`, `+`, `=`; `-` (the
    parts' separator) and anything else become `_`."""
    return re.sub(r"[^A-Za-z0-9._+=]", "_", text) or "_"


def exact_count(n: int) -> str:
    """A token count as a short exact name: 2M, 64k, 8192 (never rounded, so two budgets never
    share a folder; `mixer.core.units.parse_count` reads it back)."""
    n = int(n)
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n % scale == 0:
            return f"{n // scale}{suffix}"
    return str(n)


def _data_source(spec: RunSpec, corpus: Corpus | None = None):
    """The mixture sampled straight from the corpus (`corpus`: the spec's, already opened by the
    caller, or None to open it here), tagged with the run's provenance."""

    from mixer.trainers.data import source_from_corpus

    cfg = spec.train.train_config().resolve()
    schedule = None
    if spec.schedule is not None:
        from mixer.formats.schedule import make_schedule

        schedule = make_schedule(spec.schedule, source=f"run {spec.name}")
    plan = PlanConfig(tokens=int(spec.budget_tokens), seq_len=cfg.seq_len, seed=spec.train.data_seed,
                      max_epochs=spec.train.max_epochs)
    source = source_from_corpus(spec.corpus if corpus is None else corpus,
                                spec.weights if schedule is None else schedule, plan,
                                model=spec.train.model, batch_size=cfg.batch_size)
    return replace(source, provenance={**source.provenance, **spec.provenance, "run_name": spec.name,
                                       "run_key": spec.key()})


def execute(spec: RunSpec, progress: bool = False, corpus: Corpus | None = None) -> dict[str, bytes]:
    """Train one run in a temporary folder; return its finished files (run.json, loss_curves.png).
    `corpus`: the spec's corpus already opened (runs of one process share one handle)."""
    import torch

    from mixer.trainers.hf_train import train

    torch.set_num_threads(spec.train.threads)  # reductions split by thread count: fix it for bitwise equality
    tmp = Path(tempfile.mkdtemp(prefix=f"mixer-run-{spec.name.replace('/', '_')}-"))
    try:
        if spec.train.trainer not in ("hf", "stacked"):
            raise MixerError(f"run {spec.name}: trainer {spec.train.trainer!r}; use 'hf' or 'stacked'")
        if spec.train.trainer == "stacked":  # the batched trainer with this one proxy: what a batch gives it
            return execute_batch([spec], progress, corpus)[0]
        train(spec.train.train_config(progress=progress), _data_source(spec, corpus), tmp / "run",
              log=spec.metrics())
        return {name: (tmp / "run" / name).read_bytes() for name in KEEP_FILES if (tmp / "run" / name).exists()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def group_key(spec: RunSpec) -> tuple:
    """Runs with equal keys can be trained together: same corpus, budget and trainer settings."""
    train = {k: v for k, v in asdict(spec.train).items() if k not in ("seed", "data_seed")}
    return spec.corpus, int(spec.budget_tokens), tuple(sorted(train.items()))


def execute_batch(specs: Sequence[RunSpec], progress: bool = False,
                  corpus: Corpus | None = None) -> list[dict[str, bytes]]:
    """Train the specs together (one group: same corpus, budget and trainer settings); their files.
    `corpus`: their corpus already opened, or None to open it once here."""
    import torch

    from mixer.trainers.batched import Proxy, train_batched

    if len({group_key(s) for s in specs}) != 1:
        raise MixerError("execute_batch: the runs of one batch need the same corpus, budget and trainer settings")
    torch.set_num_threads(specs[0].train.threads)  # as `execute`: bitwise results need a fixed count
    tmp = Path(tempfile.mkdtemp(prefix="mixer-batch-"))
    try:
        corpus = Corpus.open(specs[0].corpus) if corpus is None else corpus  # one handle for the group
        proxies = [Proxy(_data_source(s, corpus), out_dir=tmp / str(i), seed=s.train.seed, log=s.metrics())
                   for i, s in enumerate(specs)]
        train_batched(specs[0].train.train_config(progress=progress), proxies,
                      progress_desc=f"{len(specs)} proxies" if progress else None)
        return [{n: (tmp / str(i) / n).read_bytes() for n in KEEP_FILES if (tmp / str(i) / n).exists()}
                for i in range(len(specs))]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def commit(files: dict[str, bytes], folder: str | Path, spec: RunSpec) -> Path:
    """Write a finished run into its cache folder atomically: the folder appears complete
    (spec.json, the plot, run.json) or not at all. Returns the run.json path."""

    folder = Path(folder)
    if "run.json" not in files:
        raise RuntimeError(f"run {spec.name}: the trainer returned no run.json")
    with atomic_dir(folder, overwrite=True) as tmp:
        (tmp / "spec.json").write_text(json.dumps(spec.to_json(), indent=2, sort_keys=True) + "\n")
        for name, data in files.items():
            if name != "run.json":
                (tmp / name).write_bytes(data)
        (tmp / "run.json").write_bytes(files["run.json"])  # last
    return folder / "run.json"


def is_finished(folder: str | Path) -> bool:
    return (Path(folder) / "run.json").is_file()

