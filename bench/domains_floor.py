"""The least a build of many domains must do beyond a build of few: the floor under the
K = 10,000 goal of `bench.build` (within 2x of K = 10, the same 8M tokens).

`python -m bench.domains_floor` (about 10 s, and a minute more the first time, to write the
corpus `bench.build` uses; run `python -m bench.build` first for the budget line, which needs its
whole-command times at K = 10 and 10,000; results in `bench/results/domains_floor.json`).

What K = 10,000 adds and no design can skip, each step as lean as Python allows, with every
per-domain record held as columns (plain lists and arrays: no typed object per domain, part or
file), timed step by step in this process:

1. Read `corpus.json` (7.9 MB) and parse it with the json module's C decoder.
2. Its canonical bytes (the corpus's sha256) and its seal (`mixer.formats.schema`).
3. The checks the manifest needs (a type per field, counts not negative, every file
   checksummed), written into columns instead of records.
4. Each Arrow part opened, its size taken, read into one buffer and closed (four system calls).
5. Each part's xxh3-64 against the manifest.
6. Every part's Arrow layout at once (`mixer.formats.arrow.ipc.read_parts`).
7. Every document's offsets gathered in one array operation.
8. The plan's two kernels over all domains: every domain's first permutation pass
   (`select_causal_first_passes`) and the interleave (`interleave_midpoint_threaded`, 2 threads).
9. `index.json`: a record per domain, the seal, the indented text, the write.

The sum is a lower bound of what K = 10,000 costs over K = 10: repeated in one warm process
(the median of `--repeats`), without the whole command's page faults and first calls. Beside it,
the budget the goal leaves: K = 10's whole command (from `bench/results/build.json`, the same
machine) once more.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine

RESULTS = Path(__file__).resolve().parent / "results"


def floor_once(corpus: Path, tokens: int) -> dict[str, float]:
    """One pass of the floor's steps on `corpus` (equal one-part domains); seconds per step."""
    import orjson
    import xxhash

    from mixer.formats.arrow.ipc import knows_layout, read_parts
    from mixer.formats.corpus import open_part
    from mixer.formats.schema import canonical_and_seal_ok
    from mixer.kernels.aot import kernel
    from mixer.shards.midpoint import interleave_midpoint_threaded
    from mixer.shards.plan import domain_hash

    steps: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        steps[name] = now - t
        t = now

    obj = json.loads((corpus / "corpus.json").read_bytes())
    lap("parse corpus.json (C decoder)")
    whole, sealed = canonical_and_seal_ok(obj, plain_floats=True)
    hashlib.sha256(whole).hexdigest()
    assert sealed
    lap("canonical bytes, sha256, seal")
    files, names = obj["files"], sorted(obj["domains"])
    docs, paths, sizes, xx = [], [], [], []
    for n in names:
        d = obj["domains"][n]
        if type(d) is not dict or type(d.get("kind")) is not str or type(d.get("splits")) is not dict:
            raise ValueError(n)
        for split, sp in d["splits"].items():
            a, b, fs = sp["documents"], sp["tokens"], sp["files"]
            if type(a) is not int or type(b) is not int or a < 0 or b < 0 or type(fs) is not list:
                raise ValueError(n)
            if split == "train":
                docs.append(a)
                for f in fs:
                    c = files[f]
                    paths.append(f"{corpus}/{f}")
                    sizes.append(c["bytes"])
                    xx.append(c["xxh3_64"])
    if not all(type(c) is dict and type(c.get("bytes")) is int and type(c.get("xxh3_64")) is str
               and type(c.get("sha256")) is str for c in files.values()):
        raise ValueError("files")
    lap("checks, into columns")
    starts = np.zeros(len(paths) + 1, np.int64)
    np.cumsum([-(-n // 64) * 64 for n in sizes], out=starts[1:])
    buf = np.zeros(int(starts[-1]) + 1024, np.uint8)
    view = memoryview(buf)
    for p, a, n in zip(paths, starts.tolist(), sizes):
        fd = os.open(p, os.O_RDONLY)
        os.fstat(fd)
        os.readv(fd, [view[a:a + n]])
        os.close(fd)
    lap("open, fstat, read, close each part")
    if not all(xxhash.xxh3_64_hexdigest(view[a:a + n]) == h for a, n, h in zip(starts.tolist(), sizes, xx)):
        raise ValueError("checksum")
    lap("xxh3-64 of each part")
    dtype = np.dtype(obj["token_dtype"])
    if not knows_layout(dtype):
        open_part(paths[0], dtype)
    found = read_parts(buf, starts[:-1], np.array(sizes, np.int64), dtype)
    assert found is not None and found.ok.all()
    lap("layout of all parts")
    rows = found.rows
    first = found.offsets_at // 8 - np.concatenate([[0], np.cumsum(rows[:-1] + 1)])
    offsets = buf.view(np.int64)[np.repeat(first, rows + 1) + np.arange(int((rows + 1).sum()))]
    ends = np.cumsum(rows + 1)
    keep = np.ones(len(offsets), bool)
    keep[ends - 1] = False
    lengths = offsets[1:][keep[:-1]] - offsets[keep]
    lap("every document's offsets")
    k = len(names)
    dom_start = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    targets = kernel("largest_remainder")(np.full(k, 1 / k), tokens)
    hashes = np.array([domain_hash(n) for n in names], np.uint64)
    picked_docs, counts, picked, taken = kernel("select_causal_first_passes")(lengths, dom_start, targets,
                                                                              np.uint64(0), hashes)
    unit_start = np.concatenate([[0], np.cumsum(picked)]).astype(np.int64)
    at = np.repeat(dom_start[:-1] - unit_start[:-1], picked) + np.arange(int(unit_start[-1]))  # (picked, in place)
    interleave_midpoint_threaded(counts[at] + 1, unit_start, threads=2, out_dom=np.empty(int(unit_start[-1]), np.int32))
    lap("plan kernels: first passes, interleave")
    index = {"domains": {n: {"index": i, "weight": 1 / k, "target_tokens": int(targets[i]),
                             "realised_tokens": int(taken[i]), "documents_used": int(picked[i]),
                             "documents_available": docs[i], "tokens_available": int(lengths[dom_start[i]:dom_start[i + 1]].sum()),
                             "epochs": 1} for i, n in enumerate(names)}}
    seal = xxhash.xxh3_64_hexdigest(orjson.dumps(index, option=orjson.OPT_SORT_KEYS))
    text = orjson.dumps({**index, "checksum": seal}, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    out = Path(tempfile.gettempdir()) / f"mixer-domains-floor-{os.getpid()}.json"
    out.write_bytes(text + b"\n")
    out.unlink()
    lap("index.json: records, seal, text, write")
    return steps


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scratch", default="/tmp/mixer-bench-build", help="where `bench.build` keeps its corpora")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="K = 100, 1M tokens, 2 runs: the CI smoke test")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from bench.build import equal_domains_corpus

    k, tokens, repeats = (100, 1_000_000, 2) if args.quick else (10_000, 8_000_000, args.repeats)
    corpus = Path(args.scratch) / f"k{k}"
    equal_domains_corpus(corpus, k, tokens)  # bench.build's corpus, the same (made once, kept by a stamp)
    budget = tokens // 1024 * 1024  # whole sequences of 1024, as the command rounds them
    before = machine()
    gc.disable()  # as the command runs
    floor_once(corpus, budget)  # warm-up: the page cache, the kernels, the layout
    runs = [floor_once(corpus, budget) for _ in range(repeats)]
    gc.enable()
    med = {step: statistics.median(r[step] for r in runs) for step in runs[0]}
    total = statistics.median(sum(r.values()) for r in runs)
    print(f"K = {k:,} beyond K = 10, the least it must do (seconds, median of {repeats} in one warm process):")
    for step, s in med.items():
        print(f"  {s:7.4f}  {step}")
    print(f"  {total:7.4f}  in all")
    result = {"k": k, "tokens": budget, "steps_median_s": med, "total_median_s": total, "runs": runs,
              "machine": before, "loadavg_after": list(os.getloadavg())}
    out = Path(args.out)
    build = out / "build.json"
    m = json.loads(build.read_text()).get("domains", {}) if build.is_file() else {}
    if not args.quick and m.get("k") == [10, k]:
        small, large = m["median_s"]["10"], m["median_s"][str(k)]
        result["build"] = {"k10_s": small, f"k{k}_s": large}
        print(f"the goal (within 2x) leaves {small:.2f} s beyond K = 10's {small:.2f} s; the floor takes {total:.2f} s "
              f"of it ({total / small:.0%}); the command takes {large - small:.2f} s beyond ({large / small:.1f}x in "
              f"all); a build that did only the floor: {(small + total) / small:.2f}x (`{build}`)")
    out.mkdir(parents=True, exist_ok=True)
    (out / ("domains_floor_quick.json" if args.quick else "domains_floor.json")).write_text(
        json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
