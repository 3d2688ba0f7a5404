"""Records the services pass around: clients, users, devices, token families, admins, audit."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ClientKind(enum.StrEnum):
    """What a registered client may do."""

    DEVICE = "device"  # a PC client: runs the device flow (RFC 8628)
    RESOURCE_SERVER = "resource_server"  # an API: may only introspect tokens (RFC 7662 §2.1)


@dataclass(frozen=True, slots=True)
class Client:
    """A registered PC client. Public unless it has a secret (RFC 8628 §5.6)."""

    client_id: str
    name: str
    scope: str  # space-separated scopes this client may ask for
    secret_hash: str | None = None
    kind: ClientKind = ClientKind.DEVICE
    disabled_at: float | None = None  # disabled: no new device codes, its tokens stop working
    # All its sessions were revoked (or it was disabled) then: older approvals are void too.
    sessions_revoked_at: float | None = None

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
    # An admin revoked all of this user's sessions then: approvals of older flows are void too.
    sessions_revoked_at: float | None = None


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
    created_at: float = 0.0


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
    revoked_reason: str | None = None
    requester_ip: str = ""  # the PC that asked (RFC 8628 §3.1), shown to admins
    requester_user_agent: str = ""


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


@dataclass(frozen=True, slots=True)
class AccessTokenRecord:
    """What SQL remembers of one access token: its jti, grant and lifetime."""

    jti: str
    family_id: str
    expires_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeniedToken:
    """An access token that must be refused until it expires (the jti deny-list)."""

    jti: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Admin:
    """An operator account; its credentials work only on the admin API and console."""

    admin_id: str
    username: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class AdminSession:
    """A signed-in admin: a bearer token (API) or a cookie (console), stored by hash."""

    token_hash: str
    admin_id: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something: an admin, a user (through a phone), a client, or the server."""

    kind: str  # "admin" | "user" | "client" | "system"
    id: str = ""


SYSTEM = Actor("system")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of the audit trail. It never holds a secret: ids and facts only."""

    event: str
    actor: Actor
    occurred_at: float
    ip: str = ""
    user_id: str | None = None
    client_id: str | None = None
    mobile_device_id: str | None = None
    family_id: str | None = None
    flow_ref: str | None = None  # a prefix of the device code's hash: correlates a flow's events
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class FamilyFilter:
    """Which token families an admin lists or revokes; unset fields match everything."""

    user_id: str | None = None
    client_id: str | None = None
    mobile_device_ids: tuple[str, ...] | None = None
    active_only: bool = False


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which audit events to list, newest first."""

    user_id: str | None = None
    client_id: str | None = None
    family_id: str | None = None
    mobile_device_id: str | None = None
    event: str | None = None
    actor_id: str | None = None
    before_id: int | None = None
    limit: int = 100
