"""`mixer export`: `weights.json` → the configuration one target library reads (`export_mixture`).

The targets, one module each: see `mixer/export/__init__.py`. A format with comments carries the
mixture's verdict and intervals in them; for one without (Megatron's blend) the CLI prints them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixer.core.errors import MixerError
from mixer.export import hf, litdata, megatron, mosaic, olmo, torchtitan
from mixer.export.mixture import ExportSpec, read_mixture

WRITERS = {"megatron": megatron, "hf": hf, "mosaic": mosaic, "litdata": litdata, "olmo": olmo,
           "torchtitan": torchtitan}
TARGETS = tuple(WRITERS)


@dataclass(frozen=True)
class Exported:
    """The text of one export, and whether the format carried the comments (else the CLI prints them)."""

    text: str
    comments: tuple[str, ...]
    comments_inside: bool
    verdict: str | None


def export_mixture(spec: ExportSpec) -> Exported:
    """The text `spec.target` reads, with the mixture's comments where the format allows them."""
    if spec.target not in WRITERS:
        raise MixerError(f"--to {spec.target!r}: unknown target; choose one of {', '.join(TARGETS)}")
    module = WRITERS[spec.target]
    mix = read_mixture(spec)
    return Exported(text=module.render(mix), comments=mix.comments, comments_inside=module.COMMENTS,
                    verdict=mix.verdict)


def write_export(exported: Exported, out: Path) -> None:
    """Write the export atomically (all of it or, on failure, nothing)."""
    from mixer.core.atomic import write_bytes_atomic

    if not Path(out).parent.is_dir():
        raise MixerError(f"--out {out}: the folder {Path(out).parent} does not exist; create it or write elsewhere")
    write_bytes_atomic(out, exported.text.encode("utf-8"))
