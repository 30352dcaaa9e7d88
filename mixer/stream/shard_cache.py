"""`ShardCache`: the shards of an object-storage URL (`s3://bucket/shards`, any fsspec URL),
downloaded into a local folder as the stream reaches them.

    cache = ShardCache("s3://bucket/shards", cache_dir="/scratch/cache", cache_limit=20 << 30)
    cache.folder            # a local shards folder: index.json and the shards fetched so far
    cache.read_order(units)       # the order this process will read shards in (prefetch follows it)
    cache.fetch(unit)       # the shard and its sidecar are local and verified; the next ones start
    cache.consumed(unit)    # read: may be evicted once the cache is over its limit

Why a cache and not reads through fsspec: a shard is one zstd frame read whole, so a local copy
costs nothing extra, lets the existing reader (`read_shard`, which checks xxh64) run unchanged,
and is read again for free on the next epoch or run while it fits.

- Layout: `cache_dir/<xxh64 of index.json>/` holds `index.json` and the shard files under their own
  names, so a rebuilt remote (a new index) never meets a stale shard of the old one.
- Every object's xxh64 is checked on download, before it is published into the cache (under a
  temporary name, then renamed: another process reading the same cache never sees half a file);
  a mismatch is one `MixerError` naming the URL. A failed download is retried (`ATTEMPTS`) and
  then is one error naming the URL: a shard is never skipped.
- Prefetch: the next `prefetch` shards of this process's order download on background threads
  while the current one is decoded and trained on.
- Eviction: after each shard is consumed, while the folder holds more than `cache_limit` bytes,
  the shards this process consumed are deleted, oldest first. Shards not yet consumed (the
  current one and those prefetched) are never evicted, so the limit is soft by at most
  `1 + prefetch` shards per reading process. `cache_limit=None` keeps everything.

The filesystem and the thread pool are made per process (DataLoader workers fork or spawn a copy
of the stream; neither survives that), from the URL and `storage_options`.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import xxhash

from mixer.core.errors import MixerError
from mixer.core.urls import cache_root, filesystem, join
from mixer.formats.corpus_handle import fetch_corpus
from mixer.formats.shard_index import ShardIndex
from mixer.formats.shards import INDEX_NAME, read_index

ATTEMPTS = 3  # downloads of one object before its error is raised (fsspec backends retry inside too)
RETRY_WAIT_S = 0.5


def default_cache_dir(url: str) -> Path:
    """`$MIXER_CACHE` or `~/.cache/mixer`, then `shards/<xxh64 of the URL>`."""
    return cache_root() / "shards" / xxhash.xxh64_hexdigest(url.rstrip("/").encode())


class ShardCache:
    """A remote shards folder read through a local cache folder (see the module docstring)."""

    def __init__(self, url: str, cache_dir: str | Path | None = None, *, cache_limit: int | None = None,
                 prefetch: int = 2, storage_options: dict[str, Any] | None = None) -> None:
        if cache_limit is not None and cache_limit < 0:
            raise MixerError(f"cache_limit={cache_limit}: give a number of bytes >= 0, or None for no limit")
        self.url = url.rstrip("/")
        self.cache_limit, self.prefetch = cache_limit, max(0, int(prefetch))
        self.storage_options = dict(storage_options or {})
        self._pid = -1
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir(self.url)
        index_bytes = self._download(INDEX_NAME, None)
        staging = root / f".index-{os.getpid()}-{threading.get_ident()}"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            _publish(staging / INDEX_NAME, index_bytes)
            index = read_index(staging)  # checked whole: seal, version, shape
            self.folder = root / xxhash.xxh64_hexdigest(index_bytes)  # one folder per index version
            self.folder.mkdir(parents=True, exist_ok=True)
            os.replace(staging / INDEX_NAME, self.folder / INDEX_NAME)
            staging.rmdir()
        except OSError as exc:
            raise MixerError(f"{root}: cannot write to the shard cache ({exc}); free space or choose another "
                             "cache_dir") from None
        self.index: ShardIndex = index
        self.read_order(list(range(len(index.shards))))
        self._consumed: list[int] = []

    # --- per process ------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_fs", "_root", "_pool", "_pending", "_lock"):
            state.pop(key, None)
        state["_pid"] = -1
        return state

    def _process(self) -> None:
        """The filesystem, thread pool and futures of this process (made again after a fork)."""
        if self._pid != os.getpid():
            self._fs, self._root = filesystem(self.url, self.storage_options)
            self._pool = ThreadPoolExecutor(max_workers=max(1, self.prefetch), thread_name_prefix="mixer-prefetch")
            self._pending: dict[int, Future] = {}
            self._lock = threading.Lock()
            self._consumed = []
            self._pid = os.getpid()

    # --- download ---------------------------------------------------------------------------
    def _download(self, name: str, xxh64: str | None) -> bytes:
        self._process()
        url = join(self.url, name)
        for attempt in range(ATTEMPTS):
            try:
                data = self._fs.cat_file(join(self._root, name))
                break
            except FileNotFoundError:
                what = ("no index.json: not a shards folder, or its build has not finished"
                        if name == INDEX_NAME else f"missing, though {INDEX_NAME} lists it")
                raise MixerError(f"{url}: {what}; check the URL or rebuild with `mixer build-shards`") from None
            except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
                if attempt == ATTEMPTS - 1:
                    raise MixerError(f"{url}: download failed after {ATTEMPTS} attempts ({type(exc).__name__}: "
                                     f"{exc}); check the storage endpoint and credentials") from None
                time.sleep(RETRY_WAIT_S * (attempt + 1))
        if xxh64 is not None and xxhash.xxh64_hexdigest(data) != xxh64:
            raise MixerError(f"{url}: checksum mismatch on download, the object is corrupt; rebuild the shards "
                             "with `mixer build-shards`")
        return data

    def _ensure(self, unit: int) -> None:
        """Download shard `unit` and its sidecar unless already cached (both verified)."""
        e = self.index.shards[unit]
        for name, xxh64 in ((e.file, e.xxh64), (e.domains.file, e.domains.xxh64)):
            path = self.folder / name
            if not path.exists():
                data = self._download(name, xxh64)
                try:
                    _publish(path, data)
                except OSError as exc:
                    raise MixerError(f"{path}: cannot write to the shard cache ({exc}); free space or choose "
                                     "another cache_dir / a smaller cache_limit") from None

    def read_order(self, units: list[int]) -> None:
        """The order this process reads shards in; prefetch follows it."""
        self._order = [u for i, u in enumerate(units) if i == 0 or units[i - 1] != u]
        self._at = {}  # unit -> its first place in the order (a dict: fetch is O(1) per shard)
        for i, u in enumerate(self._order):
            self._at.setdefault(u, i)

    def fetch(self, unit: int) -> Path:
        """Make shard `unit` local (waiting for its download) and start the next ones; returns
        the local path of its token file."""
        self._process()
        with self._lock:
            futures = [self._submit(unit)]
            at = self._at.get(unit)
            if at is not None:
                for u in self._order[at + 1:at + 1 + self.prefetch]:
                    self._submit(u)
        try:
            futures[0].result()
        finally:
            with self._lock:
                self._pending.pop(unit, None)
        return self.folder / self.index.shards[unit].file

    def _cached(self, unit: int) -> bool:
        e = self.index.shards[unit]
        return (self.folder / e.file).exists() and (self.folder / e.domains.file).exists()

    def _submit(self, unit: int) -> Future:
        if unit not in self._pending and self._cached(unit):  # a warm cache: no thread hop
            done: Future = Future()
            done.set_result(None)
            return done
        if unit not in self._pending:
            self._pending[unit] = self._pool.submit(self._ensure, unit)
        return self._pending[unit]

    def consumed(self, unit: int) -> None:
        """Shard `unit` was read by this process: evict consumed shards while over the limit."""
        self._process()
        if unit not in self._consumed:
            self._consumed.append(unit)
        if self.cache_limit is None:
            return
        with self._lock:
            pending = set(self._pending)
        used = _folder_bytes(self.folder)
        for u in list(self._consumed):
            if used <= self.cache_limit:
                break
            if u in pending:
                continue
            e = self.index.shards[u]
            for name in (e.file, e.domains.file):
                path = self.folder / name
                try:
                    size = path.stat().st_size
                    path.unlink()
                    used -= size
                except FileNotFoundError:  # another process evicted it first
                    pass
            self._consumed.remove(u)


def _publish(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (a temporary name, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _folder_bytes(folder: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))


def local_copy(url: str) -> Path:
    """A whole shards folder or corpus on object storage as a local folder, for the commands
    that read every byte (`mixer verify`, `mixer inspect`): shards (a URL with `index.json`)
    are downloaded into their cache, each verified on download; a corpus is fetched once
    (`mixer.formats.corpus_handle.fetch_corpus`)."""
    fs, root = filesystem(url)
    try:
        is_shards = fs.exists(join(root, INDEX_NAME))
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
        raise MixerError(f"{url}: cannot read it ({type(exc).__name__}: {exc}); check the storage endpoint "
                         "and credentials") from None
    if not is_shards:
        return fetch_corpus(url)
    return shards_copy(url)


def shards_copy(url: str, *, whole: bool = True) -> Path:
    """The shards at `url` as a local folder in their cache (`default_cache_dir`): every shard
    and sidecar downloaded and verified (`whole`), or `index.json` alone. For the commands that
    read shards as a folder (`mixer inspect`, `mixer export-shards`); a URL that holds no
    `index.json` is one error naming it."""
    cache = ShardCache(url)
    if whole:
        for unit in range(len(cache.index.shards)):
            cache.fetch(unit)
    return cache.folder
