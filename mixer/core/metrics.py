"""Training metrics to TensorBoard and Weights & Biases: the one place either is imported.

    log = MetricsConfig(targets=("tensorboard",), folder="runs/a/logs", name="a")
    with open_metrics(log, config={...}) as metrics:   # None targets: a logger that does nothing
        metrics.scalars(step, {"train/loss": 3.2, "train/lr": 1e-3})

`tensorboard` writes event files with the `tensorboard` package's writer (through
`torch.utils.tensorboard`) to FOLDER/NAME, so `tensorboard --logdir FOLDER` shows every run
logged there side by side (the loop's proxies each under its cache folder's name). `wandb`
logs a run named NAME into FOLDER/wandb (offline with ``WANDB_MODE=offline``; `wandb sync`
uploads it later). Both are optional extras (`pip install mixer-toolkit[tensorboard]`,
`[wandb]`); asking for one that is not installed is one line naming the extra to install.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from mixer.core.errors import MixerError

TARGETS = ("tensorboard", "wandb")


@dataclass(frozen=True)
class MetricsConfig:
    """Where a run's metrics go: `targets` (a subset of TARGETS), the log `folder` (one
    sub-folder per run) and the run's `name`."""

    targets: tuple[str, ...] = ()
    folder: str = "logs"
    name: str = "run"


def parse_targets(text: str | None, option: str = "--log") -> tuple[str, ...]:
    """`"tensorboard"`, `"wandb"`, `"tensorboard,wandb"` (None or ""): the targets, checked."""
    names = tuple(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))
    for name in names:
        if name not in TARGETS:
            raise MixerError(f"{option} {text!r}: unknown target {name!r}; use tensorboard, wandb or both "
                             "separated by a comma")
    return names


class Metrics:
    """Scalars to every target of a `MetricsConfig`; closed by `close()` or a `with` block."""

    def __init__(self, log: MetricsConfig, config: Mapping[str, Any] | None = None) -> None:
        self._writers: list[Any] = []
        self._wandb: Any = None
        try:
            if "tensorboard" in log.targets:
                self._writers.append(_tensorboard(Path(log.folder) / log.name))
            if "wandb" in log.targets:
                self._wandb = _wandb(log, dict(config or {}))
        except BaseException:
            self.close()
            raise

    def scalars(self, step: int, values: Mapping[str, float | None]) -> None:
        values = {k: float(v) for k, v in values.items() if v is not None}
        for writer in self._writers:
            for tag, value in values.items():
                writer.add_scalar(tag, value, step)
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers = []
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_metrics(log: MetricsConfig | None, config: Mapping[str, Any] | None = None) -> Metrics:
    return Metrics(log or MetricsConfig(), config)


def _tensorboard(folder: Path):
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it; say so in our words)
    except ImportError:
        raise MixerError("--log tensorboard: the tensorboard package is not installed; "
                         "pip install 'mixer-toolkit[tensorboard]'") from None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))


def _wandb(log: MetricsConfig, config: dict[str, Any]):
    try:
        import wandb
    except ImportError:
        raise MixerError("--log wandb: the wandb package is not installed; pip install 'mixer-toolkit[wandb]' "
                         "(WANDB_MODE=offline logs without an account)") from None
    folder = Path(log.folder)
    folder.mkdir(parents=True, exist_ok=True)
    return wandb.init(name=log.name, dir=str(folder), config=config, reinit="create_new",
                      project=os.environ.get("WANDB_PROJECT", "mixer"))
