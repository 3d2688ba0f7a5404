"""Password hashing with a real KDF (scrypt, RFC 7914), from the standard library."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets

from authserver.domain.codes import secrets_equal

# OWASP's Password Storage Cheat Sheet lists N=2^15, r=8, p=3 as equal to its N=2^17, p=1
# baseline at a quarter of the memory (32 MiB), which matters with many concurrent sign-ins.
# p is a setting (AUTHSERVER_SCRYPT_P, default 3); each hash records its own parameters.
_N, _R = 2**15, 8
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str, p: int = 3) -> str:
    """A self-describing scrypt hash: scrypt$N$r$p$salt$digest."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=p, maxmem=_MAXMEM)
    return "$".join(["scrypt", str(_N), str(_R), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored`, compared in constant time."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
        )
    except ValueError:
        return False
    return secrets_equal(_b64(computed), digest)


@functools.cache
def dummy_hash(p: int = 3) -> str:
    """A hash to verify against for unknown usernames, so a miss costs a wrong password's time."""
    return hash_password(secrets.token_urlsafe(16), p)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
