"""QR codes drawn in a terminal with qrcode's text output, scannable on light and dark themes.

One character cell holds two modules (upper and lower half blocks), so the code is about as
tall as it is wide. A phone reads dark modules on a light background, so which modules get
the foreground colour depends on the terminal's theme:

- "color": ANSI colours force black modules on a white field on any theme (qrcode's tty mode).
- "light-bg": dark modules drawn as blocks, for dark text on a light background (and files).
- "dark-bg": light modules drawn as blocks, for light text on a dark background, no colours.
- "auto": "color" on a terminal that allows colours, "dark-bg" if NO_COLOR is set, and
  "light-bg" when the output is not a terminal (a file, a pipe, a screenshot on white).
"""

from __future__ import annotations

import io
import os
from typing import Literal, TextIO

import qrcode
import qrcode.constants

QRStyle = Literal["auto", "color", "light-bg", "dark-bg", "none"]
STYLES: tuple[QRStyle, ...] = ("auto", "color", "light-bg", "dark-bg", "none")
BORDER = 2  # quiet-zone modules: enough for phone scanners, and keeps the code small
BLOCKS = "\u2588\u2580\u2584"  # the characters qrcode's text output uses, besides spaces


class _AnsiBuffer(io.StringIO):
    """qrcode only writes its colour codes to a terminal; this buffer says it is one."""

    def isatty(self) -> bool:
        return True


def resolve_style(style: QRStyle, out: TextIO) -> QRStyle:
    """What "auto" means for this output."""
    if style != "auto":
        return style
    if not out.isatty():
        return "light-bg"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return "dark-bg"
    return "color"


def can_draw_blocks(out: TextIO) -> bool:
    """True if `out` can encode the block characters (else an ASCII rendering is used)."""
    try:
        BLOCKS.encode(getattr(out, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def render_qr(text: str, style: QRStyle, *, unicode: bool = True) -> str:
    """The QR code of `text` as terminal text in `style` ("auto" must be resolved first)."""
    if style == "none":
        return ""
    code = qrcode.QRCode(border=BORDER, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(text)
    code.make(fit=True)
    if not unicode:
        return _render_ascii(code.get_matrix(), dark_drawn=style == "light-bg")
    buffer: io.StringIO = _AnsiBuffer() if style == "color" else io.StringIO()
    code.print_ascii(out=buffer, tty=style == "color", invert=style == "dark-bg")
    # qrcode draws light cells as U+00A0 (no-break space); a plain space copies better.
    return buffer.getvalue().replace("\u00a0", " ")


def _render_ascii(matrix: list[list[bool]], dark_drawn: bool) -> str:
    """Two characters per module, one line per row: for outputs that cannot encode blocks."""
    lines = []
    for row in matrix:
        lines.append("".join("##" if cell == dark_drawn else "  " for cell in row).rstrip())
    return "\n".join(lines) + "\n"
