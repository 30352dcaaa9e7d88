"""The peers of `bench.reader`, each run the way its documentation recommends at its best:
MosaicML streaming and litdata in their own processes (their own venvs when they cannot be
imported next to the project's torch; a peer that cannot be set up is skipped with a note),
Hugging Face datasets in this process.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WEIGHTS = {"books": 0.1, "code": 0.2, "news": 0.3, "web": 0.4}
STREAMING_PINS = ["torch==2.14.1", "torchvision==0.29.1", "mosaicml-streaming==0.13.0"]
LITDATA_PINS = ["litdata==0.2.76"]
LITDATA_SCRIPT = Path(__file__).parent / "litdata_peer.py"


# --- MosaicML streaming (own venv) --------------------------------------------------------------
MOSAIC_SCRIPT = r"""
import json, sys, time, numpy as np
from streaming import MDSWriter, StreamingDataset
from streaming.base.util import clean_stale_shared_memory
from torch.utils.data import DataLoader
raw, out, seq_len, samples, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
repeats = int(sys.argv[6])
rows = np.memmap(raw, dtype=np.uint16, mode="r").reshape(-1, seq_len)[:samples]
with MDSWriter(out=out, columns={"tokens": f"ndarray:uint16:{seq_len}"}, compression="zstd") as w:
    for r in rows:
        w.write({"tokens": np.ascontiguousarray(r)})
