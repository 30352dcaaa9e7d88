"""The `mixer` command line: a thin click layer over library functions.

Every command lives in its own module `mixer/cli/commands/<name>.py` exposing `command` (a click
command); the group discovers them, so adding a command touches no shared file. Commands
parse options, build a config dataclass and call the library; `MixerError` becomes one line on
stderr and exit code 2.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from mixer.core.errors import MixerError


class _CommandFolder(click.Group):
    """Finds commands in `mixer.cli.commands` and reports `MixerError` as a one-line error."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        import mixer.cli.commands as pkg

        names = [m.name.replace("_", "-") for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.list_commands(ctx):
            return None
        module = importlib.import_module(f"mixer.cli.commands.{name.replace('-', '_')}")
        return module.command

    def invoke(self, ctx: click.Context):  # noqa: D102
        import warnings

        from mixer.formats.weights import WeightNote

        with warnings.catch_warnings():  # restores the filters and showwarning afterwards
            show = warnings.showwarning
            warnings.simplefilter("always", WeightNote)

            def note(message, category, *args, **kwargs):  # a library note is one plain line on stderr
                if issubclass(category, WeightNote):
                    click.echo(f"note: {message}", err=True)
                else:
                    show(message, category, *args, **kwargs)

            warnings.showwarning = note
            try:
                return super().invoke(ctx)
            except MixerError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(MixerError.exit_code)


@click.group(cls=_CommandFolder, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mixer-toolkit")
def main() -> None:
    """mixer: find, build and feed the compute-optimal data mixture (AutoScale)."""
