"""One vocabulary of options across commands: `--quiet` for no progress bars, `--workers` for
processes, `--threads` for threads, `--max-epochs` for repetition, `--shards` for a shards
folder, and sizes shown in human units."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mixer.cli import main


def commands() -> dict[str, click.Command]:
    ctx = click.Context(main)
    out = {}
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                out[f"{name} {sub}"] = cmd.get_command(ctx, sub)
        else:
            out[name] = cmd
    return out


def visible(cmd: click.Command) -> dict[str, click.Parameter]:
    return {opt: p for p in cmd.params if isinstance(p, click.Option) and not p.hidden for opt in p.opts}


def test_no_command_uses_the_old_spellings():
    for name, cmd in commands().items():
        opts = visible(cmd)
        for old in ("--progress", "--no-progress", "--allow-repeat", "--max-repeat"):
            assert old not in opts or name.startswith("loop"), f"mixer {name} still shows {old}"
        if "--quiet" in opts:
            assert opts["--quiet"].is_flag, name
        if "--workers" in opts:
            assert "process" in (opts["--workers"].help or "").lower(), f"mixer {name}: --workers must mean processes"
        if "--threads" in opts:
            assert "thread" in (opts["--threads"].help or "").lower(), name


@pytest.mark.parametrize("name", ["prepare", "build-shards", "train", "demo", "corpus default"])
def test_commands_that_show_progress_take_quiet(name):
    assert "--quiet" in visible(commands()[name])


def test_shards_folder_is_named_the_same_everywhere(tmp_path):
    assert "--shards" in visible(commands()["inspect"]) and "--shards" in visible(commands()["train"])
    r = CliRunner().invoke(main, ["inspect"])
    assert r.exit_code == 2 and "--shards DIR" in r.output


def test_sizes_show_in_human_units():
    r = CliRunner().invoke(main, ["build-shards", "--help"])
    assert "32Mi" in r.output and "33554432" not in r.output
