"""What every server-rendered page shares: security headers, cookies and request-forgery checks.

The admin console (/admin) and the pages for people (/login, /device) follow the same rules:

- A signed-in form carries a hidden csrf_token: an HMAC-SHA256 of a fixed label (one per area)
  keyed with the session's secret, so it needs no server state and dies with the session.
- A sign-in form, which has no session yet, uses a double-submit cookie instead: a random value in
  an HttpOnly cookie that the form must echo.
- A POST whose Origin (or Sec-Fetch-Site) says it came from another site is refused whatever its
  token; a refused POST changes nothing.
- Cookies are HttpOnly and SameSite=Strict, and Secure when the issuer is https.
- Pages are never cached, never framed, and send no Referer to other sites.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import Response, request

from authserver.web.common import services

CSRF_FIELD = "csrf_token"
DOUBLE_SUBMIT_MAX_AGE = 3600


def csrf_token_for(secret: str, label: bytes) -> str:
    """The CSRF token of a session: HMAC-SHA256(key=the session's secret, a fixed label)."""
    return hmac.new(secret.encode(), label, hashlib.sha256).hexdigest()


def tokens_equal(sent: str, expected: str) -> bool:
    """Constant-time comparison; bytes, since compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(sent.encode(), expected.encode())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin() -> bool:
    """False when the browser says this request came from another site."""
    origin = request.headers.get("Origin")
    if origin is not None:
        allowed = {_origin(services().config.issuer), f"{request.scheme}://{request.host}".lower()}
        if origin.lower() not in allowed:
            return False
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


def session_form_ok(session_secret: str, label: bytes) -> bool:
    """A signed-in form POST: same origin, and the session's CSRF token in the form."""
    sent = request.form.get(CSRF_FIELD, "")
    return same_origin() and tokens_equal(sent, csrf_token_for(session_secret, label))


def double_submit_ok(cookie: str) -> bool:
    """A sign-in form POST: same origin, and the form echoes the value of `cookie`."""
    expected = request.cookies.get(cookie, "")
    sent = request.form.get(CSRF_FIELD, "")
    return same_origin() and bool(expected) and tokens_equal(sent, expected)


def double_submit_value(cookie: str) -> str:
    """The double-submit value for a sign-in form: the cookie's, if well-formed, else a new one."""
    value = request.cookies.get(cookie, "")
    if len(value) != 43 or not value.replace("-", "").replace("_", "").isalnum():
        value = secrets.token_urlsafe(32)
    return value


def secure_cookies() -> bool:
    return urlsplit(services().config.issuer).scheme == "https"


def set_cookie(
    response: Response, name: str, value: str, *, path: str, max_age: int | None
) -> None:
    """An HttpOnly, SameSite=Strict cookie (Secure behind an https issuer) for `path` only."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=secure_cookies(),
        httponly=True,
        samesite="Strict",
    )


def known_device_cookie(name: str) -> str:
    """A known-device cookie the browser sent, if it is well formed (else "")."""
    value = request.cookies.get(name, "")
    return value if 16 <= len(value) <= 100 and value.isascii() and value.isprintable() else ""


def clear_cookie(response: Response, name: str, *, path: str) -> None:
    response.delete_cookie(
        name, path=path, secure=secure_cookies(), httponly=True, samesite="Strict"
    )


def page_headers(response: Response, content_security_policy: str) -> Response:
    """The headers of every HTML page: no caching, no framing, no Referer to other sites."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Content-Security-Policy"] = content_security_policy
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Not no-referrer: under it browsers send `Origin: null` with every form POST, even to
    # this origin, and the Origin check could no longer tell our forms from another site's.
    # same-origin sends nothing to any other site, and the true Origin to this one.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return response
