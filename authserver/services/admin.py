"""Admins: their own accounts and sessions, and what they may do to what was issued."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.codes import hash_secret, new_token
from authserver.domain.models import (
    AccountKind,
    Actor,
    Admin,
    AdminSession,
    AuditEvent,
    AuditEventType,
    AuditFilter,
    BrowserSession,
    Client,
    FamilyFilter,
    MobileDevice,
    RevocationReason,
    TokenFamily,
    User,
)
from authserver.domain.ports import AdminRepository, TokenRepository, Transaction
from authserver.domain.text import N_
from authserver.services.accounts import AccountService
from authserver.services.approvals import Approvals
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.limits import SignInThrottle
from authserver.services.passwords import dummy_hash, hash_password, verify_password
from authserver.services.revocation import Revocations

# Admin session tokens carry this prefix so a leaked one is recognisable in logs and scanners.
ADMIN_TOKEN_PREFIX = "adm_"


@dataclass(frozen=True, slots=True)
class AdminSignIn:
    """A successful admin sign-in: the session token, its admin, a device cookie."""

    token: str
    admin: Admin
    device_cookie: str  # present it on the next sign-in (services/limits.py)


class AdminAuth:
    """Admin accounts and sessions: separate from users and clients, so no other credential
    (a client secret, a device token, an access or refresh token) can act as an admin."""

    def __init__(
        self,
        config: Config,
        admins: AdminRepository,
        throttle: SignInThrottle,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._admins = admins
        self._throttle = throttle
        self._audit = auditor
        self._transaction = transaction
        self._clock = clock

    def create(self, username: str, password: str) -> Admin:
        username = username.strip()
        if not username or len(username) > 150:
            raise errors.MalformedRequest("An admin username is 1 to 150 characters.")
        _check_admin_password(password)
        admin = Admin(str(uuid.uuid4()), username, hash_password(password, self._config.scrypt_p))
        with self._transaction():
            self._admins.add(admin, self._clock())
            self._audit.record(AuditEventType.ADMIN_CREATED, Actor("system"), admin=admin.admin_id)
        return admin

    def exists(self, username: str) -> bool:
        return self._admins.by_username(username) is not None

    def all(self) -> list[Admin]:
        return self._admins.all()

    def reset_password(self, username: str, password: str) -> Admin:
        """Give an existing admin a new password (signed-in sessions stay until they expire)."""
        admin = self._existing(username)
        _check_admin_password(password)
        password_hash = hash_password(password, self._config.scrypt_p)
        with self._transaction():
            self._admins.set_password(admin.admin_id, password_hash)
            self._audit.record(
                AuditEventType.ADMIN_PASSWORD_RESET, Actor("system"), admin=admin.admin_id
            )
        return admin

    def set_disabled(self, username: str, disabled: bool) -> Admin:
        """Disable an admin (no sign-in; their sessions end now) or enable them again."""
        admin = self._existing(username)
        now = self._clock()
        with self._transaction():
            self._admins.set_disabled(admin.admin_id, now if disabled else None)
            if disabled:
                self._admins.end_sessions(admin.admin_id, now)
            event = AuditEventType.ADMIN_DISABLED if disabled else AuditEventType.ADMIN_ENABLED
            self._audit.record(event, Actor("system"), admin=admin.admin_id)
        return dataclasses.replace(admin, disabled_at=now if disabled else None)

    def delete(self, username: str) -> Admin:
        """Remove an admin and their sessions; the audit trail keeps their id."""
        admin = self._existing(username)
        with self._transaction():
            self._admins.delete(admin.admin_id)
            self._audit.record(
                AuditEventType.ADMIN_DELETED,
                Actor("system"),
                admin=admin.admin_id,
                username=admin.username,
            )
        return admin

    def _existing(self, username: str) -> Admin:
        admin = self._admins.by_username(username)
        if admin is None:
            raise errors.NotFound("No such admin.")
        return admin

    def sign_in(
        self, username: str, password: str, ip: str, device_cookie: str = ""
    ) -> AdminSignIn:
        """Check the password; a new session token (shown once, stored as its SHA-256).

        Limited like the phone's sign-in (services/limits.py), `device_cookie` included.
        """
        now = self._clock()
        check = self._throttle.check(
            AccountKind.ADMIN,
            username,
            ip,
            device_cookie,
            now,
            counts=(errors.AdminAuthenticationFailed,),
        )
        with check.guard as guard:
            admin = self._admins.by_username(username)
            ok = verify_password(
                password, admin.password_hash if admin else dummy_hash(self._config.scrypt_p)
            )
            # A disabled admin's right password reads as wrong: nothing tells a guesser more.
            if admin is None or not ok or admin.disabled_at is not None:
                # Only a known admin's id: what was typed may be a password pasted by mistake.
                self._audit.record(
                    AuditEventType.ADMIN_SIGN_IN_FAILED,
                    Actor("admin", admin.admin_id if admin else ""),
                    ip=ip,
                )
                raise errors.AdminAuthenticationFailed("Unknown admin or wrong password.")
            guard.succeeded()
        token = ADMIN_TOKEN_PREFIX + new_token()
        with self._transaction():
            self._admins.add_session(
                AdminSession(
                    hash_secret(token), admin.admin_id, now, now + self._config.admin_session_ttl
                )
            )
            self._audit.record(
                AuditEventType.ADMIN_SIGNED_IN, Actor("admin", admin.admin_id), ip=ip
            )
            cookie = self._throttle.remember(check, AccountKind.ADMIN, username, now)
        return AdminSignIn(token, admin, cookie)

    def authenticate(self, token: str) -> Admin:
        """The admin of a live session token; anything else is AdminAuthenticationFailed."""
        if not token.startswith(ADMIN_TOKEN_PREFIX):
            raise errors.AdminAuthenticationFailed()
        session = self._admins.session(hash_secret(token))
        if session is None or session.revoked_at is not None:
            raise errors.AdminAuthenticationFailed()
        if self._clock() >= session.expires_at:
            raise errors.AdminAuthenticationFailed("The admin session has expired.")
        admin = self._admins.get(session.admin_id)
        if admin is None or admin.disabled_at is not None:
            raise errors.AdminAuthenticationFailed()
        return admin

    def sign_out(self, token: str, admin: Admin, ip: str) -> None:
        with self._transaction():
            self._admins.revoke_session(hash_secret(token), self._clock())
            self._audit.record(
                AuditEventType.ADMIN_SIGNED_OUT, Actor("admin", admin.admin_id), ip=ip
            )


@dataclass(frozen=True, slots=True)
class SessionView:
    """A token family as an admin sees it: who, which client, which phone, from where, when."""

    family: TokenFamily
    user: User | None
    client: Client | None
    device: MobileDevice | None

    @property
    def reported(self) -> bool:
        """Whether the user reported this login from the phone ("this wasn't me")."""
        return self.family.revoked_reason == RevocationReason.REPORTED_BY_USER


@dataclass(frozen=True, slots=True)
class BrowserSessionView:
    """A browser session as an admin sees it: whose, from which phone, live or not."""

    session: BrowserSession
    active: bool  # not ended and not expired
    device: MobileDevice | None


class Administration:
    """What an admin does: find users and sessions, revoke, disable clients, cancel flows.

    Every action is audited with the admin as actor; each one revokes through Revocations, so
    refresh tokens fail at once and access JWTs are denied within seconds.
    """

    def __init__(
        self,
        tokens: TokenRepository,
        clients: ClientService,
        accounts: AccountService,
        approvals: Approvals,
        revocations: Revocations,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._tokens = tokens
        self._clients = clients
        self._accounts = accounts
        self._approvals = approvals
        self._revocations = revocations
        self._audit = auditor
        self._transaction = transaction

    # --- Looking -----------------------------------------------------------------------
    def find_users(self, text: str, limit: int = 50) -> list[User]:
        return self._accounts.search_users(text.strip(), limit) if text.strip() else []

    def user(self, user_id: str) -> User:
        user = self._accounts.user(user_id)
        if user is None:
            raise errors.NotFound(N_("No such user."))
        return user

    def clients(self) -> list[Client]:
        return self._clients.all()

    def devices(self, user_id: str) -> list[MobileDevice]:
        return self._accounts.devices_of(self.user(user_id).user_id)

    def sessions(self, where: FamilyFilter, limit: int = 100, offset: int = 0) -> list[SessionView]:
        families = self._tokens.families(where, limit, offset)
        users: dict[str, User | None] = {}
        clients: dict[str, Client | None] = {}
        devices: dict[str, MobileDevice | None] = {}
        views = []
        for f in families:
            if f.user_id not in users:
                users[f.user_id] = self._accounts.user(f.user_id)
            if f.client_id not in clients:
                clients[f.client_id] = self._clients.get(f.client_id)
            device_id = f.mobile_device_id
            if device_id and device_id not in devices:
                devices[device_id] = self._accounts.device(device_id)
            views.append(
                SessionView(f, users[f.user_id], clients[f.client_id], devices.get(device_id or ""))
            )
        return views

    def session(self, family_id: str) -> SessionView:
        family = self._tokens.family(family_id)
        if family is None:
            raise errors.NotFound(N_("No such session."))
        return SessionView(
            family,
            self._accounts.user(family.user_id),
            self._clients.get(family.client_id),
            self._accounts.device(family.mobile_device_id) if family.mobile_device_id else None,
        )

    def audit(self, where: AuditFilter) -> list[AuditEvent]:
        return self._audit.query(where)

    def browser_sessions(
        self,
        user_id: str | None = None,
        active_only: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[BrowserSessionView]:
        """Browsers signed in by a QR login (the code flow's sessions), newest first."""
        found = self._accounts.browser_sessions(user_id, active_only, limit, offset)
        devices: dict[str, MobileDevice | None] = {}
        for session in found:
            if session.mobile_device_id not in devices:
                devices[session.mobile_device_id] = self._accounts.device(session.mobile_device_id)
        return [self._browser_view(b, devices[b.mobile_device_id]) for b in found]

    def browser_session(self, session_id: str) -> BrowserSessionView:
        session = self._accounts.browser_session(session_id)
        if session is None:
            raise errors.NotFound(N_("No such browser session."))
        return self._browser_view(session, self._accounts.device(session.mobile_device_id))

    def _browser_view(
        self, session: BrowserSession, device: MobileDevice | None
    ) -> BrowserSessionView:
        return BrowserSessionView(session, session.is_live(self._clock()), device)

    # --- Acting ------------------------------------------------------------------------
    def revoke_session(self, family_id: str, admin: Admin, ip: str) -> bool:
        family = self.session(family_id).family
        return self._revocations.revoke_family(family, RevocationReason.ADMIN, _actor(admin), ip)

    def revoke_user_sessions(self, user_id: str, admin: Admin, ip: str) -> list[TokenFamily]:
        """Revoke every session of the user, and void approvals not yet redeemed.

        One unit of work, the user row updated first: a redemption holding it (FOR SHARE)
        finishes first and its family is revoked here, or waits and sees the revocation.
        """
        self.user(user_id)
        with self._transaction():
            self._accounts.mark_sessions_revoked(user_id)
            self._accounts.end_browser_sessions(_actor(admin), ip, user_id=user_id)
            return self._revocations.revoke_families(
                FamilyFilter(user_id=user_id), RevocationReason.ADMIN, _actor(admin), ip
            )

    def delete_user(
        self, username: str, admin: Admin | Actor, ip: str
    ) -> tuple[User, list[TokenFamily]]:
        """Erase a user (AccountService.delete_user) and revoke every session they hold, in
        one unit of work: nothing they were issued outlives a deletion that committed."""
        with self._transaction():
            user = self._accounts.delete_user(username, _actor(admin))
            revoked = self._revocations.revoke_families(
                FamilyFilter(user_id=user.user_id),
                RevocationReason.USER_DELETED,
                _actor(admin),
                ip,
            )
        return user, revoked

    def set_user_disabled(
        self, username: str, disabled: bool, admin: Admin | Actor, ip: str
    ) -> tuple[User, list[TokenFamily]]:
        """Disable a user and revoke every session (one unit of work), or enable them again."""
        with self._transaction():
            user = self._accounts.set_disabled(username, disabled, _actor(admin))
            revoked = []
            if disabled:
                revoked = self._revocations.revoke_families(
                    FamilyFilter(user_id=user.user_id), RevocationReason.ADMIN, _actor(admin), ip
                )
        return user, revoked

    def revoke_browser_session(self, session_id: str, admin: Admin, ip: str) -> bool:
        """Sign one browser out of this server: prompt=none stops answering with codes for it.

        Tokens a website already got from it stay: they are sessions of their own (revoke
        them with revoke_session).
        """
        session = self.browser_session(session_id).session
        with self._transaction():
            return self._accounts.end_browser_session(session, _actor(admin), ip)

    def revoke_user_browser_sessions(
        self, user_id: str, admin: Admin, ip: str
    ) -> list[BrowserSession]:
        """Sign every browser of the user out of this server (their tokens stay)."""
        self.user(user_id)
        with self._transaction():
            return self._accounts.end_browser_sessions(_actor(admin), ip, user_id=user_id)

    def revoke_client_sessions(self, client_id: str, admin: Admin, ip: str) -> list[TokenFamily]:
        """Revoke every session of the client, and void its approvals not yet redeemed."""
        self._client(client_id)
        with self._transaction():
            self._clients.mark_sessions_revoked(client_id)
            return self._revocations.revoke_families(
                FamilyFilter(client_id=client_id), RevocationReason.ADMIN, _actor(admin), ip
            )

    def revoke_device_sessions(
        self, mobile_device_id: str, admin: Admin, ip: str
    ) -> list[TokenFamily]:
        """Revoke everything approved from this phone, and sign the phone out.

        "This phone" is its device id: every sign-in of the same user on it counts.
        """
        device = self._device(mobile_device_id)
        signed_in = [
            d.id
            for d in self._accounts.devices_of(device.user_id)
            if d.device_id == device.device_id
        ]
        with self._transaction():
            self._sign_out(device, admin, ip)
            return self._revocations.revoke_families(
                FamilyFilter(mobile_device_ids=tuple(signed_in)),
                RevocationReason.ADMIN,
                _actor(admin),
                ip,
            )

    def unbind_device(
        self, user_id: str, mobile_device_id: str, admin: Admin, ip: str
    ) -> MobileDevice:
        """Sign a user's phone out (its device token stops working); its PC sessions are kept."""
        device = self._device(mobile_device_id)
        if device.user_id != user_id:
            raise errors.NotFound(N_("This user has no such mobile device."))
        with self._transaction():
            self._sign_out(device, admin, ip)
        return device

    def rotate_client_secret(
        self, client_id: str, admin: Admin | Actor, ip: str
    ) -> tuple[Client, str]:
        """A confidential client's new secret, shown once; the old one stops working now."""
        with self._transaction():
            client, secret = self._clients.rotate_secret(client_id)
            self._audit.record(
                AuditEventType.CLIENT_SECRET_ROTATED, _actor(admin), ip=ip, client_id=client_id
            )
        return client, secret

    def set_client_enabled(
        self, client_id: str, enabled: bool, admin: Admin | Actor, ip: str
    ) -> Client:
        """Disable (no new device codes, every token it holds revoked) or re-enable a client."""
        self._client(client_id)
        with self._transaction():
            client = self._clients.set_disabled(client_id, not enabled)
            self._audit.record(
                AuditEventType.CLIENT_ENABLED if enabled else AuditEventType.CLIENT_DISABLED,
                _actor(admin),
                ip=ip,
                client_id=client_id,
            )
            if not enabled:
                self._revocations.revoke_families(
                    FamilyFilter(client_id=client_id),
                    RevocationReason.CLIENT_DISABLED,
                    _actor(admin),
                    ip,
                )
        return client

    def set_client_logo(
        self, client_id: str, image: bytes | None, admin: Admin | Actor, ip: str
    ) -> None:
        """Give a client the logo its pages show next to its name, or take it away."""
        with self._transaction():
            self._clients.set_logo(client_id, image)
            self._audit.record(
                AuditEventType.CLIENT_LOGO_SET,
                _actor(admin),
                ip=ip,
                client_id=client_id,
                logo=image is not None,
            )

    def delete_client(self, client_id: str, admin: Admin | Actor, ip: str) -> Client:
        """Delete a client: every token it holds revoked, no new flows; a disabled tombstone
        stays, because its token families name it (a client id is never reused)."""
        self._client(client_id)
        with self._transaction():
            client = self._clients.delete(client_id)
            self._audit.record(
                AuditEventType.CLIENT_DELETED, _actor(admin), ip=ip, client_id=client_id
            )
            self._revocations.revoke_families(
                FamilyFilter(client_id=client_id),
                RevocationReason.CLIENT_DELETED,
                _actor(admin),
                ip,
            )
        return client

    def create_client(
        self, admin: Admin, ip: str, name: str, *, confidential: bool, **registration: Any
    ) -> tuple[Client, str]:
        """Register a client (a website: redirect URIs and the authorization_code grant)."""
        with self._transaction():
            client, secret = self._clients.create(name, confidential=confidential, **registration)
            self._audit.record(
                AuditEventType.CLIENT_CREATED,
                _actor(admin),
                ip=ip,
                client_id=client.client_id,
                **_registration(client),
            )
        return client, secret

    def update_client(self, client_id: str, admin: Admin, ip: str, **changes: Any) -> Client:
        """Change a client's name, scope, redirect URIs or grants."""
        with self._transaction():
            client = self._clients.update(client_id, **changes)
            self._audit.record(
                AuditEventType.CLIENT_UPDATED,
                _actor(admin),
                ip=ip,
                client_id=client.client_id,
                **_registration(client),
            )
        return client

    def cancel_flow(self, user_code: str, admin: Admin, ip: str) -> None:
        self._approvals.cancel(user_code, _actor(admin), ip)

    def _client(self, client_id: str) -> Client:
        return self._clients.existing(client_id)

    def _device(self, mobile_device_id: str) -> MobileDevice:
        device = self._accounts.device(mobile_device_id)
        if device is None:
            raise errors.NotFound(N_("No such mobile device."))
        return device

    def _sign_out(self, device: MobileDevice, admin: Admin, ip: str) -> None:
        """Sign the phone out, and end the browser sessions its approvals started."""
        signed_out = self._accounts.sign_out_everywhere(device.user_id, device.device_id)
        for mobile_device_id in signed_out:
            self._audit.record(
                AuditEventType.DEVICE_UNBOUND,
                _actor(admin),
                ip=ip,
                user_id=device.user_id,
                mobile_device_id=mobile_device_id,
            )
        self._accounts.end_browser_sessions(_actor(admin), ip, mobile_device_ids=tuple(signed_out))


def _actor(admin: Admin | Actor) -> Actor:
    """The audit's actor: a signed-in admin, or the Actor given (the CLI's is SYSTEM)."""
    return admin if isinstance(admin, Actor) else Actor("admin", admin.admin_id)


def _check_admin_password(password: str) -> None:
    if len(password) < 12:
        raise errors.MalformedRequest("An admin password has at least 12 characters.")


def _registration(client: Client) -> dict[str, Any]:
    """What an audit row says about a client's registration (no secret)."""
    return {
        "name": client.name,
        "scope": client.scope,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": [str(g) for g in client.grant_types],
        "number_matching": client.number_matching,
    }
