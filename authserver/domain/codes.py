"""Secrets the flow hands out, how they are hashed at rest and compared."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# RFC 8628 §6.1: base-20 without vowels, so no words are spelt and 8 chars give 20^8 ≈ 2^34.6.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8


def new_device_code() -> str:
    """A device code with 256 bits of entropy (RFC 8628 §5.2 asks for unguessable)."""
    return secrets.token_urlsafe(32)


def new_token() -> str:
    """An opaque bearer secret (refresh, confirm, mobile device token) with 256 bits."""
    return secrets.token_urlsafe(32)


def new_client_id() -> str:
    """A client id: 128 random bits, URL-safe, never starting with "-".

    Clients pass it on command lines (`qrlogin-pc --client-id ID`), where a leading dash reads
    as an option; one in 64 token_urlsafe values has one.
    """
    while (client_id := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return client_id


# Number matching: two digits, so it is read at a glance; a wrong pick denies the flow, so
# guessing has one try in three among the choices (and one in 90 blind).
MATCH_NUMBERS = range(10, 100)
MATCH_CHOICES = 3


def new_match_number() -> int:
    """The number the PC shows and the phone must pick."""
    return secrets.choice(MATCH_NUMBERS)


def match_choices(number: int, seed: str) -> list[int]:
    """`number` and two other numbers, in an unpredictable order, for the phone to pick from.

    The same for every scan of one flow (`seed` is a secret of the flow the phone never sees):
    fresh decoys on each scan would give the number away, as the one every scan shows.
    """

    def draw(label: str) -> int:
        digest = hmac.new(seed.encode(), label.encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big")

    choices = [number]
    counter = 0
    while len(choices) < MATCH_CHOICES:
        decoy = MATCH_NUMBERS[draw(f"decoy:{counter}") % len(MATCH_NUMBERS)]
        counter += 1
        if decoy not in choices:
            choices.append(decoy)
    return sorted(choices, key=lambda n: draw(f"order:{n}"))


def new_user_code() -> str:
    """A user code in the RFC 8628 §6.1 style, shown as XXXX-XXXX."""
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return format_user_code(raw)


def normalize_user_code(typed: str) -> str | None:
    """Canonical form of a typed user code, or None if it cannot be one.

    RFC 8628 §6.1: ignore case and punctuation the user may add ("wdjb mjht", "WDJB-MJHT").
    """
    cleaned = "".join(ch for ch in typed.upper() if ch.isalnum())
    if len(cleaned) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in cleaned):
        return None
    return cleaned


def format_user_code(normalized: str) -> str:
    """The display form XXXX-XXXX of a normalized user code."""
    half = len(normalized) // 2
    return f"{normalized[:half]}-{normalized[half:]}"


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret, as stored at rest.

    A fast hash is right here: the secrets are random with >=128 bits, so no KDF is needed,
    and every token poll pays for this hash.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def presented_secret_hash(client_secret: str | None) -> str:
    """How a flow stores a client's secret: its SHA-256, or "" for a public client."""
    return hash_secret(client_secret) if client_secret else ""


def secrets_equal(a: str, b: str) -> bool:
    """Compare two secrets (or their hashes) in constant time."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def mask_name(name: str) -> str:
    """A masked display name for the PC's status channel: "Alice Liddell" -> "A*** L***".

    The status channel must not hand a phishing PC the victim's identity (DESIGN, security).
    """
    return " ".join(f"{word[0]}***" for word in name.split() if word) or "***"
