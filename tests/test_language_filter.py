"""The English filter scores langid's own model without BLAS and must agree with langid itself."""
from __future__ import annotations

from mixer.prepare.rules import EnglishFilter, PrepareRules

TEXTS = [
    "The committee met on Tuesday to discuss the budget for the coming year and agreed on new books.",
    "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine et des nouveaux livres.",
    "Der Ausschuss traf sich am Dienstag, um den Haushalt für das kommende Jahr zu besprechen.",
    "El comité se reunió el martes para discutir el presupuesto del próximo año y los libros nuevos.",
    "Il comitato si è riunito martedì per discutere il bilancio dell'anno prossimo e i nuovi libri.",
    "De commissie kwam dinsdag bijeen om de begroting voor het komende jaar te bespreken.",
    "def main():\n    for i in range(10):\n        print(i * 2)\n    return None\n",
    "Report 2024: revenue grew 12 % (EUR 3.4 bn); see table 7, p. 12. Cf. annexe B, Tabelle 4.",
    "ok",
    "",
    "The committee met on Tuesday. " * 100 + "Le comité s'est réuni mardi. " * 100,  # cut at language_chars
]


def test_same_verdicts_as_langid():
    from langid.langid import LanguageIdentifier, model

    langid = LanguageIdentifier.from_modelstring(model, norm_probs=False)
    rules = PrepareRules()
    ours = EnglishFilter(rules)
    want = [langid.classify(t[: rules.language_chars])[0] == "en" for t in TEXTS]
    assert [ours.is_english(t) for t in TEXTS] == want
    assert want[0] and not any(want[1:6])  # English and five other languages: the cases discriminate
