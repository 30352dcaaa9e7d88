"""Step 7, the `mixer` command line: parse options, build a config, call one library function."""
from mixer.cli.main import main

__all__ = ["main"]
