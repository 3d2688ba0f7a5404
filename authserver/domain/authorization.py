"""The authorization code flow's rules (OIDC Core §3.1, RFC 6749 §4.1, RFC 7636, RFC 9700 §2.1).

Pure: which redirect URIs may be registered and matched, what a PKCE verifier must look like
and whether it matches its challenge, `prompt` and `max_age`, and how a response is added to a
redirect URI. The sign-in step of the flow is a QR login: a device-grant flow that the server
starts and redeems itself, bound with AUTHORIZE_BINDING so no token poll can redeem it.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authserver.domain import errors

# A flow started by /authorize carries this instead of a client secret's hash. A token poll or
# status call presents a SHA-256 hex digest or "" (codes.presented_secret_hash), which never
# equals it: the device code of a sign-in page can only be redeemed by the server, into a code.
AUTHORIZE_BINDING = "authorize"

RESPONSE_TYPE_CODE = "code"  # the only response_type (OIDC Core §3.1.2.1)
CODE_CHALLENGE_METHOD = "S256"  # RFC 7636 §4.2; plain is refused (RFC 9700 §2.1.1)

# How long an expired authorization code or an ended browser session is kept before the next
# insert deletes it: a used code presented again within this time is still recognised as a
# replay and revokes what it issued (RFC 6749 §4.1.2), and the admin sees recent sessions.
KEPT_AFTER_EXPIRY = 24 * 3600

# RFC 7636 §4.1: 43-128 characters of the unreserved set.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# The S256 challenge is BASE64URL(SHA-256(verifier)) without padding: 43 characters.
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


class Prompt(enum.StrEnum):
    """OIDC Core §3.1.2.1 `prompt` values."""

    NONE = "none"  # no user interaction: a live session answers, or login_required
    LOGIN = "login"  # sign in again whatever the session
    CONSENT = "consent"  # the QR approval always asks, so nothing more to do
    SELECT_ACCOUNT = "select_account"  # one account per browser session: as consent


def parse_prompt(value: str | None) -> frozenset[Prompt]:
    """The prompt values; `none` with any other is invalid_request (OIDC Core §3.1.2.1)."""
    if value is None or not value.strip():
        return frozenset()
    try:
        prompts = frozenset(Prompt(word) for word in value.split())
    except ValueError:
        raise errors.MalformedRequest("Unknown prompt value.") from None
    if Prompt.NONE in prompts and len(prompts) > 1:
        raise errors.MalformedRequest("prompt=none cannot be combined with other values.")
    return prompts


def parse_max_age(value: str | None) -> int | None:
    """OIDC Core §3.1.2.1 max_age: seconds since the user last authenticated actively."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 10:
        raise errors.MalformedRequest("max_age must be a whole number of seconds.")
    return int(value)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), no padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.fullmatch(challenge))


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6: the verifier is well-formed and its S256 transform is the challenge."""
    if not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier).encode(), challenge.encode())


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registration_problem(uri: str) -> str | None:
    """Why `uri` cannot be registered as a redirect URI, or None.

    RFC 6749 §3.1.2: absolute, no fragment; RFC 9700 §2.1 and §4.1.1: matched exactly, so no
    wildcards; https, or http only for a loopback address (RFC 8252 §7.3), never another scheme
    that another site could claim.
    """
    if len(uri) > 500 or any(ch.isspace() or ord(ch) < 0x20 for ch in uri):
        return "a redirect URI is at most 500 characters and has no spaces"
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.netloc or not parts.hostname:
        return "a redirect URI must be an absolute https URL"
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return "http is allowed only for a loopback address (localhost, 127.0.0.1, [::1])"
    if parts.fragment or uri.endswith("#"):
        return "a redirect URI has no fragment (RFC 6749 §3.1.2)"
    if "*" in uri or parts.username or parts.password:
        return "a redirect URI has no wildcard and no user information"
    return None


def is_registered(uri: str, registered: tuple[str, ...]) -> bool:
    """RFC 9700 §4.1.3: simple string comparison with a registered URI, nothing looser."""
    return uri in registered


def with_params(uri: str, params: Mapping[str, str | None]) -> str:
    """`uri` with response parameters added to its query (RFC 6749 §4.1.2: keep its own)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
