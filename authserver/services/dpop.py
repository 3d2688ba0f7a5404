"""DPoP proofs of possession (RFC 9449): one check per request, with replay and nonce state
shared by every process."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from authserver.config import Config, DpopNonce
from authserver.domain import errors
from authserver.domain.ports import ProofReplayCache
from authserver.oauth.dpop import Proof, b64url, parse_proof

LEEWAY = 5.0  # seconds of clock skew allowed on a proof's iat
NONCE_PERIOD = 300  # a nonce is good for this period and the next (RFC 9449 §8.2)


class DpopProofs:
    """Checks DPoP proofs: the proof itself (oauth/dpop.py), its nonce and that its jti is new."""

    def __init__(self, config: Config, cache: ProofReplayCache, clock: Callable[[], float]) -> None:
        self._config = config
        self._cache = cache
        self._clock = clock

    @property
    def nonces_required(self) -> bool:
        return self._config.dpop_nonce == DpopNonce.REQUIRED

    def nonce(self) -> str | None:
        """The nonce clients should put in their next proofs (the DPoP-Nonce header), if any.

        Stateless (RFC 9449 §8.2 leaves the form to the server): an HMAC of the current period
        under a secret all processes share, so any process accepts any process's nonce.
        """
        if not self.nonces_required:
            return None
        return self._nonce_for(int(self._clock() // NONCE_PERIOD))

    def _nonce_for(self, period: int) -> str:
        mac = hmac.new(self._cache.shared_secret(), f"dpop-nonce:{period}".encode(), "sha256")
        return b64url(mac.digest()[:18])

    def check(
        self,
        proof: str | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        resource: bool = False,
    ) -> Proof:
        """A proof that holds for this request and was never used before; else InvalidDpopProof
        (or UseDpopNonce, carrying the nonce to use)."""
        if not proof:
            raise errors.InvalidDpopProof(
                "Send a DPoP proof in the DPoP header.", resource=resource
            )
        now = self._clock()
        lifetime = float(self._config.dpop_proof_lifetime)
        try:
            checked = parse_proof(
                proof,
                method=method,
                url=url,
                now=now,
                max_age=lifetime,
                leeway=LEEWAY,
                access_token=access_token,
            )
        except errors.InvalidDpopProof as e:
            raise errors.InvalidDpopProof(e.description, resource=resource) from None
        if self.nonces_required:
            period = int(now // NONCE_PERIOD)
            valid = (self._nonce_for(period), self._nonce_for(period - 1))
            if checked.nonce is None or not any(
                hmac.compare_digest(checked.nonce, v) for v in valid
            ):
                raise errors.UseDpopNonce(valid[0], resource=resource)
        # RFC 9449 §11.1: a proof is used once. Keyed by the key too, so one client's jtis
        # never collide with another's; remembered for as long as its iat is accepted.
        digest = hashlib.sha256(f"{checked.jkt}:{checked.jti}".encode()).hexdigest()
        if not self._cache.first_use(f"dpop:{digest}", checked.iat + lifetime + LEEWAY, now):
            raise errors.InvalidDpopProof("This DPoP proof was already used.", resource=resource)
        return checked
