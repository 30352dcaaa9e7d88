"""Domain maps: which folder is which domain, and of what kind (so which rules apply).

    {"domains": {"news": {"path": "news", "kind": "news"},
                 "code": {"path": "code", "kind": "code", "format": "text"},
                 "wiki": {"path": "wiki.jsonl", "kind": "encyclopedia", "text_field": "body"}}}

Relative paths are resolved against the map file's folder, so a map travels with its data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from mixer.core.errors import MixerError
from mixer.core.jsonio import read_json_object
from mixer.prepare.config import DomainSource
from mixer.prepare.rules import PrepareRules


def load_domain_map(path: str | Path, text_field: str = "text") -> list[DomainSource]:
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
        sources.append(DomainSource(name=name, path=(path.parent / spec["path"]).resolve(),
                                    kind=kind, fmt=str(spec.get("format", "auto")),
                                    text_field=str(spec.get("text_field", text_field))))
    return sources


def sources_from_options(pairs: Iterable[str], kinds: Iterable[str], text_field: str) -> list[DomainSource]:
    """`--source DOMAIN=PATH` and `--kind DOMAIN=KIND` pairs → sources (kind defaults to 'web')."""
    kind_of: dict[str, str] = {}
    for pair in kinds:
        name, sep, kind = pair.partition("=")
        if not sep or not name or not kind:
            raise MixerError(f"--kind {pair!r}: expected DOMAIN=KIND, e.g. wiki=encyclopedia")
        kind_of[name] = kind
    sources = []
    for pair in pairs:
        name, sep, p = pair.partition("=")
        if not sep or not name or not p:
            raise MixerError(f"--source {pair!r}: expected DOMAIN=PATH, e.g. news=raw/news")
        sources.append(DomainSource(name=name, path=Path(p), kind=kind_of.pop(name, "web"), text_field=text_field))
    if kind_of:
        raise MixerError(f"--kind given for unknown domain {next(iter(kind_of))!r}; add a matching --source")
    return sources
