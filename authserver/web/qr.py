"""QR images of verification_uri_complete, as PNG and SVG."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg


def qr_png(text: str) -> bytes:
    image = qrcode.make(
        text, box_size=8, border=4, error_correction=qrcode.constants.ERROR_CORRECT_M
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def qr_svg(text: str) -> bytes:
    image = qrcode.make(
        text,
        image_factory=qrcode.image.svg.SvgPathImage,
        box_size=10,
        border=4,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
    )
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()
