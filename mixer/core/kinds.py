"""The two closed vocabularies every floor shares: the training objective and the model kind.

They were strings compared in a dozen places (`objective == "causal"`); a typo there was a silent
wrong branch. As `StrEnum`s they are validated once, where a spec is built (`Objective.parse`),
and compare, print and serialise exactly as the strings the files and the command line use, so
`index.json`, `spec.json` and `run.json` keep their bytes.
"""
from __future__ import annotations

from enum import StrEnum

from mixer.core.errors import MixerError


class Objective(StrEnum):
    """What a sequence trains: next-token prediction on packed documents, or masked LM on one
    document per sequence ([CLS] doc [SEP] [PAD]...)."""

    CAUSAL = "causal"
    MLM = "mlm"

    @classmethod
    def parse(cls, value: object, *, where: str = "--objective") -> Objective:
        """`value` as an Objective, or one line naming `where` and the choices."""
        return _parse(cls, value, where)

    @property
    def packs_documents(self) -> bool:
        """Causal sequences pack documents end to end (EOS between); masked-LM ones hold one each."""
        return self is Objective.CAUSAL


class ModelKind(StrEnum):
    """The proxy architectures the trainers build: GPT-2 (causal) and BERT (masked LM)."""

    GPT2 = "gpt2"
    BERT = "bert"

    @classmethod
    def parse(cls, value: object, *, where: str = "--model") -> ModelKind:
        """`value` as a ModelKind, or one line naming `where` and the choices."""
        return _parse(cls, value, where, "unknown; ")

    @property
    def objective(self) -> Objective:
        """The objective this architecture trains."""
        return Objective.CAUSAL if self is ModelKind.GPT2 else Objective.MLM


def _parse(kind: type[StrEnum], value: object, where: str, lead: str = ""):
    """A member of `kind`, or the one-line error both vocabularies give."""
    try:
        return kind(value)
    except ValueError:
        raise MixerError(f"{where} {value!r}: {lead}choose one of {', '.join(m.value for m in kind)}") from None
