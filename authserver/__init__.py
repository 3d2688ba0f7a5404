"""QR-code login server: an OAuth 2.0 Device Authorization Grant (RFC 8628)."""
