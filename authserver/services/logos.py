"""Client logos: whatever image an operator gives becomes a small PNG the server made itself.

The login and approval pages show a client's logo next to its name. The file is never served
as given: Pillow decodes it (bounded in bytes and pixels, so a decompression bomb is refused
before it is decoded), shrinks it to fit LOGO_SIZE and writes a fresh PNG, so no SVG script,
metadata or polyglot trick survives, and the CSP's img-src 'self' holds.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from authserver.domain import errors

LOGO_SIZE = 128  # pixels, the longer side; shown at 48 CSS pixels, sharp on 2x-3x screens
MAX_LOGO_BYTES = 1024 * 1024
MAX_LOGO_PIXELS = 4096 * 4096
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")


def normalized_logo(image: bytes) -> bytes:
    """A PNG of at most LOGO_SIZE x LOGO_SIZE from a PNG, JPEG, GIF or WebP file."""
    if len(image) > MAX_LOGO_BYTES:
        raise errors.MalformedRequest("A logo is at most 1 MiB.")
    too_big = errors.MalformedRequest("A logo is at most 4096 x 4096 pixels.")
    try:
        with Image.open(io.BytesIO(image), formats=FORMATS) as source:  # reads the header only
            if source.width * source.height > MAX_LOGO_PIXELS:
                raise too_big
            # Upright (a photo's EXIF orientation), RGBA before shrinking (a palette image
            # would shrink by nearest neighbour), then fitted, keeping the aspect ratio.
            logo = ImageOps.exif_transpose(source).convert("RGBA")
            logo.thumbnail((LOGO_SIZE, LOGO_SIZE))
            logo.info.clear()  # no ICC profile, text or EXIF chunk is written out again
    except Image.DecompressionBombError:  # Pillow's own, larger bound, checked on open
        raise too_big from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise errors.MalformedRequest("A logo is a PNG, JPEG, GIF or WebP image.") from None
    out = io.BytesIO()
    logo.save(out, format="PNG", optimize=True)
    return out.getvalue()
