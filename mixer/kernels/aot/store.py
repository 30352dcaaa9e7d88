"""Where the kernels compiled ahead of time live, what they were compiled from, and loading them.

One folder per key, `<cache>/<key>/`: the extension module and `variants.json`. The key hashes
everything the compiled code depends on: the source of every file under `mixer/kernels/`, the
numba and llvmlite that compiled it, numpy (whose C interface the module calls), the Python, the
platform and this machine's CPU (the code is compiled for it). Any change gives a new key, so a
stale module is never loaded; an old folder is left for the user to delete.

A compile is done once per key, in a process of its own, into a temporary folder renamed into
place, one process at a time (the others wait on `<cache>/<key>.lock`, then load its module); a
compile that fails leaves `<cache>/<key>.failed` with its reason, so later commands use numba's
JIT at once instead of failing to compile again (delete the file to retry).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType

from mixer.kernels import KERNELS_DIR, sources_digest

try:
    import fcntl
except ImportError:  # (not on Windows: compiles there are not serialised)
    fcntl = None

COMPILE_TIMEOUT_S = 900


def default_cache(fallback: Path) -> Path:
    """Beside the kernels, as numba keeps its cache (`mixer/kernels/__pycache__/aot`), where that
    folder can be written; else `fallback` (a user-wide cache)."""
    here = KERNELS_DIR / "__pycache__"
    try:
        (here / "aot").mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path(fallback)
    return here / "aot" if os.access(here / "aot", os.W_OK) else Path(fallback)


def _version_file(package: str) -> bytes:
    """The bytes of a package's version file, found without importing it (numba's import is what
    this module exists to avoid)."""
    spec = PathFinder.find_spec(package)
    if spec is None or not spec.origin:
        return b"absent"
    path = Path(spec.origin).parent / "_version.py"
    return path.read_bytes() if path.is_file() else spec.origin.encode()


def _cpu() -> bytes:
    """This machine's CPU model and features (the code is compiled for them)."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            lines = f.read(1 << 16).split(b"\n")
        return b"\n".join(dict.fromkeys(line for line in lines if line.startswith((b"model name", b"flags"))))
    except OSError:
        return f"{platform.machine()} {platform.processor()}".encode()


def key() -> str:
    """The key of the compiled module these sources, libraries and this machine call for."""
    import numpy as np

    h = hashlib.sha256(sources_digest(KERNELS_DIR).encode() + b"\0")
    for part in (_version_file("numba"), _version_file("llvmlite"), np.__version__.encode(), sys.version.encode(),
                 sys.platform.encode(), platform.machine().encode(), _cpu()):
        h.update(part + b"\0")
    return h.hexdigest()[:32]


def module_name(k: str) -> str:
    return f"mixer_kernels_{k[:16]}"


def load(folder: Path, k: str) -> tuple[ModuleType, dict] | None:
    """The compiled module in `folder` and its variants table, or None if it is not there."""
    name = module_name(k)
    variants = folder / "variants.json"
    files = [folder / (name + suffix) for suffix in EXTENSION_SUFFIXES]
    path = next((p for p in files if p.is_file()), None)
    if path is None or not variants.is_file():
        return None
    try:  # (damaged by hand or by a full disk: then numba runs the kernels)
        table = json.loads(variants.read_text())
        if table.get("module") != name:
            return None
        kernels = table["kernels"]
        module = sys.modules.get(name) or _load(name, path)
        if not all(hasattr(module, symbol) for variants_ in kernels.values() for symbol, _ in variants_):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
        return None
    return module, kernels


def _load(name: str, path: Path) -> ModuleType:
    """Load the extension module at `path` (once per process: `sys.modules` keeps it)."""
    loader = ExtensionFileLoader(name, str(path))
    module = loader.create_module(ModuleSpec(name, loader, origin=str(path)))
    loader.exec_module(module)
    sys.modules[name] = module
    return module


def compile_into(cache: Path, k: str) -> str | None:
    """Compile the module for key `k` into `cache/k/`; None when done (or already there), else
    the reason it could not be (also written to `cache/k.failed`). One process compiles at a time
    (`cache/k.lock`): the others wait for it, then find its module, or its reason."""
    final = cache / k
    if final.is_dir():
        return None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / f"{k}.lock", "a")  # noqa: SIM115 (held open while compiling)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    with lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        marker = failed(cache, k)
        if final.is_dir():
            return None
        if marker.is_file():
            return marker.read_text().strip()
        reason = _compile(cache, k)
        if reason is not None:
            with contextlib.suppress(OSError):  # (a folder that cannot be written: said, and not remembered)
                marker.write_text(reason + "\n")
    return reason


def _compile(cache: Path, k: str) -> str | None:
    """The compile itself, in a process of its own, into a temporary folder renamed into place."""
    import subprocess  # (here: loading a compiled module never imports it)

    final, tmp = cache / k, cache / f".{k}.{os.getpid()}.tmp"
    root = str(KERNELS_DIR.parents[1])  # the folder holding `mixer`: the child compiles these very sources
    env = {**os.environ, "TMPDIR": str(tmp / "build"),
           "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "build").mkdir(parents=True)
        res = subprocess.run([sys.executable, "-m", "mixer.kernels.aot.compile", str(tmp), module_name(k)],
                             env=env, cwd=str(tmp), capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S,
                             check=False)
        reason = None if res.returncode == 0 else \
            (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        shutil.rmtree(tmp / "build", ignore_errors=True)
        if reason is None:
            os.rename(tmp, final)
    except (OSError, subprocess.SubprocessError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    shutil.rmtree(tmp, ignore_errors=True)
    return reason


def failed(cache: Path, k: str) -> Path:
    return cache / f"{k}.failed"
