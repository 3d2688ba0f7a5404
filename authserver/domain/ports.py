"""What the services need from storage, as Protocols. Implementations live in storage/."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from authserver.domain.flow import ClaimSettlement, Flow, PollResult
from authserver.domain.limits import Limit
from authserver.domain.models import (
    Admin,
    AdminSession,
    ApprovalFacts,
    AuditEvent,
    AuditFilter,
    Authorization,
    BrowserSession,
    Client,
    Denial,
    DenyListAnswer,
    DeviceCookie,
    ExternalIdentity,
    FamilyFilter,
    MobileDevice,
    PresentedRefreshToken,
    RefreshToken,
    RefreshTokenStanding,
    SignedInPhone,
    SigningKey,
    TokenFamily,
    User,
)


class Transaction(Protocol):
    """Opens one unit of work: the SQL repositories called inside it commit together, once."""

    def __call__(self) -> AbstractContextManager[object]: ...


class FlowStore(Protocol):
    """Short-lived flow state. Every transition is atomic; TTLs only clean up."""

    def create(self, flow: Flow) -> bool:
        """Store a new flow; False if its user code is already taken by a live flow."""

    def get(self, device_code_hash: str) -> Flow | None:
        """The flow of a device code, or None."""

    def find_by_user_code(self, user_code_hash: str) -> Flow | None:
        """The flow of a user code, or None."""

    def find_by_confirm_token(self, confirm_token_hash: str) -> Flow | None:
        """The flow that issued this confirm token, or None."""

    def replace(self, old: Flow, new: Flow) -> bool:
        """Compare-and-set: write `new` only if the stored flow is still at `old.version`.

        The poll-owned fields (domain.flow.POLL_OWNED_FIELDS) keep their stored values.
        """

    def poll(
        self,
        device_code_hash: str,
        now: float,
        *,
        client_id: str,
        client_secret_hash: str,
        lease: float,
        dpop_jkt: str | None = None,
    ) -> PollResult:
        """Apply domain.flow.poll atomically, in one round trip."""

    def settle_claim(
        self, device_code_hash: str, claim: int, settlement: ClaimSettlement, family_id: str = ""
    ) -> bool:
        """Apply domain.flow.settle_claim atomically; False if `claim` no longer holds the flow."""

    def wait_for_change(self, device_code_hash: str, version: int, timeout: float) -> Flow | None:
        """Block up to `timeout` s until the flow's version differs from `version`."""


class RateLimiter(Protocol):
    """Attempt counters (domain.limits), shared by every process that shares the store."""

    def attempt(self, limits: Sequence[Limit], now: float) -> float:
        """Count one attempt on every limit atomically, or refuse it and store nothing.

        The seconds to wait if any limit refuses, else 0.
        """

    def release(self, limits: Sequence[Limit], now: float) -> None:
        """Uncount one attempt on every limit (it succeeded, or the server failed)."""


class ProofReplayCache(Protocol):
    """One-time values seen recently (DPoP proof jtis, RFC 9449 §11.1), shared by every process."""

    def first_use(self, key: str, until: float, now: float) -> bool:
        """Record `key` until `until`; False if it was already recorded (a replay)."""

    def shared_secret(self) -> bytes:
        """A random secret every process of this deployment shares (for stateless nonces)."""


class DeviceCookieRepository(Protocol):
    """Known-device cookies: proof that a browser or phone signed in to an account before."""

    def add(self, cookie: DeviceCookie) -> None: ...
    def get(self, cookie_hash: str) -> DeviceCookie | None: ...


class ClientRepository(Protocol):
    def add(self, client: Client, now: float) -> None: ...
    def get(self, client_id: str) -> Client | None: ...
    def by_name(self, name: str) -> Client | None: ...
    def all(self) -> list[Client]: ...
    def set_disabled(self, client_id: str, disabled_at: float | None) -> bool:
        """Disable (a time, also its sessions_revoked_at) or re-enable (None) a client;
        False if there is no such client."""

    def mark_sessions_revoked(self, client_id: str, now: float) -> None: ...
    def update(self, client: Client) -> bool:
        """Store the client's name, scope and registration; False if there is no such client."""

    def set_secret_hash(self, client_id: str, secret_hash: str) -> bool:
        """Replace a client's secret (its hash); False if there is no such client."""

    def erase(self, client_id: str, now: float) -> bool:
        """Delete a client: a disabled tombstone without redirect URIs or logo stays (its
        families name it); False if there is no such client or it was deleted already."""

    def logo(self, client_id: str) -> bytes | None: ...
    def set_logo(self, client_id: str, png: bytes | None, now: float) -> None: ...


