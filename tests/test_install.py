"""The torch requirement: it keeps a torch the user already has (CUDA builds included, any
release from 2.4 to the cap) and, on a fresh machine, resolves to the CPU build rather than a
multi-GB CUDA download: among the releases pip sees, the best match is 2.13.0+cpu."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version


def _torch() -> Requirement:
    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if Requirement(d).name == "torch"]
    return req


def test_installed_torch_builds_are_kept():
    spec = _torch().specifier
    for v in ("2.4.0", "2.5.1+cu124", "2.8.0+cu128", "2.12.1", "2.13.0", "2.13.0+cpu", "2.13.0+cu130"):
        assert spec.contains(v), v
    assert not spec.contains("2.3.1")  # older than the features the trainers use


def test_fresh_install_resolves_to_the_cpu_build():
    # What this machine's pip sees (pip config: --find-links /opt/wheels, PyPI, a local mirror):
    # PyPI's plain Linux wheels from 2.14 depend on cuda-toolkit / nvidia-* (several GB).
    seen = ["2.12.1", "2.13.0", "2.13.0+cpu", "2.14.0", "2.14.1", "2.15.0"]
    best = max((v for v in seen if _torch().specifier.contains(v)), key=Version)
    assert best == "2.13.0+cpu"  # pip's order: highest version; a local label ranks above the bare release
