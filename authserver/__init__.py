"""QR-code login server: an OAuth 2.0 Device Authorization Grant (RFC 8628)."""

from authserver.app import create_app

__all__ = ["create_app"]
