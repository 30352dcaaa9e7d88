"""The paper's preparation rules (appendix D.1), as options with the paper's values.

Rules run in this order, and the report counts what each one dropped:
1. `short`: keep documents with more than `min_chars` characters (the paper's 1000);
2. `duplicate`: exact duplicates of an earlier document of the same domain (by xxh64);
3. `non_english`: for domains of an English-only kind (encyclopedia), documents whose
   language, identified by langid's bundled model, is not English;
then every kept document is cut to `cut_chars` characters: its head, or, for the random-block
kinds (code, scientific), one contiguous block at an offset seeded by the corpus seed and the
document's id, so a rerun picks the same block.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import xxhash

DROP_RULES = ("short", "duplicate", "non_english")
# Kinds that take the plain rules (head cut, no language filter); they label a domain's text.
PLAIN_KINDS = ("books", "forum", "news", "reviews", "web")


@dataclass(frozen=True)
class PrepareRules:
    min_chars: int = 1000  # keep documents with strictly more characters than this
    cut_chars: int = 1000  # every kept document is cut to this many characters
    random_block_kinds: tuple[str, ...] = ("code", "scientific")  # cut a seeded random block, not the head
    english_only_kinds: tuple[str, ...] = ("encyclopedia",)  # drop non-English documents
    language_chars: int = 2000  # characters shown to the language identifier
    dedup: bool = True  # drop exact duplicate documents within a domain

    def to_json(self) -> dict:
        return asdict(self)

    def kinds(self) -> tuple[str, ...]:
        """Every domain kind these rules know (a typo in a kind would silently pick the plain rules)."""
        return tuple(sorted(set(PLAIN_KINDS) | set(self.random_block_kinds) | set(self.english_only_kinds)))


def doc_hash(text: str) -> int:
    """Stable 64-bit id of a source document: xxh64 of its full UTF-8 text."""
    return xxhash.xxh64_intdigest(text.encode("utf-8"))


def block_start(doc_id: int, seed: int, n_chars: int, cut_chars: int) -> int:
    """Offset of the random contiguous block: uniform over the valid starts, seeded per document."""
    span = n_chars - cut_chars + 1
    if span <= 1:
        return 0
    h = xxhash.xxh64_intdigest(doc_id.to_bytes(8, "little"), seed=seed & 0xFFFFFFFFFFFFFFFF)
    return h % span


def cut_document(text: str, doc_id: int, kind: str, rules: PrepareRules, seed: int) -> str:
    if kind in rules.random_block_kinds:
        start = block_start(doc_id, seed, len(text), rules.cut_chars)
        return text[start : start + rules.cut_chars]
    return text[: rules.cut_chars]


class EnglishFilter:
    """langid.py with its bundled model (no download); loaded on first use, once per process.

    The naive Bayes scores are langid's own (`nb_ptc`, `nb_pc`, the same feature vector), summed
    here in float64 over the document's nonzero features with a plain NumPy reduction instead of
    langid's dense float32 BLAS product: the dense product over 7,480 features spent 2.3 ms per
    document on one BLAS thread and 15 ms when BLAS threads compete for 2 busy cores (the
    in-process `--workers 1` case), against 0.9 ms here whatever the thread count, and the
    reduction's fixed order makes the verdict independent of BLAS. On the 4,502 documents of the
    bundled corpus's encyclopedia, reviews and news domains it names the same language as
    `langid.classify` every time.
    """

    def __init__(self, rules: PrepareRules) -> None:
        self._chars = rules.language_chars
        self._identifier = None

    def is_english(self, text: str) -> bool:
        if self._identifier is None:
            from langid.langid import LanguageIdentifier, model

            self._identifier = LanguageIdentifier.from_modelstring(model, norm_probs=False)
        li = self._identifier
        fv = li.instance2fv(text[: self._chars])
        idx = np.flatnonzero(fv)
        scores = np.add.reduce(fv[idx, None].astype(np.float64) * li.nb_ptc[idx], axis=0) + li.nb_pc
        return li.nb_classes[int(np.argmax(scores))] == "en"
