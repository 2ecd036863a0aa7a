"""Strict readers of values a client sends, shared by the API's fields (`api.fields`) and the
domain checks that see raw JSON (form answers): one definition of clean text and of a date.
"""

from __future__ import annotations

import re
from datetime import date

# A code point PostgreSQL (and UTF-8 itself) cannot store: NUL, or a lone surrogate. JSON's
# `"\ud800"` escape decodes to one; a valid pair (`"\ud83d\ude00"`) decodes to one code point.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)

NUL_MESSAGE = "NUL bytes are not allowed."
SURROGATE_MESSAGE = "Lone surrogates (U+D800 to U+DFFF) are not allowed: send valid UTF-8 text."
DATE_MESSAGE = "Not a valid date: use YYYY-MM-DD."


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (NUL, lone surrogate), or None if it can."""
    if value.isascii():
        return NUL_MESSAGE if "\x00" in value else None
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


def parse_iso_date(value: str) -> date:
    """`YYYY-MM-DD` and nothing else (ValueError otherwise).

    `date.fromisoformat` also takes "20260101" and ISO week dates ("2026-W01-1") on Python
    3.11; a client sending those most likely meant something else.
    """
    if not _ISO_DATE.fullmatch(value):
        raise ValueError(DATE_MESSAGE)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(DATE_MESSAGE) from None
