"""Tokens/s of `MixtureStream` over shards on a local S3 server (through its cache) against the
same shards on local disk, in one run, alternated.

    python -m bench.object_storage [--tokens 16M] [--seq-len 1024] [--repeats 5]

* disk: `MixtureStream(folder)`, a consumer loop over `DataLoader(stream, batch_size=B)` (one
  consumer thread, no workers), `input_ids` + `domain_ids` int64 [B, L] per batch.
* s3, cold: `MixtureStream(ShardCache("s3://bench/shards", fresh_folder))`: every shard downloaded over
  HTTP from moto in server mode (in this process, so its request handling competes for the same
  2 cores and the GIL: a real store is faster), verified, prefetched 2 ahead. Information only.
* s3, warm: the same URL and cache folder again: `index.json` fetched, the shards read from the
  cache. Goal (issue 26): >= 0.8x of disk.
* publish: what `build-shards --out s3://...` adds to a local build: the built folder copied into
  the staging folder, every object hashed (the upload journal) and PUT, `index.json` last
  (`mixer.core.urls.publish_folder`), to the same moto server. Information only.

disk and warm runs alternate (disk, warm, disk, warm, ...) so drift in the shared machine's
load hits both; ratios quote medians (`bench.common.timed`). Token ids are Zipf-distributed
(`bench.common.zipf_map`), so the shards compress as real ones do. Writes
bench/results/object_storage.json with the machine's load, thread counts and versions.
Needs `moto[server]` and `s3fs` (the test extra). About a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import goal, machine, zipf_map

RESULTS = Path(__file__).parent / "results" / "object_storage.json"
WEIGHTS = {"books": 0.1, "code": 0.2, "news": 0.3, "web": 0.4}
BUCKET = "bench"


def make_shards(work: Path, budget: int, seq_len: int, shard_tokens: int) -> Path:
    from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
    from mixer.shards import build
    from mixer.shards.plan import PlanConfig
    from mixer.shards.write import ShardConfig

    corpus, shards = work / "corpus", work / "shards"
    mean = 500
    lengths = {d: lognormal_lengths(int(1.5 * w * budget / mean) + 10, mean, 1.0, i)
               for i, (d, w) in enumerate(WEIGHTS.items())}
    write_synthetic_corpus(corpus, lengths, vocab_size=50257, seed=0, token_map=zipf_map(50257))
    build(corpus, WEIGHTS, shards, plan=PlanConfig(tokens=budget, seq_len=seq_len, seed=0),
          shards=ShardConfig(shard_tokens=shard_tokens, workers=2))
    return shards


def start_server() -> tuple[object, str]:
    import socket

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint)
    return server, endpoint


def upload(shards: Path) -> str:
    import boto3

    c = boto3.client("s3")
    c.create_bucket(Bucket=BUCKET)
    for p in sorted(shards.iterdir()):
        c.put_object(Bucket=BUCKET, Key=f"shards/{p.name}", Body=p.read_bytes())
    return f"s3://{BUCKET}/shards"


def one_pass(source: str | Path, batch_size: int, cache_dir: Path | None = None) -> tuple[float, int]:
    """Seconds for one pass (stream made inside the timing: a URL's index fetch counts), tokens."""
    from torch.utils.data import DataLoader

    from mixer import MixtureStream
    from mixer.stream.shard_cache import ShardCache

    t0 = time.perf_counter()
    stream = MixtureStream(source if cache_dir is None else ShardCache(str(source), cache_dir), batch_size=batch_size)
    tokens = 0
    for batch in DataLoader(stream, batch_size=batch_size):
        tokens += batch["input_ids"].numel()
    return time.perf_counter() - t0, tokens


def publish(shards: Path, work: Path) -> tuple[float, int]:
    """Seconds to publish the built folder at a new URL (`publish_folder`), and its bytes."""
    import shutil

    from mixer.core.urls import publish_folder

    os.environ["MIXER_CACHE"] = str(work / "mixer-cache")
    t0 = time.perf_counter()
    publish_folder(f"s3://{BUCKET}/published", lambda folder: shutil.copytree(shards, folder), marker="index.json",
                   overwrite=False)
    return time.perf_counter() - t0, sum(p.stat().st_size for p in shards.iterdir())


def main() -> None:
    from mixer.core.units import parse_count

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", default="16M")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--shard-tokens", default="2Mi")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    budget = parse_count(args.tokens, "--tokens")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mixer-bench-s3-") as tmp:
        work = Path(tmp)
        shards = make_shards(work, budget, args.seq_len, parse_count(args.shard_tokens, "--shard-tokens"))
        server, endpoint = start_server()
        try:
            url = upload(shards)
            cold_s, tokens = one_pass(url, args.batch_size, work / "cache")
            one_pass(shards, args.batch_size)  # page cache warm for the disk side too
            disk, warm = [], []
            for _ in range(args.repeats):  # alternated
                disk.append(one_pass(shards, args.batch_size)[0])
                warm.append(one_pass(url, args.batch_size, work / "cache")[0])
            publish_s, publish_bytes = publish(shards, work)
        finally:
            server.stop()
    med = {"disk": statistics.median(disk), "s3_warm": statistics.median(warm)}
    rate = {k: tokens / v for k, v in med.items()}
    ratio = rate["s3_warm"] / rate["disk"]
    result = {
        "tokens": tokens, "seq_len": args.seq_len, "batch_size": args.batch_size,
        "disk": {"median_s": med["disk"], "best_s": min(disk), "runs_s": disk, "tokens_per_s": rate["disk"]},
        "s3_warm": {"median_s": med["s3_warm"], "best_s": min(warm), "runs_s": warm, "tokens_per_s": rate["s3_warm"]},
        "s3_cold": {"s": cold_s, "tokens_per_s": tokens / cold_s, "server": "moto ThreadedMotoServer, this process"},
        "publish": {"s": publish_s, "bytes": publish_bytes, "mb_per_s": publish_bytes / publish_s / 1e6,
                    "server": "moto ThreadedMotoServer, this process"},
        "ratio_warm_over_disk": ratio, "goal": goal(ratio, 0.8),
        "machine": machine({"consumer": 1, "dataloader_workers": 0, "prefetch_threads": 2}),
        "load_before": list(load_before), "load_after": list(os.getloadavg()), "endpoint": endpoint,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{tokens:,} tokens, seq_len {args.seq_len}, batch {args.batch_size}, medians of {args.repeats} alternated")
    print(f"disk       {rate['disk'] / 1e6:8.1f} M tokens/s")
    print(f"s3 warm    {rate['s3_warm'] / 1e6:8.1f} M tokens/s   {ratio:.2f}x disk   {goal(ratio, 0.8)}")
    print(f"s3 cold    {tokens / cold_s / 1e6:8.1f} M tokens/s   (moto in this process; information)")
    print(f"publish    {publish_bytes / publish_s / 1e6:8.1f} MB/s        ({publish_bytes / 1e6:.1f} MB of shards to "
          "moto in this process; information)")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
