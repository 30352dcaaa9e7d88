"""What every record reader shares: a document's shape, a record's text field (`text_of`: a string,
or one line naming what else it holds) and an Arrow column's (`check_text_column`)."""
from __future__ import annotations

from typing import Any

from mixer.core.errors import MixerError

Document = tuple[str, str | None]  # (key, text); text None: a skipped binary / undecodable file
FIELD_FIX = "name the field with --source DOMAIN=PATH:FIELD or --text-field DOMAIN=FIELD"
_JOIN = "join it into one string first, or "


def text_of(value: Any, where: str, field: str) -> str:
    """A record's text: a string as it is, a null as empty. Any other value (a list of
    paragraphs, a number, an object) is one line naming it: its Python spelling would be
    tokenized as if it were the text, and a list crashed the rules."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
    raise MixerError(f"{where}: field {field!r} is not text but {type(value).__name__} {shown}; {_JOIN}{FIELD_FIX}")


def check_text_column(arrow_type: Any, where: str, field: str) -> None:
    """A Parquet or Arrow column of text (strings, or all null), else one line naming its type."""
    import pyarrow as pa

    if not (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_null(arrow_type)
            or getattr(pa.types, "is_string_view", lambda t: False)(arrow_type)):
        raise MixerError(f"{where}: column {field!r} is {arrow_type}, not text; {_JOIN}{FIELD_FIX}")
