"""The token endpoint (RFC 6749 §3.2): one table from grant_type to the grant that answers it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from authserver.domain import errors
from authserver.services.tokens import IssuedTokens


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token request as parsed from the wire: its parameters and who the client says it is."""

    grant_type: str
    params: Mapping[str, str]
    client_id: str
    client_secret: str | None
    ip: str
    # RFC 9449: the thumbprint of the key a valid DPoP proof on this request was signed with.
    dpop_jkt: str | None = None

    def required(self, name: str) -> str:
        """A required, non-empty parameter of this grant."""
        value = self.params.get(name, "")
        if not value:
            raise errors.MalformedRequest(f"The parameter {name!r} is required.")
        return value


@dataclass(frozen=True, slots=True)
class ExchangedToken:
    """What a token exchange returns (RFC 8693 §2.2.1): one token of `issued_token_type`."""

    access_token: str  # RFC 8693 §2.2.1 names the issued token so, whatever its type
    issued_token_type: str
    expires_in: int
    user_id: str
    mobile_device_id: str
    token_type: str = "Bearer"  # DPoP when bound to the key of the request's proof (RFC 9449)


class Grant(Protocol):
    """One grant type of the token endpoint, as Authlib's authorization server registers them."""

    grant_type: str

    def token(self, request: TokenRequest) -> IssuedTokens | ExchangedToken:
        """Answer a token request of this grant type, or raise a domain error."""


class TokenEndpoint:
    """Looks a request's grant up in the table and lets it answer."""

    def __init__(self, grants: list[Grant]) -> None:
        self._grants = {grant.grant_type: grant for grant in grants}

    @property
    def grant_types(self) -> list[str]:
        return list(self._grants)

    def token(self, request: TokenRequest) -> IssuedTokens | ExchangedToken:
        grant = self._grants.get(request.grant_type)
        if grant is None:
            raise errors.UnsupportedGrantType()
        return grant.token(request)
