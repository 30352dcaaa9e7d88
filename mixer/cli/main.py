"""The `mixer` command line: a thin click layer over library functions.

Every command lives in its own module `mixer/cli/commands/<name>.py` exposing `command` (a click
command), listed once in `load` with a plain import (so the layer contract sees every edge) that
runs only when the command is named. The command modules import the library inside their
functions, which keeps `mixer -h` fast.
Commands parse options, build a config dataclass and call the library; `MixerError` becomes one
line on stderr and exit code 2.
"""
from __future__ import annotations

import os
import sys
import warnings

import click

from mixer.core.errors import MixerError

NAMES = ("build-shards", "corpus", "demo", "export", "export-shards", "inspect", "loop", "prepare", "solve", "train",
         "verify")


def load(name: str) -> click.Command:
    """The command `name`, its module imported only now: `mixer build-shards` imports none of the
    other commands' modules (their own imports, such as the loop's, cost tens of milliseconds of a
    command that takes about a second). `mixer -h` loads all eleven."""
    if name == "build-shards":
        from mixer.cli.commands import build_shards as module
    elif name == "corpus":
        from mixer.cli.commands import corpus as module
    elif name == "demo":
        from mixer.cli.commands import demo as module
    elif name == "export":
        from mixer.cli.commands.export import mixture as module
    elif name == "export-shards":
        from mixer.cli.commands.export import shards as module
    elif name == "inspect":
        from mixer.cli.commands import inspect as module
    elif name == "loop":
        from mixer.cli.commands import loop as module
    elif name == "prepare":
        from mixer.cli.commands import prepare as module
    elif name == "solve":
        from mixer.cli.commands import solve as module
    elif name == "train":
        from mixer.cli.commands import train as module
    elif name == "verify":
        from mixer.cli.commands import verify as module
    else:
        raise KeyError(name)
    return module.command


DISTRIBUTED = ("train",)  # the commands that run as one rank of a torchrun job (DDP)


def refuse_torchrun_copies(name: str) -> None:
    """Under torchrun (its agent sets TORCHELASTIC_RUN_ID) with several processes, every command
    but `train` would run whole in every process, racing on its output: `mixer loop` under torchrun
    crashed with a traceback half-way through its first proxy. One line (from rank 0) and exit 2
    instead. WORLD_SIZE alone is not enough to refuse: a job script may export it for the training
    it launches later, and preprocessing run in that shell is one process."""
    world = os.environ.get("WORLD_SIZE", "1")
    if name in DISTRIBUTED or os.environ.get("TORCHELASTIC_RUN_ID") is None or not world.isdigit() or int(world) < 2:
        return
    if os.environ.get("RANK", "0") != "0":
        sys.exit(MixerError.exit_code)  # rank 0 says why, once
    raise MixerError(f"mixer {name} is one process, and torchrun started {world} copies of it, each of which would "
                     "do the whole job and write the same output; run it without torchrun (its own options spread "
                     "the work: --workers, --threads, --ray, --batch-proxies); only `mixer train` runs under torchrun")


class _Commands(click.Group):
    """The commands, each loaded when named (`load`) and reporting `MixerError` as a one-line
    error and exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(NAMES)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, cmd, rest = super().resolve_command(ctx, args)
        if name is not None:
            refuse_torchrun_copies(name)
        return name, cmd, rest

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load(cmd_name) if cmd_name in NAMES else None

    def invoke(self, ctx: click.Context):

        from mixer.core.errors import MixerNote

        with warnings.catch_warnings():  # restores the filters and showwarning afterwards
            warnings.simplefilter("always", MixerNote)

            def one_line(message, category, *args, **kwargs):
                """A note is `note: ...`; any other warning `warning: Category: ...`: one line each,
                never the source line that raised it (a user cannot act on mixer's internals)."""
                text = " ".join(str(message).split())
                if issubclass(category, MixerNote):
                    click.echo(f"note: {text}", err=True)
                else:
                    click.echo(f"warning: {category.__name__}: {text}", err=True)

            warnings.showwarning = one_line
            try:
                return super().invoke(ctx)
            except MixerError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(MixerError.exit_code)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mixer-toolkit")
def main() -> None:
    """mixer: find, build and feed the compute-optimal data mixture (AutoScale)."""