class AuthorizationCodeRepository(Protocol):
    """Authorization requests of the code flow and their codes (one aggregate)."""

    def add(self, authorization: Authorization) -> None:
        """Store a new request; requests and codes expired for a while are deleted."""

    def get(self, authorization_id: str) -> Authorization | None: ...
    def by_flow(self, flow_hash: str) -> Authorization | None: ...
    def set_code(self, issued: Authorization) -> bool:
        """Give a request without a code its code and who signed in; False if it has one (a
        second issue for one QR login is impossible) or is gone."""

    def lock_by_code(self, code_hash: str) -> Authorization | None:
        """The authorization holding this code, locked until the unit of work ends."""

    def mark_used(self, authorization_id: str, now: float, family_id: str | None) -> bool:
        """Consume the code (once): False if it was used already."""


class BrowserSessionRepository(Protocol):
    def add(self, session: BrowserSession) -> None:
        """Store a new session; sessions over for a while (and no code's) are deleted."""

    def get(self, session_id: str) -> BrowserSession | None: ...
    def by_secret_hash(self, secret_hash: str) -> BrowserSession | None: ...
    def find(
        self, user_id: str | None, live_at: float | None, limit: int, offset: int
    ) -> list[BrowserSession]:
        """Sessions newest first, of one user if `user_id`; only live ones if `live_at`."""

    def end(self, session_id: str, now: float) -> bool:
        """End a live session; False if it had ended already."""

    def end_all(
        self, now: float, *, user_id: str | None = None, mobile_device_ids: tuple[str, ...] = ()
    ) -> list[BrowserSession]:
        """End every live session of this user or signed in by these phones; those ended."""


class UserRepository(Protocol):
    def add(self, user: User, now: float) -> None:
        """Store a new user; raises errors.Conflict if the username is taken."""

    def get(self, user_id: str) -> User | None: ...
    def by_username(self, username: str) -> User | None: ...
    def mark_sessions_revoked(self, user_id: str, now: float) -> None: ...
    def search(self, text: str, limit: int) -> list[User]:
        """Users whose username or display name contains `text` (case-insensitive)."""

    def set_password(self, user_id: str, password_hash: str) -> bool:
        """Replace a user's password hash; False if there is no such user."""

    def set_disabled(self, user_id: str, disabled_at: float | None) -> bool:
        """Disable (a time) or enable (None) a user; False if there is no such user."""

    def set_email(self, user_id: str, email: str | None, verified: bool) -> bool:
        """Replace a user's email address; False if there is no such user."""

    def erase(self, user_id: str, now: float) -> bool:
        """Delete a user: name, password and email erased, identity links dropped, a disabled
        tombstone left for their families; False if there is no such user or it is erased."""


class ExternalIdentityRepository(Protocol):
    """Which local user each subject (`iss` + `sub`) of a trusted identity provider is."""

    def user_of(self, issuer: str, subject: str) -> User | None:
        """The user linked to this subject, or None."""

    def link_new_user(self, identity: ExternalIdentity, user: User, now: float) -> bool:
        """Store `user` and link `identity` to it, together; False (and neither stored) if the
        subject was linked meanwhile (a concurrent first exchange) or the username is taken."""

    def update_profile(
        self, user_id: str, display_name: str, email: str | None, email_verified: bool
    ) -> None:
        """The identity provider's latest name and email for its user."""


class MobileDeviceRepository(Protocol):
    def add(self, device: MobileDevice, now: float) -> None: ...
    def get(self, mobile_device_id: str) -> MobileDevice | None: ...
    def by_token_hash(self, token_hash: str) -> MobileDevice | None: ...
    def of_user(self, user_id: str) -> list[MobileDevice]:
        """Every sign-in of this user's phones, newest first."""

    def signed_in(self, token_hash: str) -> SignedInPhone | None:
        """The sign-in this device token belongs to, with its user, in one read."""

    def lock_for_redemption(self, mobile_device_id: str, client_id: str) -> ApprovalFacts | None:
        """The approving phone, its user and the client, locked against concurrent revocation
        until the caller's unit of work ends (a redemption checks its approval under them)."""

    def revoke(self, mobile_device_id: str, now: float) -> None: ...
    def revoke_device(self, user_id: str, device_id: str, now: float) -> list[str]:
        """Sign out every live session of this user on this device id; the ids signed out."""


