"""The litdata peer of `bench.reader`, run as a script in its own process (and its own venv
when litdata cannot be imported next to the project's torch):

    python bench/litdata_peer.py write RAW OUT SEQ_LEN          # litdata.optimize, TokensLoader
    python bench/litdata_peer.py read OUT SEQ_LEN BATCH WORKERS  # one pass; prints a JSON line
    python bench/litdata_peer.py version

`write` stores the rows of RAW (uint16 [*, SEQ_LEN], the stream's tokens in stream order) with
`litdata.optimize(..., item_loader=TokensLoader())`, uncompressed: litdata at its best here.
`read` times one pass of `StreamingDataLoader(StreamingDataset(OUT, TokensLoader(block_size=
SEQ_LEN), shuffle=False), batch_size=BATCH, num_workers=WORKERS)`: tokens only (TokensLoader has
no second field for domain ids). Only numpy, torch and litdata are imported.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

ROWS_PER_ITEM = 256


def _rows(raw: str, seq_len: int) -> np.ndarray:
    return np.memmap(raw, dtype=np.uint16, mode="r").reshape(-1, seq_len)


def _item(args: tuple[str, int, int]):
    import torch

    raw, seq_len, i = args
    rows = _rows(raw, seq_len)
    yield torch.from_numpy(np.ascontiguousarray(rows[i * ROWS_PER_ITEM:(i + 1) * ROWS_PER_ITEM]).reshape(-1))


def write(raw: str, out: str, seq_len: int) -> None:
    from litdata import TokensLoader, optimize

    n = len(_rows(raw, seq_len))
    optimize(fn=_item, inputs=[(raw, seq_len, i) for i in range(-(-n // ROWS_PER_ITEM))], output_dir=out,
             chunk_bytes="64MB", item_loader=TokensLoader(), num_workers=1, mode="overwrite")


def read(out: str, seq_len: int, batch: int, workers: int) -> dict:
    from litdata import StreamingDataLoader, StreamingDataset, TokensLoader

    ds = StreamingDataset(out, item_loader=TokensLoader(block_size=seq_len), shuffle=False)
    t0 = time.perf_counter()
    tokens, first = 0, None
    for b in StreamingDataLoader(ds, batch_size=batch, num_workers=workers):
        tokens += b.numel()
        if first is None:
            first = b[0, :8].tolist()
    wall = time.perf_counter() - t0
    return {"workers": workers, "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall, "first": first}


if __name__ == "__main__":
    if sys.argv[1] == "version":
        import litdata

        print(litdata.__version__)
    elif sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        print(json.dumps(read(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
