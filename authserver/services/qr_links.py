"""A QR code that rotates: the link it shows is good for about ROTATION seconds.

A photographed or forwarded QR code used to stay valid for the device code's whole lifetime.
A flow asked for with rotating_qr=true shows verification_uri_complete plus a scan token of the
current period (`&t=...`), and a scan of its QR needs a token of this period or the one before;
an older one tells the phone "this code was refreshed on the screen: scan it again". The PC
learns each new token from the status channel. Typing the user code (RFC 8628 §3.3) stays
valid for the code's lifetime: it is what a person reads off their own screen.

Tokens are stateless: an HMAC of the flow and the period under a secret every process shares.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from urllib.parse import quote

from authserver.domain.flow import Flow
from authserver.domain.ports import ProofReplayCache
from authserver.oauth.dpop import b64url

ROTATION = 30  # seconds between two QR links of a flow
TOKEN_PARAMETER = "t"


class QrLinks:
    """Scan tokens of rotating QR codes: the current one, and whether a scanned one is fresh."""

    def __init__(self, secrets: ProofReplayCache, clock: Callable[[], float]) -> None:
        self._secrets = secrets
        self._clock = clock

    def _token(self, flow: Flow, period: int) -> str:
        message = f"qr:{flow.device_code_hash}:{period}".encode()
        return b64url(hmac.new(self._secrets.shared_secret(), message, "sha256").digest()[:12])

    def current(self, flow: Flow) -> tuple[str, int]:
        """(token, seconds until the next one) for a flow with a rotating QR code."""
        now = self._clock()
        period = math.floor(now / ROTATION)
        return self._token(flow, period), max(1, math.ceil((period + 1) * ROTATION - now))

    def fresh(self, flow: Flow, token: str | None) -> bool:
        """A token of this period or the last one (it was on the screen moments ago)."""
        if not token:
            return False
        period = math.floor(self._clock() / ROTATION)
        return any(hmac.compare_digest(token, self._token(flow, p)) for p in (period, period - 1))


def with_token(link: str, token: str) -> str:
    """The QR link: verification_uri_complete with the scan token."""
    return f"{link}&{TOKEN_PARAMETER}={quote(token)}"
