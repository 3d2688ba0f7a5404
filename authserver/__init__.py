"""QR-code login server: an OAuth 2.0 Device Authorization Grant (RFC 8628)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """Build the Flask app (see authserver.app.create_app).

    Imported lazily, so the pure domain can be imported without Flask or SQLAlchemy.
    """
    from authserver.app import create_app as build

    return build(*args, **kwargs)
