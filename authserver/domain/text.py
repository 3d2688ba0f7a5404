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
