"""Records the services pass around: clients, users, mobile devices, token families."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Client:
    """A registered PC client. Public unless it has a secret (RFC 8628 §5.6)."""

    client_id: str
    name: str
    scope: str  # space-separated scopes this client may ask for
    secret_hash: str | None = None

    @property
    def is_confidential(self) -> bool:
        return self.secret_hash is not None


@dataclass(frozen=True, slots=True)
class User:
    """An account of the mobile app."""

    user_id: str
    username: str
    display_name: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class MobileDevice:
    """A phone signed in to the app with a token bound to its device id."""

    id: str
    user_id: str
    device_id: str
    name: str
    platform: str
    token_hash: str
    expires_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class TokenFamily:
    """One approved login: the refresh-token chain and access tokens it produced."""

    id: str
    user_id: str
    client_id: str
    mobile_device_id: str | None
    scope: str
    device_code_hash: str | None
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One link of a family's rotation chain, stored by hash."""

    token_hash: str
    family_id: str
    expires_at: float
    consumed_at: float | None = None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An asymmetric key that signs access tokens; its public half is in the JWKS."""

    kid: str
    algorithm: str
    private_pem: str
    created_at: float
