"""Plain text from MediaWiki markup, good enough for language-model text.

Templates, tables, references, files and categories are removed; links keep their label;
bold/italic quotes go. Articles are split at their `== headings ==` into sections, the unit
the default corpus uses as a document (the paper's rules then keep sections > 1000 chars).
"""
from __future__ import annotations

import html
import re

_INNER_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_INNER_TABLE = re.compile(r"\{\|(?:(?!\{\|)[\s\S])*?\|\}")
_INNER_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>[\s\S]*?</ref>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--[\s\S]*?-->")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_EXTERNAL = re.compile(r"\[(?:https?|ftp)://[^\s\]]+\s*([^\]]*)\]")
_QUOTES = re.compile(r"'{2,}")
_HEADING = re.compile(r"^(={2,})\s*(.*?)\s*\1\s*$", re.MULTILINE)
_DROP_LINK_PREFIX = {"file", "image", "category", "media"}
_INTERWIKI = re.compile(r"[a-z]{2,3}(-[a-z]+)?")


def _repeat(pattern: re.Pattern, repl, text: str) -> str:
    while True:
        new = pattern.sub(repl, text)
        if new == text:
            return text
        text = new


def _link(match: re.Match) -> str:
    body = match.group(1)
    target = body.split("|")[0]
    prefix = target.split(":")[0].strip().lower() if ":" in target else ""
    if prefix in _DROP_LINK_PREFIX or _INTERWIKI.fullmatch(prefix):
        return ""  # files, categories and interlanguage links carry no running text
    return body.split("|")[-1]


def strip_markup(text: str) -> str:
    text = html.unescape(text)
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _repeat(_INNER_TEMPLATE, "", text)
    text = _repeat(_INNER_TABLE, "", text)
    text = _repeat(_INNER_LINK, _link, text)
    text = _EXTERNAL.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = _QUOTES.sub("", text)
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("*", "#", ":", ";")):
            line = line.lstrip("*#:; ").strip()
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def split_sections(title: str, markup: str) -> list[tuple[str, str]]:
    """(section title, plain text) for the lead and every headed section of one article."""
    parts = _HEADING.split(markup)
    # split() yields [lead, level, heading, body, level, heading, body, ...]
    sections = [(title, parts[0])]
    for i in range(1, len(parts) - 2, 3):
        sections.append((f"{title}: {parts[i + 1]}", parts[i + 2]))
    out = []
    for name, body in sections:
        plain = strip_markup(body)
        if plain:
            out.append((name, plain))
    return out
