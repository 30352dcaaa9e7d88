"""Where an output may go: never inside what it is made from, never around it.

`prepare --out` inside its own source folder would be read back as source text by the next
run; `build-shards --out` inside the corpus would sit among its Arrow parts; and an output
folder that *contains* its input would be deleted with it by `--overwrite`.
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path

from mixer.core.errors import MixerError


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def refuse_nested(out: str | os.PathLike, source: str | os.PathLike, what: str, flag: str = "--out") -> None:
    """Raise `MixerError` when output `out` and input `source` (described by `what`, e.g.
    "the corpus") are the same folder or one lies inside the other."""
    o, s = Path(out).resolve(), Path(source).resolve()
    if _inside(o, s):
        raise MixerError(f"{flag} {out}: inside {what} ({source}); choose an output folder outside it")
    if _inside(s, o):
        raise MixerError(f"{flag} {out}: contains {what} ({source}), which writing (or --overwrite) would "
                         "destroy; choose an output folder outside it")


def normpath(name: str) -> str:
    """`posixpath.normpath(name)`, without its cost (1 us; 10,000 parts) for a name it would not
    change: no empty, `.` or `..` component and no trailing slash."""
    if name and "//" not in name and "/." not in name and name[0] != "." and name[-1] != "/":
        return name
    return posixpath.normpath(name)
