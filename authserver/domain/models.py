"""Records the services pass around: clients, users, devices, token families, admins, audit."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class GrantType(enum.StrEnum):
    """The grants a client may be allowed (RFC 6749 §4, RFC 8628 §3.4)."""

    AUTHORIZATION_CODE = "authorization_code"  # a website: the code flow with PKCE
    DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
    REFRESH_TOKEN = "refresh_token"


# What a client registered before grants were recorded per client may do.
DEFAULT_GRANT_TYPES = (GrantType.DEVICE_CODE, GrantType.REFRESH_TOKEN)


class ClientKind(enum.StrEnum):
    """What a registered client may do."""

    DEVICE = "device"  # a PC client: runs the device flow (RFC 8628)
    RESOURCE_SERVER = "resource_server"  # an API: may only introspect tokens (RFC 7662 §2.1)
    # The team's own mobile app: may only exchange its own sign-in's token for a device token
    # (RFC 8693 token exchange); it runs no device flow.
    MOBILE_APP = "mobile_app"


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
    # RFC 6749 §3.1.2.2: the exact redirect URIs a code flow may return to (RFC 9700 §2.1).
    redirect_uris: tuple[str, ...] = ()
    # OIDC RP-Initiated Logout 1.0 §3.1: where /logout may send the browser afterwards.
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[GrantType, ...] = DEFAULT_GRANT_TYPES
    # Every QR login of this client needs number matching: the phone picks the number the PC
    # shows (clients that can show it may also ask for it per flow).
    number_matching: bool = False
    # An operator deleted it: it stays disabled, as a tombstone for what it was issued.
    deleted_at: float | None = None

    @property
    def is_confidential(self) -> bool:
        return self.secret_hash is not None

    def allows(self, grant: GrantType) -> bool:
        return grant in self.grant_types


@dataclass(frozen=True, slots=True)
class User:
    """An account of the mobile app."""

    user_id: str
    username: str
    display_name: str
    # None: a user of an external identity provider (token exchange), who never signs in with
    # a password here.
    password_hash: str | None
    # An admin revoked all of this user's sessions then: approvals of older flows are void too.
    sessions_revoked_at: float | None = None
    email: str | None = None  # released with the `email` scope (OIDC Core §5.4)
    email_verified: bool = False
    # An operator disabled the account then: no sign-in, no approval, no token exchange.
    disabled_at: float | None = None
    # An operator deleted the account: its personal data is erased, the row stays a tombstone.
    deleted_at: float | None = None


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
    # RFC 7638 thumbprint of the key the app registered at sign-in (RFC 9449): every call
    # with this device token must prove it. None: a bearer device token (no key registered).
    dpop_jkt: str | None = None


class SignInMethod(enum.StrEnum):
    """How a phone's user proved who they are when its device token was bound."""

    PASSWORD = "password"  # username and password (POST /mobile/v1/sessions, /device)
    TOKEN_EXCHANGE = "token_exchange"  # a trusted identity provider's token (RFC 8693)


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """A subject of a trusted identity provider (`iss` + `sub`) and the local user it is."""

    issuer: str
    subject: str
    user_id: str


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
    # How the user authenticated for this login (OIDC Core §2 auth_time and amr), so a refreshed
    # ID token says the same (§12.2). None and () for families issued before they were kept.
    auth_time: float | None = None
    amr: tuple[str, ...] = ()
    # RFC 9449 §6.1: the thumbprint of the DPoP key the PC proved at issue; None: bearer.
    dpop_jkt: str | None = None
    # Where the PC was (domain/context.Place.key: a country code, or the kind of address), so
    # "first sign-in from this place" is one indexed lookup. "" for older families.
    requester_place: str = ""
    # When its refresh token last rotated (RFC 6749 §6): the phone's list shows the login in use.
    refreshed_at: float | None = None


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A family's new refresh token, stored by hash."""

    token_hash: str
    family_id: str
    expires_at: float


class RefreshTokenStanding(enum.StrEnum):
    """What a presented refresh token is to its family."""

    CURRENT = "current"  # the one to rotate
    PREVIOUS = "previous"  # the one the last rotation replaced (its response may have been lost)
    SPENT = "spent"  # rotated away earlier: a replay


