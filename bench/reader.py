"""Tokens/s delivered to a training loop by MixtureStream (shards) and MixtureSampler (corpus),
against the page-cache limit and two peers, in one run on the same sequences.

    python -m bench.reader [--tokens 64M] [--seq-len 1024] [--batch-size 8] [--no-mosaic]

* limit: the same uncompressed token bytes read from page cache (a raw file, read twice,
  the second read timed); nothing can deliver them faster.
* ours: a consumer loop over `DataLoader(stream, batch_size=B, num_workers=0|2)`, each batch
  `input_ids` + `domain_ids` int64 [B, L] tensors (as a trainer receives them).
* MosaicML streaming 0.13 `StreamingDataset` over the same sequences written as MDS with zstd
  (tokens only: it does less work than ours), run in its own venv (created under --cache on
  first use, ~3 min; the peer is skipped with a note if that fails). Goal: ours >= 10x.
* Hugging Face `datasets.interleave_datasets` over per-domain pools of the same corpus packed
  into seq_len rows, with the same probabilities (`first_exhausted`), read in its fastest
  documented mode: `with_format("arrow").iter(batch_size=B)` and a zero-copy flatten of the
  token column to a NumPy uint16 array (tokens only). Its numpy-format `.iter()` and a torch
  DataLoader are reported beside it. Goal: ours >= 10x of the fastest mode, like for like
  (tokens only, batched, no workers).

Every figure is the median of `--repeats` passes (the best is kept beside it); both sides use
the same thread count (one consumer thread; `workers=2` rows say so). Token ids are Zipf-
distributed (`bench.common.zipf_map`), so the shards compress as real ones do.
Writes bench/results/reader.json with the load average, thread counts and versions. Expect
about 3-4 minutes on 2 cores, plus ~3 min the first time the MosaicML venv is made.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import goal, machine, timed, zipf_map

RESULTS = Path(__file__).parent / "results" / "reader.json"
WEIGHTS = {"books": 0.1, "code": 0.2, "news": 0.3, "web": 0.4}
STREAMING_PINS = ["torch==2.14.1", "torchvision==0.29.1", "mosaicml-streaming==0.13.0"]


# --- data ------------------------------------------------------------------------------------
def make_data(work: Path, budget: int, seq_len: int) -> tuple[Path, Path, Path]:
    """A synthetic corpus (1.5x what each domain needs), its shards, and the raw token rows."""
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.formats.shards import read_index, read_shard
    from mixer.shards.write import ShardConfig, write_shards
    from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

    corpus, shards, raw = work / "corpus", work / "shards", work / "stream.u16"
    mean = 500
    lengths = {d: lognormal_lengths(int(1.5 * w * budget / mean) + 10, mean, 1.0, i)
               for i, (d, w) in enumerate(WEIGHTS.items())}
    write_synthetic_corpus(corpus, lengths, vocab_size=50257, seed=0, token_map=zipf_map(50257))
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=budget, seq_len=seq_len, seed=0))
    write_shards(plan, corpus, shards, ShardConfig(shard_tokens=1 << 22, workers=2))
    index = read_index(shards)
    with open(raw, "wb") as f:
        for e in index.shards:
            f.write(read_shard(shards / e.file, index).tobytes())
    return corpus, shards, raw


# --- the limit -------------------------------------------------------------------------------
def bench_limit(raw: Path) -> dict:
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    best = 0.0
    for _ in range(3):  # the first read warms the page cache
        t0 = time.perf_counter()
        n = 0
        with open(raw, "rb", buffering=0) as f:
            while (k := f.readinto(view)) > 0:
                n += k
        best = max(best, n / (time.perf_counter() - t0))
    return {"bytes_per_s": best, "tokens_per_s": best / 2}


# --- ours ------------------------------------------------------------------------------------
def consume(dataset, batch_size: int | None, workers: int, repeats: int = 1) -> dict:
    """Median tokens/s of `repeats` full passes of a DataLoader over `dataset`."""
    from torch.utils.data import DataLoader

    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tokens = 0
        for batch in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
            tokens += batch["input_ids"].numel()
            batch.get("domain_ids")  # delivered alongside unless domain_ids=False: one int64 per token
        walls.append(time.perf_counter() - t0)
    wall = float(np.median(walls))
    return {"workers": workers, "batched": batch_size is None, "tokens": tokens, "wall_s": wall, "wall_s_runs": walls,
            "tokens_per_s": tokens / wall, "domain_ids": getattr(dataset.source, "with_domains", True)}


def bench_ours(corpus: Path, shards: Path, budget: int, seq_len: int, batch_size: int, repeats: int) -> dict:
    """Per-sequence items collated by the DataLoader (the default), and `batched=True` (whole
    batches, DataLoader(batch_size=None)); 0 and 2 workers. Then, like for like with the
    datasets peer (tokens only): batched, no domain ids, 0 workers."""
    from mixer import MixtureSampler, MixtureStream

    out = {"MixtureStream": [], "MixtureSampler": []}
    for batched in (False, True):
        for workers in (0, 2):
            kw = dict(rank=0, world_size=1, batch_size=batch_size, batched=batched)
            loader_batch = None if batched else batch_size
            out["MixtureStream"].append(consume(MixtureStream(shards, **kw), loader_batch, workers, repeats))
            sampler = MixtureSampler(corpus, WEIGHTS, budget, seq_len, 0, **kw)
            out["MixtureSampler"].append(consume(sampler, loader_batch, workers, repeats))
    kw = dict(rank=0, world_size=1, batch_size=batch_size, batched=True, domain_ids=False)
    out["MixtureStream"].append(consume(MixtureStream(shards, **kw), None, 0, repeats))
    out["MixtureSampler"].append(consume(MixtureSampler(corpus, WEIGHTS, budget, seq_len, 0, **kw), None, 0,
                                         repeats))
    return out


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


def streaming_python(cache: Path) -> tuple[Path | None, str]:
    """The venv's python, creating it on first use; (None, why) when that fails."""
    venv = cache / "streaming-venv"
    done = venv / ".mixer-complete"
    python = venv / "bin" / "python"
    if done.exists():
        return python, "cached venv"
    shutil.rmtree(venv, ignore_errors=True)
    print(f"creating the MosaicML streaming venv in {venv} (first run only, ~3 min) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *STREAMING_PINS], check=True,
                       capture_output=True, text=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as exc:
        tail = getattr(exc, "stderr", "") or ""
        return None, f"venv creation failed ({type(exc).__name__}: {str(tail).strip()[-300:] or exc})"
    done.touch()
    return python, "created venv"


def bench_mosaic(python: Path, raw: Path, work: Path, seq_len: int, samples: int, batch_size: int,
                 repeats: int) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    r = subprocess.run([str(python), "-c", MOSAIC_SCRIPT, str(raw), str(work / "mds"), str(seq_len), str(samples),
                        str(batch_size), str(repeats)], capture_output=True, text=True, timeout=1200, env=env, cwd=work)
    if r.returncode != 0:
        raise RuntimeError(f"MosaicML subprocess failed: {r.stderr.strip()[-600:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- Hugging Face datasets --------------------------------------------------------------------
def bench_hf(corpus: Path, seq_len: int, rows_wanted: int, batch_size: int, repeats: int) -> dict:
    import datasets
    import pyarrow as pa

    from mixer.formats.corpus import load_manifest, open_split

    datasets.disable_progress_bars()
    manifest = load_manifest(corpus)
    names = sorted(WEIGHTS)
    pools = []
    for i, name in enumerate(names):  # each domain's documents joined by EOS, packed into rows
        split = open_split(corpus, name, "train", manifest)
        part = split.parts[0]
        lengths = part.lengths
        flat = np.empty(int(lengths.sum()) + len(lengths), np.uint16)
        ends = np.cumsum(lengths + 1)
        eos_at = ends - 1
        mask = np.ones(len(flat), bool)
        mask[eos_at] = False
        flat[mask] = part.values
        flat[eos_at] = manifest.eos_id
        n_rows = len(flat) // seq_len
        ids = pa.FixedSizeListArray.from_arrays(pa.array(flat[: n_rows * seq_len]), seq_len)
        pools.append(datasets.Dataset(pa.table({"input_ids": ids, "domain": pa.array(np.full(n_rows, i, np.int8))})))
    t0 = time.perf_counter()
    mixed = datasets.interleave_datasets(pools, probabilities=[WEIGHTS[d] for d in names], seed=0,
                                         stopping_strategy="first_exhausted")
    setup = time.perf_counter() - t0

    def arrow_pass():  # the fastest mode: Arrow batches, token column flattened without a copy
        tokens, counts = 0, np.zeros(len(names), np.int64)
        for batch in mixed.with_format("arrow").iter(batch_size=batch_size):
            ids = batch.column("input_ids").combine_chunks().flatten().to_numpy(zero_copy_only=True)
            tokens += ids.size
            counts += np.bincount(batch.column("domain").to_numpy(), minlength=len(names))
            if counts.sum() >= rows_wanted:
                break
        return tokens, counts

    def numpy_pass():  # numpy format: one copy per batch into a [B, L] array
        tokens = 0
        for batch in mixed.with_format("numpy").iter(batch_size=batch_size):
            tokens += batch["input_ids"].size
            if tokens >= rows_wanted * seq_len:
                break
        return tokens, None

    def torch_loop():  # the usual torch loop: a DataLoader over the torch-formatted dataset
        from torch.utils.data import DataLoader

        tokens = 0
        for batch in DataLoader(mixed.with_format("torch"), batch_size=batch_size):
            tokens += batch["input_ids"].numel()
            if tokens >= rows_wanted * seq_len // 4:
                break
        return tokens, None

    res = {"setup_s": setup}
    for label, fn in (("arrow", arrow_pass), ("numpy", numpy_pass), ("dataloader_torch", torch_loop)):
        t, (tokens, counts) = timed(fn, repeats)
        res[label] = {"tokens": tokens, "tokens_per_s": tokens / t["median_s"], "time": t}
        if counts is not None:
            realised = counts / counts.sum()
    res["tokens_per_s"] = res["arrow"]["tokens_per_s"]
    res["realised"] = dict(zip(names, realised.tolist()))
    res["target"] = {d: WEIGHTS[d] for d in names}
    res["max_abs_error"] = float(np.max(np.abs(realised - np.array([WEIGHTS[d] for d in names]))))
    return res


def main() -> None:
    from mixer.core.units import parse_count

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="64M", help="Budget of the stream (tokens).")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--peer-tokens", default="8M", help="Tokens the MosaicML peer reads (it is slow).")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mixer" / "bench")
    ap.add_argument("--no-mosaic", action="store_true", help="Skip the MosaicML streaming peer.")
    ap.add_argument("--repeats", type=int, default=3, help="passes per figure; the median is quoted")
    args = ap.parse_args()
    before = machine({"consumer": 1, "dataloader_workers": "0 and 2 (said per row)", "zstd_in_shards": 1})
    budget, L, B = parse_count(args.tokens), args.seq_len, args.batch_size
    work = Path(tempfile.mkdtemp(prefix="mixer-bench-reader-"))
    notes: list[str] = []
    try:
        t0 = time.perf_counter()
        corpus, shards, raw = make_data(work, budget, L)
        print(f"data: {budget / 1e6:.0f}M tokens, seq_len {L}, {len(list(shards.glob('shard-?????.zst')))} shards "
              f"({time.perf_counter() - t0:.1f} s to build)")
        limit = bench_limit(raw)
        print(f"limit (page cache, uncompressed): {limit['tokens_per_s'] / 1e6:,.0f} M tokens/s "
              f"({limit['bytes_per_s'] / 1e9:.2f} GB/s)")
        ours = bench_ours(corpus, shards, budget, L, B, args.repeats)
        for cls, runs in ours.items():
            for r in runs:
                how = ("batched " if r["batched"] else "per-seq ") + ("" if r["domain_ids"] else "tokens only ")
                print(f"{cls:>14} {how} workers={r['workers']}: {r['tokens_per_s'] / 1e6:8.1f} M tokens/s "
                      f"({r['tokens_per_s'] / limit['tokens_per_s']:.3f} x limit)")
        mosaic = None
        if not args.no_mosaic:
            python, how = streaming_python(args.cache)
            if python is None:
                notes.append(f"MosaicML streaming skipped: {how}")
            else:
                try:
                    mosaic = bench_mosaic(python, raw, work, L, parse_count(args.peer_tokens) // L, B, args.repeats)
                except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                    notes.append(f"MosaicML streaming skipped: {exc}")
        ratios = {}
        if mosaic:
            first = np.fromfile(raw, dtype=np.uint16, count=8).tolist()
            if mosaic[0]["first"] != first:
                notes.append("MosaicML delivered other tokens than ours (first row differs)")
            for m, r in zip(mosaic, ours["MixtureStream"]):  # both per-sequence, DataLoader(batch_size=B)
                ratio = r["tokens_per_s"] / m["tokens_per_s"]
                ratios[f"stream_vs_mosaic_workers{m['workers']}"] = ratio
                print(f"      MosaicML workers={m['workers']}: {m['tokens_per_s'] / 1e6:8.2f} M tokens/s "
                      f"-> MixtureStream per-seq {ratio:,.1f}x ({goal(ratio, 10)})")
        hf = bench_hf(corpus, L, min(budget // L, 20000), B, args.repeats)
        print(f"datasets.interleave_datasets: {hf['arrow']['tokens_per_s'] / 1e6:8.2f} M tokens/s arrow .iter() + "
              f"zero-copy flatten (its fastest), {hf['numpy']['tokens_per_s'] / 1e6:.2f} numpy .iter(), "
              f"{hf['dataloader_torch']['tokens_per_s'] / 1e6:.2f} through a DataLoader (torch format); realised "
              + ", ".join(f"{d} {hf['realised'][d]:.3f}/{hf['target'][d]:.2f}" for d in hf["target"])
              + f" (max error {hf['max_abs_error']:.3f}; ours: exact)")
        # [per-seq w0, per-seq w2, batched w0, batched w2, batched w0 tokens only]
        st, sa = ours["MixtureStream"], ours["MixtureSampler"]
        fastest = hf["arrow"]["tokens_per_s"]
        ratios["stream_tokens_only_vs_hf_fastest"] = st[4]["tokens_per_s"] / fastest
        ratios["sampler_tokens_only_vs_hf_fastest"] = sa[4]["tokens_per_s"] / fastest
        ratios["stream_batched_vs_hf_fastest"] = st[2]["tokens_per_s"] / fastest
        ratios["stream_perseq_vs_hf_dataloader"] = st[0]["tokens_per_s"] / hf["dataloader_torch"]["tokens_per_s"]
        ratios["stream_batched_vs_limit"] = st[2]["tokens_per_s"] / limit["tokens_per_s"]
        print(f"vs datasets at its fastest, like for like (tokens only, batched, 0 workers): MixtureStream "
              f"{ratios['stream_tokens_only_vs_hf_fastest']:,.2f}x ({goal(ratios['stream_tokens_only_vs_hf_fastest'], 10)}), "
              f"MixtureSampler {ratios['sampler_tokens_only_vs_hf_fastest']:,.2f}x "
              f"({goal(ratios['sampler_tokens_only_vs_hf_fastest'], 10)}); with domain ids (more work than datasets "
              f"does) MixtureStream batched {ratios['stream_batched_vs_hf_fastest']:,.2f}x; per-seq through a "
              f"DataLoader vs its torch DataLoader {ratios['stream_perseq_vs_hf_dataloader']:,.1f}x")
        for n in notes:
            print(f"note: {n}")
        from mixer.formats.shards import read_index

        index = read_index(shards)
        ours_realised = {d: index.domains[d].realised_tokens / index.budget_tokens for d in index.domain_order}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "machine": before, "loadavg_after": list(os.getloadavg()), "repeats": args.repeats,
            "mosaic_venv_pins": STREAMING_PINS,
            "tokens": budget, "seq_len": L, "batch_size": B, "limit": limit, "ours": ours,
            "ours_realised": ours_realised, "mosaic": mosaic, "hf_interleave": hf, "ratios": ratios,
            "notes": notes}, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
