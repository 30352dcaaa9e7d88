"""`weights.json` as every export target sees it (`read_mixture`), and the text helpers they share.

Every target gets the same view of the mixture (`ExportMixture`): the domains with a weight above
0, sorted by name, their weights exactly as written (`repr`, so a reader gets the same float
back), the path of each domain's data (`--prefix` with `{domain}` in it, or `PREFIX/DOMAIN`;
`--path DOMAIN=PATH` for one domain) and the comment lines (method, budget, verdict and its
reasons, each weight's interval, the domains left out at weight 0). Domains at weight 0 are left
out of every export: Megatron, Mosaic and OLMo-core refuse or mis-handle a zero weight, and a
zero-weight source is never sampled anyway. The text is a pure function of the inputs, so the
same weights.json and options give the same bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mixer.core.errors import MixerError, listed
from mixer.formats.weights import load_weights


@dataclass(frozen=True)
class ExportSpec:
    """What `mixer export` was asked: the weights file, the target, where each domain's data is."""

    weights: Path
    target: str
    prefix: str = ""
    paths: dict[str, str] = field(default_factory=dict)  # DOMAIN -> PATH, over the prefix


@dataclass(frozen=True)
class ExportMixture:
    """The mixture as every target writes it (weights > 0 only, domains sorted)."""

    domains: tuple[str, ...]
    weights: tuple[float, ...]
    paths: tuple[str, ...]
    comments: tuple[str, ...]  # lines without the comment marker
    verdict: str | None
    left_out: tuple[str, ...] = ()


def domain_path(prefix: str, domain: str) -> str:
    """Where a domain's data is: `prefix` with `{domain}` filled in, or `prefix/domain` (just
    `domain` without a prefix)."""
    if "{domain}" in prefix:
        return prefix.replace("{domain}", domain)
    return f"{prefix.rstrip('/')}/{domain}" if prefix else domain


def parse_path_options(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`["code=/data/code_text_document"]` -> {"code": "/data/code_text_document"}."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise MixerError(f"--path {pair!r}: expected DOMAIN=PATH, e.g. code=/data/code_text_document")
        if name in out:
            raise MixerError(f"--path {pair!r}: domain {name!r} is given twice; give each domain one --path")
        out[name] = value
    return out


def _comments(mix, source: str, kept: list[str], left_out: list[str]) -> list[str]:
    budget = f", budget {mix.budget_tokens:,} tokens" if mix.budget_tokens is not None else ""
    lines = [f"mixture exported by mixer from {source} (method {mix.method}{budget})"]
    if mix.verdict == "unsupported":
        lines.append("verdict: UNSUPPORTED: the data do not support this mixture over uniform"
                     + (f" ({'; '.join(mix.reasons)})" if mix.reasons else ""))
    else:
        lines.append(f"verdict: {mix.verdict or 'not judged'}")
    for d in kept:
        iv = mix.intervals.get(d)
        lines.append(f"{d}: {mix.weights[d]!r}" + (f" (95 % interval {iv[0]!r} to {iv[1]!r})" if iv else ""))
    if left_out:
        lines.append(f"left out at weight 0: {', '.join(left_out)}")
    return lines


def read_mixture(spec: ExportSpec) -> ExportMixture:
    """weights.json → `ExportMixture`; a `--path` naming a domain the file does not have is an error."""

    mix = load_weights(spec.weights)
    unknown = sorted(set(spec.paths) - set(mix.weights))
    if unknown:
        raise MixerError(f"--path {unknown[0]}=…: unknown domain {unknown[0]!r}; {spec.weights} has: "
                         f"{listed(sorted(mix.weights))}")
    kept = sorted(d for d, w in mix.weights.items() if w > 0)
    left_out = sorted(d for d, w in mix.weights.items() if w == 0)
    return ExportMixture(domains=tuple(kept), weights=tuple(mix.weights[d] for d in kept),
                         paths=tuple(spec.paths.get(d) or domain_path(spec.prefix, d) for d in kept),
                         comments=tuple(_comments(mix, Path(spec.weights).name, kept, left_out)), verdict=mix.verdict,
                         left_out=tuple(left_out))


def yaml_comment_block(mix: ExportMixture) -> str:
    """The comment lines as `# …` lines (YAML and TOML alike)."""
    return "".join(f"# {line}\n" for line in mix.comments)


def quoted(text: str) -> str:
    """A double-quoted string valid in YAML and TOML alike (JSON's escaping is a subset of both)."""

    return json.dumps(text, ensure_ascii=False)


def number(x: float) -> str:
    """A float as the shortest text that reads back to the same float in YAML 1.1 (PyYAML), TOML
    and JSON alike: `repr`, with `.0` put into a bare exponent form (PyYAML reads `1e-05` as a
    string, `1.0e-05` as the float)."""
    text = repr(float(x))
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def flow_list(items) -> str:
    """`[a, b]` of quoted strings or exact floats (YAML flow sequence, TOML array alike)."""
    return "[" + ", ".join(quoted(x) if isinstance(x, str) else number(x) for x in items) + "]"