runs = []
for workers in (0, 2):
    walls = []
    for _ in range(repeats):
        clean_stale_shared_memory()
        ds = StreamingDataset(local=out, shuffle=False, batch_size=batch)
        t0 = time.perf_counter(); n = 0; first = None
        for b in DataLoader(ds, batch_size=batch, num_workers=workers):
            n += b["tokens"].numel()
            if first is None:
                first = b["tokens"][0, :8].tolist()
        walls.append(time.perf_counter() - t0)
        del ds
    wall = sorted(walls)[len(walls) // 2]
    runs.append({"workers": workers, "tokens": n, "wall_s": wall, "wall_s_runs": walls, "tokens_per_s": n / wall,
                 "first": first})
print(json.dumps(runs))
"""


def peer_venv(cache: Path, name: str, pins: list[str]) -> tuple[Path | None, str]:
    """A venv of its own for a peer that cannot share ours, created on first use; (python, how)
    or (None, why) when that fails."""
    venv = cache / f"{name}-venv"
    done = venv / ".mixer-complete"
    python = venv / "bin" / "python"
    if done.exists():
        return python, "cached venv"
    shutil.rmtree(venv, ignore_errors=True)
    print(f"creating the {name} venv in {venv} (first run only, a few minutes) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True,
                       capture_output=True, text=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as exc:
        tail = getattr(exc, "stderr", "") or ""
        return None, f"venv creation failed ({type(exc).__name__}: {str(tail).strip()[-300:] or exc})"
    done.touch()
    return python, "created venv"


def streaming_python(cache: Path) -> tuple[Path | None, str]:
    return peer_venv(cache, "streaming", STREAMING_PINS)


def _peer_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def litdata_python(cache: Path, may_create: bool) -> tuple[Path | None, str]:
    """This interpreter when litdata imports in it (it does in the project's dev venv), else a
    venv of its own (litdata may not install next to a CPU torch); (None, why) if neither."""
    probe = subprocess.run([sys.executable, "-c", "import litdata, torch"], check=False, capture_output=True, text=True,
                           env=_peer_env(), timeout=300)
    if probe.returncode == 0:
        return Path(sys.executable), "this venv"
    if not may_create:
        return None, "litdata does not import here and --quick creates no venv"
    return peer_venv(cache, "litdata", LITDATA_PINS)


def litdata_run(python: Path, *args: str | int) -> str:
    r = subprocess.run([str(python), str(LITDATA_SCRIPT), *map(str, args)], check=False, capture_output=True, text=True,
                       timeout=1200, env=_peer_env())
    if r.returncode != 0:
        raise RuntimeError(f"litdata subprocess failed: {r.stderr.strip()[-600:]}")
    return r.stdout


def litdata_pass(python: Path, out: Path, seq_len: int, batch_size: int, workers: int) -> dict:
    return json.loads(litdata_run(python, "read", out, seq_len, batch_size, workers).strip().splitlines()[-1])


def bench_mosaic(python: Path, raw: Path, work: Path, seq_len: int, samples: int, batch_size: int,
                 repeats: int) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    r = subprocess.run([str(python), "-c", MOSAIC_SCRIPT, str(raw), str(work / "mds"), str(seq_len), str(samples),
                        str(batch_size), str(repeats)], check=False, capture_output=True, text=True, timeout=1200, env=env, cwd=work)
    if r.returncode != 0:
        raise RuntimeError(f"MosaicML subprocess failed: {r.stderr.strip()[-600:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- Hugging Face datasets --------------------------------------------------------------------
class HFPeer:
    """`datasets.interleave_datasets` over per-domain pools of the corpus packed into seq_len
    rows (EOS between documents), with the mixture's probabilities (`first_exhausted`), a
    per-row "domain" column beside "input_ids"."""

    def __init__(self, corpus: Path, seq_len: int) -> None:
        import datasets
        import pyarrow as pa

        from mixer.formats.corpus import load_manifest, open_split

        datasets.disable_progress_bars()
        manifest = load_manifest(corpus)
        self.names = sorted(WEIGHTS)
        pools = []
        for i, name in enumerate(self.names):
            part = open_split(corpus, name, "train", manifest).parts[0]
            lengths = part.lengths
            flat = np.empty(int(lengths.sum()) + len(lengths), np.uint16)
            eos_at = np.cumsum(lengths + 1) - 1
            mask = np.ones(len(flat), bool)
            mask[eos_at] = False
            flat[mask] = part.values
            flat[eos_at] = manifest.eos_id
            n_rows = len(flat) // seq_len
            ids = pa.FixedSizeListArray.from_arrays(pa.array(flat[: n_rows * seq_len]), seq_len)
            pools.append(datasets.Dataset(pa.table({"input_ids": ids,
                                                    "domain": pa.array(np.full(n_rows, i, np.int8))})))
        t0 = time.perf_counter()
        self.mixed = datasets.interleave_datasets(pools, probabilities=[WEIGHTS[d] for d in self.names], seed=0,
                                                  stopping_strategy="first_exhausted")
        self.setup_s = time.perf_counter() - t0
        self.counts = np.zeros(len(self.names), np.int64)

    def arrow_pass(self, batch_size: int, rows_wanted: int) -> int:
        """Its fastest mode: Arrow batches, the token column flattened to NumPy without a copy
        (uint16, not widened), the per-row domain column read too."""
        tokens, counts = 0, np.zeros(len(self.names), np.int64)
        for batch in self.mixed.with_format("arrow").iter(batch_size=batch_size):
            ids = batch.column("input_ids").combine_chunks().flatten().to_numpy(zero_copy_only=True)
            tokens += ids.size
            counts += np.bincount(batch.column("domain").to_numpy(), minlength=len(self.names))
            if counts.sum() >= rows_wanted:
                break
        self.counts = counts
        return tokens

    def torch_pass(self, batch_size: int, workers: int, tokens_wanted: int) -> int:
        """The usual torch loop: a DataLoader over the torch-formatted dataset (rows fetched a
        batch at a time through `__getitems__`), int64 tensors, 0 or 2 workers."""
        from torch.utils.data import DataLoader

        tokens = 0
        for batch in DataLoader(self.mixed.with_format("torch"), batch_size=batch_size, num_workers=workers):
            tokens += batch["input_ids"].numel()
            batch["domain"]
            if tokens >= tokens_wanted:
                break
        return tokens

    def realised(self) -> dict:
        share = self.counts / max(1, self.counts.sum())
        target = np.array([WEIGHTS[d] for d in self.names])
        return {"realised": dict(zip(self.names, share.tolist())),
                "max_abs_error": float(np.max(np.abs(share - target)))}