@dataclass(frozen=True, slots=True)
class PresentedRefreshToken:
    """A refresh token looked up by hash: its family and its standing there."""

    family: TokenFamily
    standing: RefreshTokenStanding
    expires_at: float | None  # of the family's current refresh token
    grace_until: float | None  # the previous token may rotate once more until then


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An asymmetric key that signs access tokens; its public half is in the JWKS."""

    kid: str
    algorithm: str
    private_pem: str
    created_at: float


class DenialKind(enum.StrEnum):
    """What a deny-list entry names: one access token, or every access token of a session."""

    ACCESS_TOKEN = "jti"  # RFC 7009 revoked this access token alone
    SESSION = "sid"  # the token family (session) was revoked: all its access tokens


class DenyListAnswer(enum.StrEnum):
    """What the deny-list says about an access token."""

    DENIED = "denied"  # the token or its session was revoked
    ALLOWED = "allowed"  # not listed, and the list was rebuilt from SQL recently
    # Not listed; the list is complete but due for its periodic rebuild from SQL (which would
    # catch anything Redis lost). While SQL is down no revocation can commit, so it stands.
    STALE = "stale"
    INCOMPLETE = "incomplete"  # the list was lost or a write to it failed: rebuild first


@dataclass(frozen=True, slots=True)
class Denial:
    """Access tokens to refuse until `until` (after which every token it names has expired)."""

    kind: DenialKind
    id: str
    until: float


@dataclass(frozen=True, slots=True)
class SignedInPhone:
    """A phone's live sign-in and its user, read together."""

    device: MobileDevice
    user: User


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    """What a redemption re-reads, locked, to know whether an approval still stands."""

    client: Client
    user: User
    device: MobileDevice


@dataclass(frozen=True, slots=True)
class Admin:
    """An operator account; its credentials work only on the admin API and console."""

    admin_id: str
    username: str
    password_hash: str
    disabled_at: float | None = None  # no sign-in, no session


@dataclass(frozen=True, slots=True)
class AdminSession:
    """A signed-in admin: a bearer token (API) or a cookie (console), stored by hash."""

    token_hash: str
    admin_id: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None


