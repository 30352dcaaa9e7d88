"""Options shared across commands, defined once so their names and meanings cannot drift apart:
`--quiet` (no progress bars), `--workers` (processes), `--threads` (threads per process),
`--max-epochs` (the repetition cap); the trainer options every `mixer loop` sub-command takes;
for `mixer loop ddo|autoscale`, `--config loop.toml` and `--show`; and the weights table every
command that prints a mixture shows.

`--config loop.toml` for `mixer loop ddo|autoscale`: every option from a TOML file, the command
line over it, and the resolved options written back so that a sweep can be written down,
shared and replayed.

    mixer loop ddo --config loop.toml --seeds 3      # the file's options, --seeds from the line
    mixer loop ddo --config OUT/loop.toml            # replays OUT's sweep: same runs, same weights.json

Keys are the long option names without `--` (`eval-seqs`, `data-seed`; `_` is read as `-`);
flags are booleans; relative paths are relative to the file's folder, so a config written into
OUT replays from any working directory. The file only supplies defaults (click's `default_map`),
so the command line always wins and a required option may come from either. A key that is not
an option of the command, or a value of the wrong type, is one line naming the key and the
file (exit 2).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import click

from mixer.core.errors import MixerError
from mixer.core.urls import is_remote, require_local
from mixer.loop.defaults import DEFAULTS


def _param_name(param: click.Parameter | None) -> str:
    if param is None:
        return "path"
    return param.opts[0] if param.opts and param.opts[0].startswith("-") else param.human_readable_name


class LocalPath(click.Path):
    """`click.Path` for arguments that take a local path only: a URL (`s3://bucket/x`, which
    `Path` would turn into the local folder `s3:/bucket/x`) is one line and exit 2 naming it
    (`mixer.core.urls.require_local`); `file://` URLs become their path."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not isinstance(value, os.PathLike):
            value = str(require_local(value, _param_name(param)))
        return super().convert(value, param, ctx)