class TokenRepository(Protocol):
    """Persistent grants. Issuing, rotation and revocation are each one unit of work."""

    def issue(self, family: TokenFamily, refresh: RefreshToken | None) -> bool:
        """Store a new family with its first refresh token (None: a grant without one); False
        (and nothing stored) if a family already holds this device code: one grant per code,
        whatever the flow store says."""

    def family(self, family_id: str) -> TokenFamily | None: ...

    def family_by_device_code(self, device_code_hash: str) -> TokenFamily | None: ...

    def presented_refresh_token(
        self, token_hash: str, *, lock: bool = True
    ) -> PresentedRefreshToken | None:
        """The family of a presented refresh token and its standing there. With `lock`, the
        family row stays locked until the caller's unit of work ends, so two rotations, or a
        rotation and a revocation, serialise."""

    def rotate(
        self,
        family_id: str,
        standing: RefreshTokenStanding,
        presented_hash: str,
        new: RefreshToken,
        now: float,
        grace_until: float | None,
    ) -> bool:
        """Make `new` the family's current refresh token. From CURRENT: the presented token
        becomes the previous one, which may rotate once more until `grace_until`. From PREVIOUS
        (that grace): the current token, whose response was lost, is spent, and the grace ends
        (`grace_until` None). False if the family moved meanwhile or is revoked."""

    def revoke_family(self, family_id: str, now: float, reason: str) -> bool:
        """Revoke a family; True if this call revoked it."""

    def signed_in_from(self, user_id: str, place: str) -> bool:
        """Whether any login of the user came from `place` (TokenFamily.requester_place)."""

    def families(self, where: FamilyFilter, limit: int, offset: int) -> list[TokenFamily]:
        """Families matching `where`, newest first."""

    def revoke_families(self, where: FamilyFilter, now: float, reason: str) -> list[TokenFamily]:
        """Revoke every live family matching `where`; the families this call revoked."""

    def revoke_access_token(self, jti: str, family_id: str, expires_at: float, now: float) -> bool:
        """Revoke one access token; True if this call revoked it."""

    def access_token_revoked(self, jti: str) -> bool: ...

    def denials(self, now: float, access_token_ttl: float) -> list[Denial]:
        """Everything the deny-list must hold now: access tokens revoked alone and unexpired, and
        sessions revoked recently enough that some of their access tokens may be unexpired."""


class RevocationList(Protocol):
    """The deny-list: revoked access tokens and sessions, each kept until its tokens expire.

    SQL stays the record; this list is how a self-contained JWT is refused within seconds
    without a SQL query per request. A list that was lost (a Redis restart) says so, and is
    rebuilt from SQL before it answers again.
    """

    def add(self, denials: list[Denial], now: float) -> None: ...

    def is_denied(self, jti: str, sid: str, now: float) -> DenyListAnswer:
        """Whether the token or its session is denied, and whether the list can be trusted."""

    def mark_incomplete(self) -> None:
        """Make the next check rebuild the list (a write to it failed): a new generation."""

    def generation(self) -> str:
        """The list's generation: read it before reading SQL for a rebuild."""

    def rebuild(self, denials: list[Denial], now: float, generation: str) -> bool:
        """Add `denials` (everything SQL said was denied) and mark the list complete, atomically;
        but only if it is still `generation`: a rebuild that read SQL before a revocation whose
        own write failed (and so marked the list incomplete, or a Redis restart lost it) must
        not vouch for the list. False if it did not mark it complete."""


class KeyRepository(Protocol):
    def all(self) -> list[SigningKey]: ...
    def remove(self, kid: str) -> None: ...
    def add(self, key: SigningKey) -> bool:
        """Store a key; False if a key with its kid is already stored."""


class AdminRepository(Protocol):
    def add(self, admin: Admin, now: float) -> None:
        """Store a new admin; raises errors.Conflict if the username is taken."""

    def get(self, admin_id: str) -> Admin | None: ...
    def by_username(self, username: str) -> Admin | None: ...
    def all(self) -> list[Admin]:
        """Every admin, by username."""

    def set_password(self, admin_id: str, password_hash: str) -> None: ...
    def set_disabled(self, admin_id: str, disabled_at: float | None) -> None: ...
    def delete(self, admin_id: str) -> None:
        """Remove an admin and their sessions (the audit trail keeps their id)."""

    def end_sessions(self, admin_id: str, now: float) -> None: ...
    def add_session(self, session: AdminSession) -> None: ...
    def session(self, token_hash: str) -> AdminSession | None: ...
    def revoke_session(self, token_hash: str, now: float) -> None: ...


class AuditLog(Protocol):
    """The audit trail in SQL; append-only."""

    def record(self, event: AuditEvent, once_key: str | None = None) -> bool:
        """Append `event`; with `once_key`, only if no event with that key was recorded."""

    def query(self, where: AuditFilter) -> list[AuditEvent]: ...
