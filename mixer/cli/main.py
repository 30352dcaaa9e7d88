"""The `mixer` command line: a thin click layer over library functions.

Every command lives in its own module `mixer/cli/commands/<name>.py` exposing `command` (a click
command), listed once below with a plain import (so the layer contract sees every edge). The
command modules import the library inside their functions, which keeps `mixer -h` fast.
Commands parse options, build a config dataclass and call the library; `MixerError` becomes one
line on stderr and exit code 2.
"""
from __future__ import annotations

import sys
import warnings

import click

from mixer.cli.commands import (
    build_shards,
    corpus,
    demo,
    inspect,
    loop,
    prepare,
    solve,
    train,
    verify,
)
from mixer.cli.commands.export import mixture as export
from mixer.cli.commands.export import shards as export_shards
from mixer.core.errors import MixerError

COMMANDS = {m.command.name: m.command for m in (build_shards, corpus, demo, export, export_shards, inspect, loop,
                                                  prepare, solve, train, verify)}


class _Commands(click.Group):
    """The commands, each reporting `MixerError` as a one-line error and exit code 2."""

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


@click.group(cls=_Commands, commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mixer-toolkit")
def main() -> None:
    """mixer: find, build and feed the compute-optimal data mixture (AutoScale)."""