class StoragePath(click.Path):
    """`click.Path` for arguments that also take an fsspec URL (`s3://`, `gs://`, ...; see
    docs/storage.md): a URL is passed on unchanged as a string, a local path as `click.Path` does."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and is_remote(value):
            return value
        return super().convert(value, param, ctx)


def quiet_option():
    return click.option("--quiet", is_flag=True, help="No progress bars.")


def weight_options(f):
    """`--weight DOMAIN=W` (repeatable) and `--normalize`: a mixture typed on the command line."""
    f = click.option("--normalize", is_flag=True,
                     help="With --weight: scale the weights to sum to 1 (e.g. code=1 docs=3). A sum within 0.01 "
                          "of 1 (3 x 0.333) is normalised without it, with a note.")(f)
    return click.option("--weight", "weight_pairs", multiple=True, metavar="DOMAIN=W",
                        help="Mixture weight of one domain (repeat per domain; domains left out get 0); "
                             "instead of --weights.")(f)


def mixture_options(f=None, *, given: str = ""):
    """The mixture and its budget, declared once for build-shards and train: `--weights FILE`,
    `--weight DOMAIN=W` / `--normalize`, `--schedule FILE` and `--tokens`. `given`: the condition
    under which they apply, said first in their help (train: "With --corpus: ")."""
    def apply(fn):
        fn = click.option("--tokens", help=f"{given}token budget, e.g. 30M or 1.2B (rounded down to whole sequences; "
                                           "default: the weights file's budget_tokens, or the schedule's last stage's "
                                           "end).")(fn)
        fn = click.option("--schedule", "schedule_file", type=LocalPath(dir_okay=False),
                          help=f"{given}schedule.json, a mixture per stage of training (`mixer loop autoscale` "
                               "writes one), followed stage after stage; instead of --weights/--weight.")(fn)
        fn = weight_options(fn)
        return click.option("--weights", "weights_file", type=LocalPath(dir_okay=False),
                            help=f"{given}weights.json of the mixture.")(fn)

    return apply if f is None else apply(f)


def usage_options(f=None, *, given: str = ""):
    """RegMix's usage bound, declared once for `solve regmix` and `loop regmix`: `--max-usage`
    epochs of a domain in the final run of `--usage-tokens`."""
    def apply(fn):
        fn = click.option("--usage-tokens", default=None,
                          help=f"{given}the final run's tokens for that bound, e.g. 25B (default: the corpus's "
                               "size, the authors' form).")(fn)
        return click.option("--max-usage", type=float, default=15.0, show_default=True,
                            help=f"{given}epochs a domain may be seen in the final run: mixtures above it are not "
                                 "drawn (the authors' 15).")(fn)

    return apply if f is None else apply(f)


def presets_text() -> str:
    """The trainer presets by model, e.g. `gpt2: tiny, small, ..; bert: tiny, bert-base`."""
    from mixer.trainers.presets import PRESETS

    return "; ".join(f"{model}: {', '.join(names)}" for model, names in PRESETS.items())


def model_options(what: str = "Proxy") -> list:
    """`--model` and `--preset` (architecture and size) of `train` and the loop commands, declared
    once; `what` names the model in the help ("Proxy" for the loops, "Model" for train)."""
    return [
        click.option("--model", type=click.Choice(["gpt2", "bert"]), default="gpt2", show_default=True,
                     help=f"{what} architecture: gpt2 (causal LM) or bert (masked LM, 15 %, 80/10/10)."),
        click.option("--preset", default="tiny", show_default=True, metavar="NAME",
                     help=f"{what} size, per --model ({presets_text()})."),
    ]


def regressor_option():
    """`--regressor` of `mixer solve regmix` and `mixer loop regmix`: RegMix's model of loss given
    the mixture, LightGBM by default everywhere, as its authors ran it."""
    return click.option("--regressor", type=click.Choice(["lightgbm", "quadratic", "linear"]), default="lightgbm",
                        show_default=True, help="LightGBM (RegMix's authors'), or ridge on a quadratic / linear model.")


def ray_option(what: str):
    """`--ray local|auto|ADDRESS`, declared once for every command that can run on a Ray cluster;
    `what` says what becomes a task (and anything else the command's help must add)."""
    return click.option("--ray", "ray", default=None, metavar="local|auto|ADDRESS",
                        help=f"Run {what} as Ray tasks: 'local' starts a cluster here, 'auto' joins the running one, "
                             "or give an address.")


def plots_option():
    return click.option("--plots/--no-plots", default=True, show_default=True,
                        help="Write the fit and weights plots (PNG) beside the output.")


def loop_out_option():
    return click.option("--out", required=True, type=StoragePath(file_okay=False, path_type=Path),
                        help="Output folder: weights.json, report.html, plots (and runs/ unless --cache); or a URL "
                             "(s3://bucket/loop: run in a local staging folder, uploaded with weights.json last).")



def max_epochs_option():
    """`--max-epochs F`: at most F passes over any domain's data (OLMo's max repetition factor);
    1 (the default) samples without replacement; `inf` lets a domain repeat without a cap. The
    value is passed as is to `max_epochs` of the sampler (`PlanConfig`) or the loop (`TrainSpec`)."""
    return click.option("--max-epochs", type=float, default=1.0, show_default=True, metavar="F",
                        help="At most F passes over any domain's data (1: no repetition; inf: no cap); "
                             "further epochs are fresh permutations.")


def data_seed_option():
    """`--data-seed N`: the seed of the sampled stream (the sampler's permutations), one name and
    one default (0) for build-shards, train and every loop; `index.json` records it as `seed`."""
    return click.option("--data-seed", "data_seed", type=int, default=0, show_default=True,
                        help="Seed of the sampled stream: the sampler's permutations (the same for every run of a "
                             "sweep).")


def log_options() -> list:
    """`--log` (alias `--log-to`, which torchrun passes through) and `--log-dir`: training metrics also
    to TensorBoard / Weights & Biases."""
    return [
        click.option("--log", "--log-to", "log", default=None, metavar="tensorboard|wandb",
                     help="Also log training loss, per-domain held-out loss, learning rate, tokens/s and data wait "
                          "to TensorBoard and/or Weights & Biases (comma-separated; WANDB_MODE=offline for no "
                          "account); the loop logs each proxy as a run named as its cache folder. Under torchrun "
                          "write --log-to: torchrun's own parser stops at --log, a prefix of its --log-dir."),
        click.option("--log-dir", type=LocalPath(file_okay=False, path_type=Path), default=None,
                     help="With --log: the folder of the logs, one sub-folder per run (point TensorBoard at it) "
                          "[default: OUT/logs]."),
    ]


def log_settings(kw: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """The `--log` / `--log-dir` options as `TrainSpec`'s `log` and `log_dir`."""
    from mixer.core.metrics import parse_targets

    targets = parse_targets(kw.get("log"))
    if kw.get("log_dir") is not None and not targets:
        raise MixerError("--log-dir only applies with --log tensorboard|wandb; add --log or drop --log-dir")
    return {"log": targets, "log_dir": str(kw.get("log_dir") or Path(out) / "logs")}


def trainer_options() -> list:
    return [
        click.option("--seed", type=int, default=0, show_default=True, help="Model init, dropout, masks."),
        data_seed_option(),
        click.option("--lr", type=float, default=None, help="Peak learning rate (default: the preset's)."),
        click.option("--eval-seqs", type=int, default=DEFAULTS.eval_seqs, show_default=True,
                     help="Held-out sequences per domain."),
        max_epochs_option(),
        click.option("--threads", type=int, default=1, show_default=True, help="Torch CPU threads per run."),
        *log_options(),
    ]


def train_spec(kw: dict):
    """The loops' `TrainSpec` from their trainer options, built in this one place; a bad model or
    preset fails here, before any run."""
    from mixer.loop.runner import TrainSpec

    train = TrainSpec(model=kw["model"], preset=kw["preset"], seed=kw["seed"], data_seed=kw["data_seed"], lr=kw["lr"],
                      eval_seqs=kw["eval_seqs"], max_epochs=kw["max_epochs"], threads=kw["threads"],
                      **log_settings(kw, kw["out"]))
    train.train_config().resolve()
    return train


# --- --config loop.toml ------------------------------------------------------------------------------

SKIP = ("config", "show", "help")  # options that are never written to a config file


def _key(param: click.Parameter) -> str:
    longs = [o for o in param.opts if o.startswith("--")]
    return (longs[0] if longs else param.opts[0]).lstrip("-")


def _options(command: click.Command) -> dict[str, click.Option]:
    return {_key(p): p for p in command.params if isinstance(p, click.Option) and p.name not in SKIP}


def read_config(ctx: click.Context, path: Path) -> dict[str, Any]:
    """The file as click's `default_map` ({parameter name: value}), checked against the command."""
    import tomllib  # (here: a command given no --config never imports it)

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MixerError(f"{path}: cannot read the config ({exc.strerror}); give an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise MixerError(f"{path}: not valid TOML ({exc}); fix the file") from None
    options = _options(ctx.command)
    out: dict[str, Any] = {}
    for key, value in data.items():
        param = options.get(key.replace("_", "-"))
        if param is None:
            raise MixerError(f"{path}: unknown key {key!r}; `mixer loop {ctx.command.name} --help` lists the options "
                             f"(write them without the leading --)")
        if isinstance(value, (dict, list)):
            raise MixerError(f"{path}: key {key!r} holds a {type(value).__name__}; give a single value")
        if isinstance(param.type, click.Path) and isinstance(value, str):
            value = os.path.normpath(os.path.join(Path(path).parent, os.path.expanduser(value)))
        try:
            param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise MixerError(f"{path}: key {key!r}: {exc.message}") from None
        out[param.name] = value
    return out


def config_callback(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """Eager `--config`: the file becomes the defaults of every other option."""
    if value is not None:
        ctx.default_map = {**(ctx.default_map or {}), **read_config(ctx, value)}
    return value


def config_options(f):
    """`--config FILE` and `--show` (list the planned runs and their state; train nothing)."""
    f = click.option("--show", is_flag=True,
                     help="List the planned runs, their state (finished / missing / partial) and folders; "
                          "train nothing.")(f)
    return click.option("--config", type=LocalPath(dir_okay=False, path_type=Path), is_eager=True,
                        expose_value=True, callback=config_callback,
                        help="TOML file of options (long names without --); options on the line override it. "
                             "Every run writes its resolved options to OUT/loop.toml.")(f)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if value != value else ("inf" if value > 0 else "-inf"))
    return json.dumps(str(value))  # a TOML basic string


def config_text(command: click.Command, kw: dict[str, Any], out: Path) -> str:
    """Every option of `command` with its resolved value (`kw`), paths relative to `out` (the
    file's folder); options left unset (None: the preset's or no value) as comments."""
    lines = [f"# mixer loop {command.name} --config {Path(out) / 'loop.toml'}",
             "# Every option of this run, defaults included; paths are relative to this file's folder.", ""]
    for key, param in _options(command).items():
        value = kw.get(param.name)
        if value is None:
            lines.append(f"# {key} = (not set)")
            continue
        if isinstance(param.type, click.Path) and not is_remote(value):
            value = os.path.relpath(Path(value).resolve(), Path(out).resolve())
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(command: click.Command, kw: dict[str, Any], out: Path) -> Path:
    """OUT/loop.toml, written atomically (temporary name, then one rename)."""
    from mixer.core.atomic import write_bytes_atomic

    return write_bytes_atomic(Path(out) / "loop.toml", config_text(command, kw, out).encode("utf-8"),
                              make_parent=True)


def command_line(command: click.Command, kw: dict[str, Any]) -> str:
    """The same run as one command line: every option that differs from its default."""
    import shlex

    parts = ["mixer", "loop", command.name]
    for key, param in _options(command).items():
        value = kw.get(param.name)
        if value is None or (value == param.default and not param.required):
            continue
        if param.is_flag:
            parts.append(f"--{key}" if value else "")
        else:
            parts += [f"--{key}", shlex.quote(str(value))]
    return " ".join(p for p in parts if p)


def print_whole(console, table) -> None:
    """Print a rich table at its natural width even when the terminal (or a log file's 80
    columns) is narrower: a squeezed table truncates numbers to `20…`, which no one can read."""
    from rich.console import Console
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update(max_width=10_000), table).maximum
    (console if need <= console.width else Console(width=need, file=console.file)).print(table)


def weights_table(title: str, columns: dict[str, dict[str, float]],
                  intervals: dict[str, dict[str, tuple[float, float]]] | None = None):
    """A rich table: one row per domain, one column per mixture, each weight with its 95 % interval
    where one is known (`intervals[column][domain]`)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("domain")
    for name in columns:
        table.add_column(name, justify="right")
    for d in next(iter(columns.values())):
        cells = []
        for name, col in columns.items():
            lo, hi = (intervals or {}).get(name, {}).get(d, (float("nan"), float("nan")))
            cells.append(f"{col[d]:.3f}" + ("" if lo != lo else f" [{lo:.3f}, {hi:.3f}]"))
        table.add_row(d, *cells)
    return table


def domain_list(text: str | None, option: str) -> tuple[str, ...] | None:
    """"a,b" -> ("a", "b") (None stays None); the names are checked against the runs' domains later."""
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        from mixer.core.errors import MixerError

        raise MixerError(f"{option} {text!r}: name one or more domains separated by commas")
    return names
