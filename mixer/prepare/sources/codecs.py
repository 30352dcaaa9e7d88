"""Files compressed whole (`.gz`, `.bz2`, `.xz`, `.zst`), read through their codec.

Corpora ship so (`a.txt.gz`, C4's `.json.gz`, the Pile's `.jsonl.zst`); read as bytes such a file
would be skipped as binary. A damaged or truncated file is an error naming it, never less text.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from pathlib import Path
from typing import Any

from mixer.core.errors import MixerError


class ZstdFrames(io.RawIOBase):
    """A zstd file's content, frame after frame, streamed. `zstandard.open` and its stream
    reader return what they decoded of a truncated frame, or nothing, without a word; here a
    file that ends inside a frame raises `ZstdError`."""

    def __init__(self, path: Path) -> None:
        import zstandard

        self._file, self._zstd = open(path, "rb"), zstandard.ZstdDecompressor()
        self._frame, self._out, self._at = None, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at == len(self._out):
            chunk = self._file.read(1 << 20)
            if not chunk:
                if self._frame is not None and not self._frame.eof:
                    import zstandard

                    raise zstandard.ZstdError("the file ends inside a frame (truncated)")
                return 0
            out = []
            while chunk:  # (a frame may end inside the chunk: the next one starts in its unused data)
                if self._frame is None or self._frame.eof:
                    self._frame = self._zstd.decompressobj()
                out.append(self._frame.decompress(chunk))
                chunk = self._frame.unused_data if self._frame.eof else b""
            self._out, self._at = b"".join(out), 0
        n = min(len(buffer), len(self._out) - self._at)
        buffer[:n] = self._out[self._at:self._at + n]
        self._at += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def zstd_open(f: Path, mode: str, **kw: Any):
    stream = io.BufferedReader(ZstdFrames(f), 1 << 16)
    return io.TextIOWrapper(stream, **kw) if "t" in mode else stream


CODECS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zst": zstd_open}


def opener(f: Path):
    """The open function for file `f`: its compression codec's, or the plain one."""
    return CODECS.get(f.suffix.lower(), open)


def codec_errors() -> tuple[type[BaseException], ...]:
    """What a damaged compressed file raises while read: gzip's `BadGzipFile` and bz2's are
    `OSError`s, but a damaged deflate stream inside a valid gzip header is `zlib.error`, a cut
    one `EOFError` (found by feeding damaged files: `tests/test_source_faults.py`)."""
    import zstandard

    return OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError


def damaged(f: Path, exc: BaseException) -> MixerError:
    """The one line for a file whose codec failed while it was streamed (`codec_errors`)."""
    return MixerError(f"{f}: unreadable ({exc or type(exc).__name__}); check the file")


def read_whole(f: Path) -> bytes:
    """The file's bytes, decompressed when it is compressed; a damaged one is one line naming it."""
    if opener(f) is open:
        try:
            return f.read_bytes()
        except OSError as exc:
            raise MixerError(f"{f}: unreadable ({exc.strerror}); fix its permissions or remove it") from None
    try:
        with opener(f)(f, "rb") as z:
            return z.read()
    except codec_errors() as exc:
        raise MixerError(f"{f}: not a readable {f.suffix[1:]} file ({exc or type(exc).__name__}); check or remove "
                         "it") from None


def inner_name(name: str) -> str:
    """The file's name inside its compression, lower case: `c4.JSON.gz` -> `c4.json`."""
    name = name.lower()
    suffix = "." + name.rsplit(".", 1)[-1]
    return name.removesuffix(suffix) if suffix in CODECS else name
