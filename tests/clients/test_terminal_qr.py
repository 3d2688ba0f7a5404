"""The QR code drawn in the terminal scans: render it, paint it as a screen shows it, decode."""

from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from PIL import Image

from qrlogin_client.terminal_qr import QRStyle, render_qr, resolve_style

URL = "http://127.0.0.1:8000/device?user_code=WDJB-MJHT"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Which half-cells a character fills with the foreground colour: (upper, lower).
HALVES = {" ": (0, 0), "\u2580": (1, 0), "\u2584": (0, 1), "\u2588": (1, 1)}
BLACK, WHITE = 0, 255


def screenshot(text: str, foreground: int, background: int, unicode: bool = True) -> Image.Image:
    """Paint terminal text as a screen would: 4 px per module, on a wide background margin."""
    lines = [ANSI.sub("", line) for line in text.splitlines()]
    rows: list[list[int]] = []
    for line in lines:
        if unicode:
            upper = [HALVES[ch][0] for ch in line]
            lower = [HALVES[ch][1] for ch in line]
            rows += [upper, lower]
        else:  # "##" per module, one line per row
            rows.append([1 if line[i : i + 2] == "##" else 0 for i in range(0, len(line), 2)])
    width = max(len(row) for row in rows)
    scale, margin = 4, 16
    image = Image.new("L", (width * scale + 2 * margin, len(rows) * scale + 2 * margin), background)
    for y, row in enumerate(rows):
        for x, lit in enumerate(row):
            if lit:
                box = (margin + x * scale, margin + y * scale)
                image.paste(foreground, (*box, box[0] + scale, box[1] + scale))
    return image


def decode_plain(image: Image.Image) -> str | None:
    """Decode without trying inverted colours: a phone camera app may not try either."""
    found = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormats(zxingcpp.QRCode), try_invert=False
    )
    return found[0].text if found else None


@pytest.mark.parametrize(
    ("style", "foreground", "background"),
    [
        ("color", WHITE, BLACK),  # ANSI: white cells on a black field, on any theme
        ("light-bg", BLACK, WHITE),  # dark text on a light terminal
        ("dark-bg", WHITE, BLACK),  # light text on a dark terminal, no colours
    ],
)
def test_each_style_scans_on_the_background_it_is_for(
    style: QRStyle, foreground: int, background: int
) -> None:
    text = render_qr(URL, style)
    assert decode_plain(screenshot(text, foreground, background)) == URL


def test_color_style_sets_its_own_colours() -> None:
    text = render_qr(URL, "color")
    # Each line sets its colours itself (black field, white cells), so the terminal's theme
    # never decides the polarity. (qrcode leaves the background alone on a last line of upper
    # halves only: its lower half lies outside the code, below the quiet zone.)
    lines = text.splitlines()
    for line in lines[:-1]:
        assert line.startswith("\x1b[48;5;232m\x1b[38;5;255m") and line.endswith("\x1b[0m")
    assert "\x1b[38;5;255m" in lines[-1] and lines[-1].endswith("\x1b[0m")


def test_plain_styles_are_the_two_polarities() -> None:
    light, dark = render_qr(URL, "light-bg"), render_qr(URL, "dark-bg")
    assert "\x1b" not in light and "\x1b" not in dark
    # On the wrong background each is a negative image: a phone that does not invert fails.
    assert decode_plain(screenshot(light, WHITE, BLACK)) is None
    assert decode_plain(screenshot(dark, BLACK, WHITE)) is None


@pytest.mark.parametrize(
    ("style", "foreground", "background"),
    [("light-bg", BLACK, WHITE), ("dark-bg", WHITE, BLACK)],
)
def test_ascii_fallback_scans(style: QRStyle, foreground: int, background: int) -> None:
    text = render_qr(URL, style, unicode=False)
    assert set(text) <= {"#", " ", "\n"}
    assert decode_plain(screenshot(text, foreground, background, unicode=False)) == URL


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_style(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert resolve_style("auto", io.StringIO()) == "light-bg"  # a file or a pipe
    assert resolve_style("auto", _Terminal()) == "color"
    monkeypatch.setenv("NO_COLOR", "1")
    assert resolve_style("auto", _Terminal()) == "dark-bg"
    assert resolve_style("light-bg", _Terminal()) == "light-bg"
    assert render_qr(URL, "none") == ""