class AccountKind(enum.StrEnum):
    """Who signs in with a password: an app user (phone or browser) or an admin."""

    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class DeviceCookie:
    """A phone or browser that signed in to an account before (OWASP's "device cookie").

    It is stored by hash; presenting it lets a sign-in skip the limits that other addresses'
    failures can fill, so an attacker cannot lock the owner's own devices out.
    """

    cookie_hash: str
    account_kind: AccountKind
    username: str  # lowercased, as sign-in forms name the account
    issued_at: float
    expires_at: float

    def proves(self, account_kind: AccountKind, username: str, now: float) -> bool:
        """Whether this cookie vouches for a sign-in to this account now."""
        return (
            self.account_kind is account_kind
            and self.username == username.lower()
            and now < self.expires_at
        )


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something: an admin, a user (through a phone), a client, or the server."""

    kind: str  # "admin" | "user" | "client" | "system"
    id: str = ""


SYSTEM = Actor("system")


class AuditEventType(enum.StrEnum):
    """Every kind of line in the audit trail."""

    ADMIN_CREATED = "admin.created"
    ADMIN_DELETED = "admin.deleted"
    ADMIN_DISABLED = "admin.disabled"
    ADMIN_ENABLED = "admin.enabled"
    ADMIN_PASSWORD_RESET = "admin.password_reset"
    ADMIN_SIGN_IN_FAILED = "admin.sign_in_failed"
    ADMIN_SIGNED_IN = "admin.signed_in"
    ADMIN_SIGNED_OUT = "admin.signed_out"
    CLIENT_DELETED = "client.deleted"  # a disabled tombstone is left (its families name it)
    CLIENT_DISABLED = "client.disabled"
    CLIENT_LOGO_SET = "client.logo_set"
    CLIENT_ENABLED = "client.enabled"
    CLIENT_SECRET_ROTATED = "client.secret_rotated"  # the old secret stopped working at once
    DEVICE_SIGNED_IN = "device.signed_in"
    DEVICE_SIGNED_OUT = "device.signed_out"
    DEVICE_UNBOUND = "device.unbound"
    FLOW_APPROVED = "flow.approved"
    FLOW_CANCELLED = "flow.cancelled"
    FLOW_CREATED = "flow.created"
    FLOW_DENIED = "flow.denied"
    FLOW_EXPIRED = "flow.expired"
    FLOW_NUMBER_MISMATCH = "flow.number_mismatch"  # the phone picked a wrong number: denied
    LOGIN_REPORTED = "login.reported"  # "this wasn't me": the user reported a login from the phone
    FLOW_REDEEMED = "flow.redeemed"
    FLOW_REPLAY_DETECTED = "flow.replay_detected"
    FLOW_SCANNED = "flow.scanned"
    FLOW_VOIDED = "flow.voided"
    FLOW_WITHDRAWN = "flow.withdrawn"
    AUTHORIZATION_CODE_ISSUED = "authorization_code.issued"
    AUTHORIZATION_CODE_REPLAYED = "authorization_code.replayed"
    BROWSER_SESSION_STARTED = "browser_session.started"
    BROWSER_SESSION_ENDED = "browser_session.ended"
    BROWSER_SESSION_REVOKED = "browser_session.revoked"  # by an admin, or its phone signed out
    CLIENT_CREATED = "client.created"
    CLIENT_UPDATED = "client.updated"
    IDENTITY_LINKED = "identity.linked"  # a new external subject became a local user
    TOKEN_ACCESS_REVOKED = "token.access_revoked"
    TOKEN_EXCHANGED = "token.exchanged"  # RFC 8693: an external token became a device token
    TOKEN_ISSUED = "token.issued"
    TOKEN_REFRESHED = "token.refreshed"
    TOKEN_REVOKED = "token.revoked"
    USER_DELETED = "user.deleted"  # erased by an operator (`authserver users delete`)
    USER_DISABLED = "user.disabled"  # by an operator (`authserver users disable`)
    USER_ENABLED = "user.enabled"
    USER_EMAIL_SET = "user.email_set"
    USER_PASSWORD_SET = "user.password_set"  # by an operator (`authserver users set-password`)


class RevocationReason(enum.StrEnum):
    """Why a token family was revoked (token_families.revoked_reason, token.revoked events)."""

    ADMIN = "admin"  # an admin revoked it (one session, a user's, a client's, a phone's)
    APPROVAL_WITHDRAWN = "approval_withdrawn"  # the approval was voided before redemption
    AUTHORIZATION_CODE_REPLAY = "authorization_code_replay"  # RFC 6749 §4.1.2
    CLIENT_DISABLED = "client_disabled"
    CLIENT_DELETED = "client_deleted"
    USER_DELETED = "user_deleted"
    DEVICE_CODE_REPLAY = "device_code_replay"  # RFC 6749 §4.1.2 by analogy
    REDEMPTION_VOIDED = "redemption_voided"  # issued by a claim that never delivered
    REFRESH_TOKEN_REPLAY = "refresh_token_replay"  # RFC 9700 §4.14.2
    REVOKED_BY_CLIENT = "revoked_by_client"  # RFC 7009
    ENDED_BY_USER = "ended_by_user"  # from the phone's list of signed-in computers
    REPORTED_BY_USER = "reported_by_user"  # "this wasn't me", from the phone


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


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A browser signed in to this server by a QR login (the OP's session, OIDC Core §3.1.2.3),
    remembered by a cookie whose secret is stored hashed; prompt=none and other clients use it."""

    id: str
    secret_hash: str
    user_id: str
    mobile_device_id: str  # the phone (or /device browser) whose approval signed it in
    auth_time: float
    amr: tuple[str, ...]
    created_at: float
    expires_at: float
    ended_at: float | None = None

    def is_live(self, now: float) -> bool:
        return self.ended_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class Authorization:
    """One authorization request of the code flow (OIDC Core §3.1.2.1) and the code it becomes.

    Stored when /authorize accepts the request; the QR login's flow (`flow_hash`, its device
    code's hash) signs the user in, after which the code is set (stored hashed, RFC 6749
    §4.1.2), redeemed once at the token endpoint (`used_at`, `family_id`).
    """

    id: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None  # RFC 7636 §4.2, S256 only
    created_at: float
    expires_at: float  # of the request, then of the code once issued
    flow_hash: str | None = None  # None: a live browser session answered at once
    code_hash: str | None = None
    user_id: str | None = None
    mobile_device_id: str | None = None
    session_id: str | None = None
    auth_time: float | None = None
    amr: tuple[str, ...] = ()
    used_at: float | None = None
    family_id: str | None = None
