"""Domain maps: which folder is which domain, and of what kind (so which rules apply).

    {"domains": {"news": {"path": "news", "kind": "news"},
                 "code": {"path": "code", "kind": "code", "format": "text"},
                 "wiki": {"path": "wiki.jsonl", "kind": "encyclopedia", "text_field": "body"},
                 "qa": {"path": "qa_saved", "split": "train"}}}

Relative paths are resolved against the map file's folder, so a map travels with its data; a URL
(`s3://bucket/news.jsonl`) is kept as given (docs/storage.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from mixer.core.errors import MixerError, listed
from mixer.core.jsonio import read_json_object
from mixer.core.urls import is_url
from mixer.prepare.config import DomainSource
from mixer.prepare.rules import PrepareRules


def load_domain_map(path: str | Path, text_field: str = "text", fmt: str = "auto") -> list[DomainSource]:
    path = Path(path)
    obj = read_json_object(path, "domain map", "check --domain-map")
    domains = obj.get("domains")
    if not isinstance(domains, dict) or not domains:
        raise MixerError(f"{path}: expected {{\"domains\": {{NAME: {{\"path\": ..., \"kind\": ...}}}}}}")
    sources = []
    for name, spec in domains.items():
        if not isinstance(spec, dict) or "path" not in spec:
            raise MixerError(f"{path}: domain {name!r} has no 'path'; give each domain a path and a kind")
        kind = str(spec.get("kind", "web"))
        if kind not in PrepareRules().kinds():
            raise MixerError(f"{path}: domain {name!r} has unknown kind {kind!r}; use one of "
                             f"{', '.join(PrepareRules().kinds())}")
        where = spec["path"] if is_url(spec["path"]) else (path.parent / spec["path"]).resolve()
        sources.append(DomainSource(name=name, path=where, kind=kind, fmt=str(spec.get("format", fmt)),
                                    text_field=str(spec.get("text_field", text_field)),
                                    split=None if spec.get("split") is None else str(spec["split"])))
    return sources


def per_domain(values: Iterable[str], option: str, domains: Iterable[str], default: str | None) -> dict[str, str | None]:
    """`--text-field body` (every domain) and `--text-field docs=body` (one domain), repeatable:
    {domain: value}, one domain's value over the plain one over `default`."""
    names = list(domains)
    plain, own = default, {}
    for value in values:
        name, sep, v = value.partition("=")
        if not sep:
            plain = value
            continue
        if not name or not v:
            raise MixerError(f"{option} {value!r}: expected VALUE or DOMAIN=VALUE")
        if name not in names:
            raise MixerError(f"{option} {value!r}: no --source names domain {name!r} (domains: {listed(names)})")
        own[name] = v
    return {name: own.get(name, plain) for name in names}


def _split_field(p: str) -> tuple[str, str | None]:
    """`a.jsonl:body` -> ("a.jsonl", "body"); a path that exists as written (a ':' in its name)
    is kept whole."""
    head, sep, field = p.rpartition(":")
    if not sep or not head or not field or Path(p).exists() or "/" in field or "\\" in field:
        return p, None
    return head, field


def sources_from_options(pairs: Iterable[str], kinds: Iterable[str], text_field: str | Iterable[str] = "text",
                         splits: Iterable[str] = (), formats: Iterable[str] = ()) -> list[DomainSource]:
    """`--source DOMAIN=PATH[:FIELD]`, `--kind DOMAIN=KIND`, `--text-field [DOMAIN=]FIELD`,
    `--split [DOMAIN=]SPLIT` and `--format [DOMAIN=]FORMAT` → sources (kind defaults to 'web', the
    field to 'text', the format to 'auto'). The field is per source, so a JSONL `body` and a
    Parquet `content` go into one corpus."""
    kind_of: dict[str, str] = {}
    for pair in kinds:
        name, sep, kind = pair.partition("=")
        if not sep or not name or not kind:
            raise MixerError(f"--kind {pair!r}: expected DOMAIN=KIND, e.g. wiki=encyclopedia")
        kind_of[name] = kind
    given = []
    for pair in pairs:
        name, sep, p = pair.partition("=")
        if not sep or not name or not p:
            raise MixerError(f"--source {pair!r}: expected DOMAIN=PATH (or DOMAIN=PATH:FIELD), e.g. news=raw/news")
        given.append((name, *_split_field(p)))
    names = [name for name, _, _ in given]
    fields = per_domain([text_field] if isinstance(text_field, str) else text_field, "--text-field", names, "text")
    split_of = per_domain(splits, "--split", names, None)
    fmt_of = per_domain(formats, "--format", names, "auto")
    sources = [DomainSource(name=name, path=Path(p), kind=kind_of.pop(name, "web"), fmt=fmt_of[name],
                            text_field=field or fields[name], split=split_of[name]) for name, p, field in given]
    if kind_of:
        raise MixerError(f"--kind given for unknown domain {next(iter(kind_of))!r}; add a matching --source")
    return sources
