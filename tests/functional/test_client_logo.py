"""`authserver clients set-logo`: any common image becomes a small PNG the server serves itself."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time
from PIL import Image, PngImagePlugin

from authserver.domain.models import AuditEventType
from authserver.services.clients import CLIENT_CACHE_SECONDS
from authserver.services.logos import normalized_logo
from tests.functional import test_cli_accounts
from tests.functional.test_cli_accounts import audit_events, cli, error_of

# The same fixtures: a migrated database of its own, and the server's app on it.
env = test_cli_accounts.env
http = test_cli_accounts.http


def _image(path: Path, size: tuple[int, int], fmt: str) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path, format=fmt)
    return path


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims this size (its pixels are never there): a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_a_logo_is_re_encoded_served_and_removed(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    client_id = cli(["clients", "create", "--name", "Shop"], monkeypatch, capsys)[1]["client_id"]
    with freeze_time() as frozen:  # the running server keeps its copy of a logo for a while
        assert http.get(f"/clients/{client_id}/logo.png").status_code == 404
        assert b"logo.png" not in http.get(f"/login?client_id={client_id}").data

        wide = _image(tmp_path / "wide.jpg", (600, 300), "JPEG")
        code, out, err = cli(["clients", "set-logo", client_id, str(wide)], monkeypatch, capsys)
        assert code == 0 and out == {"client_id": client_id, "logo": True}, err
        frozen.tick(CLIENT_CACHE_SECONDS + 0.1)
        served = http.get(f"/clients/{client_id}/logo.png")
        assert served.status_code == 200 and served.mimetype == "image/png"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        with Image.open(io.BytesIO(served.data)) as logo:
            assert (logo.format, logo.size) == ("PNG", (128, 64))  # fits 128, keeps 2:1
        # The login page names it by a URL that changes with its content; only that URL is
        # cached for long (another process may still serve the old logo for a few seconds).
        page = http.get(f"/login?client_id={client_id}").get_data(as_text=True)
        url = re.search(rf'src="(/clients/{client_id}/logo\.png\?v=[0-9a-f]+)"', page)
        assert url is not None, page
        assert "max-age=86400" in http.get(url.group(1)).headers["Cache-Control"]
        stale = http.get(f"/clients/{client_id}/logo.png?v=0123456789abcdef")
        assert stale.headers["Cache-Control"] == "no-cache"

        code, out, err = cli(["clients", "set-logo", client_id, "--remove"], monkeypatch, capsys)
        assert code == 0 and out["logo"] is False, err
        frozen.tick(CLIENT_CACHE_SECONDS + 0.1)
        assert http.get(f"/clients/{client_id}/logo.png").status_code == 404
    events = audit_events(AuditEventType.CLIENT_LOGO_SET)
    assert [(e.client_id, e.detail) for e in events] == [
        (client_id, {"logo": False}),
        (client_id, {"logo": True}),
    ]


def test_nothing_but_pixels_survives() -> None:
    """No ICC profile, text or EXIF is written out again; a photo's orientation is applied."""
    source = io.BytesIO()
    metadata = PngImagePlugin.PngInfo()
    metadata.add_text("Comment", "<script>alert(1)</script>")
    Image.new("RGB", (300, 100), (0, 90, 200)).save(
        source, format="PNG", pnginfo=metadata, icc_profile=b"\0" * 500_000
    )
    logo = normalized_logo(source.getvalue())
    assert len(logo) < 5_000
    with Image.open(io.BytesIO(logo)) as image:
        assert image.size == (128, 43) and image.mode == "RGBA"
        assert "icc_profile" not in image.info and "Comment" not in image.info
    photo = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to show it upright
    Image.new("RGB", (200, 100)).save(photo, format="JPEG", exif=exif)
    with Image.open(io.BytesIO(normalized_logo(photo.getvalue()))) as image:
        assert image.size == (64, 128)


def test_what_is_not_a_safe_image_is_refused(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    client_id = cli(["clients", "create", "--name", "Shop"], monkeypatch, capsys)[1]["client_id"]
    svg = tmp_path / "logo.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(5_000, 5_000))
    huge = tmp_path / "huge.bin"
    huge.write_bytes(b"\0" * (1024 * 1024 + 1))
    small = _image(tmp_path / "ok.png", (64, 64), "PNG")
    for argv, message in (
        (["clients", "set-logo", client_id, str(svg)], "PNG, JPEG, GIF or WebP"),
        (["clients", "set-logo", client_id, str(bomb)], "4096 x 4096"),
        (["clients", "set-logo", client_id, str(huge)], "1 MiB"),
        (["clients", "set-logo", client_id, str(tmp_path / "missing.png")], "cannot read"),
        (["clients", "set-logo", "no-such-client", str(small)], "No such client."),
        (["clients", "set-logo", client_id], "file --remove is required"),
    ):
        code, out, err = cli(argv, monkeypatch, capsys)
        assert code == 2 and out is None and message in error_of(err), argv
    assert http.get(f"/clients/{client_id}/logo.png").status_code == 404
    assert audit_events(AuditEventType.CLIENT_LOGO_SET) == []
