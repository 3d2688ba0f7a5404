"""Text that other parties supply and people read: stripped of what could deceive them."""

from __future__ import annotations

import unicodedata


def printable(text: str, limit: int) -> str:
    """`text` without control or format characters (bidi overrides), cut to `limit`.

    The approval screen shows the PC's user agent; it is the PC's own claim and must not be
    able to reorder or hide what the user reads.
    """
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))
    return kept.strip()[:limit]


def plain_text(value: str, max_len: int = 200) -> bool:
    """True for a value fit to be an id or search text: bounded, printable, valid Unicode."""
    return len(value) <= max_len and value.isprintable() and not has_lone_surrogate(value)


def has_lone_surrogate(value: str) -> bool:
    """True if `value` holds a lone surrogate (JSON can carry one; UTF-8 cannot encode it)."""
    return not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value)


def N_(message: str) -> str:
    """`message` as it is, marked for the pages' catalogue: the wire keeps the English, and a
    page translates it when it shows it (web/i18n.py, people_text)."""
    return message
