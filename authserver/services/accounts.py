"""Users and their signed-in phones: the device-bound mobile token of seed 003."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.codes import hash_secret, new_token, secrets_equal
from authserver.domain.models import (
    AccountKind,
    Actor,
    AuditEventType,
    BrowserSession,
    MobileDevice,
    SignInMethod,
    User,
)
from authserver.domain.ports import (
    BrowserSessionRepository,
    MobileDeviceRepository,
    Transaction,
    UserRepository,
)
from authserver.domain.text import N_, printable
from authserver.services.audit import Auditor
from authserver.services.limits import SignInThrottle
from authserver.services.passwords import dummy_hash, hash_password, verify_password


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """What a phone (or a signed-in browser) presents: its device token, from its device id."""

    token: str
    device_id: str
    # The key thumbprint of the DPoP proof sent with the token (RFC 9449 §7), if one was.
    dpop_jkt: str | None = None


@dataclass(frozen=True, slots=True)
class SignIn:
    """A successful password sign-in: the new device token, its device, a device cookie."""

    token: str
    device: MobileDevice
    device_cookie: str  # present it on the next sign-in to this account (services/limits.py)


@dataclass(frozen=True, slots=True)
class SignedInDevice:
    """A phone whose token was just checked, and its user."""

    device: MobileDevice
    user: User


class AccountService:
    """Creates users, signs phones in and out, checks device tokens, and ends the browser
    sessions a phone's approval started (the code flow's) when that approval stops counting."""

    def __init__(
        self,
        config: Config,
        users: UserRepository,
        devices: MobileDeviceRepository,
        browser_sessions: BrowserSessionRepository,
        throttle: SignInThrottle,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._users = users
        self._devices = devices
        self._browser_sessions = browser_sessions
        self._throttle = throttle
        self._audit = auditor
        self._transaction = transaction
        self._clock = clock

    def create_user(
        self,
        username: str,
        password: str,
        display_name: str | None,
        *,
        email: str | None = None,
        email_verified: bool = False,
    ) -> User:
        username = username.strip()
        if not username or len(username) > 150:
            raise errors.MalformedRequest("A username is 1 to 150 characters.")
        _check_password(password)
        email = email.strip() if email else None
        if email is not None and not plausible_email(email):
            raise errors.MalformedRequest("The email address is not valid.")
        if email_verified and email is None:
            raise errors.MalformedRequest("Only an email address can be verified.")
        user = User(
            user_id=str(uuid.uuid4()),
            username=username,
            display_name=(display_name or username).strip(),
            password_hash=hash_password(password, self._config.scrypt_p),
            email=email,
            email_verified=email_verified,
        )
        self._users.add(user, self._clock())
        return user

    def find_user(self, username: str) -> User | None:
        return self._users.by_username(username)

    def set_disabled(self, username: str, disabled: bool, actor: Actor) -> User:
        """Disable a user (no sign-in, no approval, their phones and browsers signed out and
        earlier approvals void) or enable them again. Their token families are the caller's
        to revoke, in the same unit of work (Administration.set_user_disabled)."""
        user = self._users.by_username(username)
        if user is None:
            raise errors.NotFound(N_("No such user."))
        now = self._clock()
        with self._transaction():
            if not self._users.set_disabled(user.user_id, now if disabled else None):
                raise errors.NotFound(N_("No such user."))
            if disabled:
                self._users.mark_sessions_revoked(user.user_id, now)
                self._sign_out_everywhere(user.user_id, actor, now)
            event = AuditEventType.USER_DISABLED if disabled else AuditEventType.USER_ENABLED
            self._audit.record(event, actor, user_id=user.user_id)
        return dataclasses.replace(user, disabled_at=now if disabled else None)

    def delete_user(self, username: str, actor: Actor) -> User:
        """Erase a user: name, password, email and identity links gone, phones and browsers
        signed out; the row stays as a disabled tombstone, because the token families they
        were issued name it. Those families are the caller's to revoke, in the same unit of
        work (Administration.delete_user)."""
        user = self._users.by_username(username)
        if user is None:
            raise errors.NotFound(N_("No such user."))
        now = self._clock()
        with self._transaction():
            if not self._users.erase(user.user_id, now):
                raise errors.NotFound(N_("No such user."))
            self._sign_out_everywhere(user.user_id, actor, now)
            self._audit.record(AuditEventType.USER_DELETED, actor, user_id=user.user_id)
        erased = self._users.get(user.user_id)
        assert erased is not None  # a tombstone is never removed
        return erased

    def _sign_out_everywhere(self, user_id: str, actor: Actor, now: float) -> None:
        for device in self._devices.of_user(user_id):
            if device.revoked_at is None:
                self._devices.revoke(device.id, now)
        self.end_browser_sessions(actor, "", user_id=user_id)

    def set_email(self, username: str, email: str | None, verified: bool, actor: Actor) -> User:
        """Give a user an email address (released with the `email` scope), or take it away."""
        user = self._users.by_username(username)
        if user is None:
            raise errors.NotFound(N_("No such user."))
        if email is not None and not plausible_email(email):
            raise errors.MalformedRequest("That is not an email address.")
        with self._transaction():
            if not self._users.set_email(user.user_id, email, verified and email is not None):
                raise errors.NotFound(N_("No such user."))
            self._audit.record(AuditEventType.USER_EMAIL_SET, actor, user_id=user.user_id)
        return dataclasses.replace(user, email=email, email_verified=verified and email is not None)

    def set_password(self, username: str, password: str, actor: Actor) -> User:
        """Give a user a new password. Their signed-in phones stay signed in (device tokens)."""
        user = self._users.by_username(username)
        if user is None:
            raise errors.NotFound(N_("No such user."))
        if user.password_hash is None:
            raise errors.MalformedRequest(
                "This user signs in through an external identity provider, not a password."
            )
        _check_password(password)
        password_hash = hash_password(password, self._config.scrypt_p)
        with self._transaction():
            if not self._users.set_password(user.user_id, password_hash):
                raise errors.NotFound(N_("No such user."))
            self._audit.record(AuditEventType.USER_PASSWORD_SET, actor, user_id=user.user_id)
        return dataclasses.replace(user, password_hash=password_hash)

    def sign_in(
        self,
        username: str,
        password: str,
        *,
        device_id: str,
        device_name: str,
        platform: str,
        ip: str,
        device_cookie: str = "",
        ttl: int | None = None,
        dpop_jkt: str | None = None,
    ) -> SignIn:
        """Check the password and bind a new device token to `device_id`.

        The token lives `ttl` seconds (default: AUTHSERVER_MOBILE_TOKEN_TTL, a phone's).
        `device_cookie` is what an earlier sign-in to this account handed out, if any
        (services/limits.py: it lifts the limits others can fill).
        """
        now = self._clock()
        check = self._throttle.check(
            AccountKind.USER, username, ip, device_cookie, now, counts=(errors.InvalidCredentials,)
        )
        with check.guard as guard:
            user = self._users.by_username(username)
            # Verify even for unknown users and for users without a password (an identity
            # provider's), so timing does not reveal which usernames exist.
            stored = user.password_hash if user else None
            ok = verify_password(password, stored or dummy_hash(self._config.scrypt_p))
            # A disabled user reads like a wrong password: the answer says nothing more.
            if user is None or stored is None or not ok or user.disabled_at is not None:
                raise errors.InvalidCredentials()
            guard.succeeded()
        with self._transaction():
            token, device = self.bind_device(
                user,
                device_id=device_id,
                device_name=device_name,
                platform=platform,
                ip=ip,
                ttl=ttl,
                method=SignInMethod.PASSWORD,
                dpop_jkt=dpop_jkt,
            )
            cookie = self._throttle.remember(check, AccountKind.USER, username, now)
        return SignIn(token, device, cookie)

    def bind_device(
        self,
        user: User,
        *,
        device_id: str,
        device_name: str,
        platform: str,
        ip: str,
        method: SignInMethod,
        ttl: int | None = None,
        dpop_jkt: str | None = None,
    ) -> tuple[str, MobileDevice]:
        """Bind a new device token of `user` to `device_id`, once the user has been
        authenticated (`method`: how, for the audit trail): the one place phones are signed in.
        With `dpop_jkt` (the sign-in carried a DPoP proof), the token is bound to that key too:
        without the private key, a copied token and device id are worthless (RFC 9449 §7).

        Runs inside the caller's unit of work (its own if there is none), with its audit row.
        """
        now = self._clock()
        token = new_token()
        device = MobileDevice(
            id=str(uuid.uuid4()),
            user_id=user.user_id,
            device_id=device_id,
            # The phone's own claims, shown to the PC (masked status) and to admins.
            name=printable(device_name, 200),
            platform=printable(platform, 50),
            token_hash=hash_secret(token),
            expires_at=now + (ttl or self._config.mobile_token_ttl),
            dpop_jkt=dpop_jkt,
        )
        with self._transaction():
            # One live session per phone: signing in again from the same device id ends the
            # old one.
            self._devices.revoke_device(user.user_id, device_id, now)
            self._devices.add(device, now)
            self._audit.record(
                AuditEventType.DEVICE_SIGNED_IN,
                Actor("user", user.user_id),
                ip=ip,
                user_id=user.user_id,
                mobile_device_id=device.id,
                device_name=device.name,
                platform=device.platform,
                method=method.value,
                key_bound=dpop_jkt is not None,
            )
        return token, device

    def authenticate(self, credentials: DeviceCredentials) -> SignedInDevice:
        """The phone behind a device token, which must be presented from its own device id and,
        if the phone registered a key, with a proof of that key (RFC 9449 §7)."""
        token, device_id = credentials.token, credentials.device_id
        found = self._devices.signed_in(hash_secret(token)) if token else None
        if (
            found is None
            or found.device.revoked_at is not None
            or self._clock() >= found.device.expires_at
            or not secrets_equal(found.device.device_id, device_id)
            or found.user.disabled_at is not None
        ):
            raise errors.InvalidDeviceToken()
        bound = found.device.dpop_jkt
        if bound is not None and not secrets_equal(bound, credentials.dpop_jkt or ""):
            raise errors.InvalidDeviceToken(
                "This device token is bound to the app's key: send it as 'Authorization: DPoP "
                "<device_token>' with a DPoP proof signed by that key."
            )
        if bound is None and credentials.dpop_jkt is not None:
            raise errors.InvalidDeviceToken(
                "This device token is not key-bound: send it as Bearer."
            )
        return SignedInDevice(found.device, found.user)

    def sign_out(self, credentials: DeviceCredentials, ip: str) -> None:
        """End this phone's sign-in: its device token stops working."""
        with self._transaction():
            device = self.authenticate(credentials).device
            self._devices.revoke(device.id, self._clock())
            self._audit.record(
                AuditEventType.DEVICE_SIGNED_OUT,
                Actor("user", device.user_id),
                ip=ip,
                user_id=device.user_id,
                mobile_device_id=device.id,
            )
            # The browser sessions it approved stop counting (flow.approval_withdrawn): say so.
            self.end_browser_sessions(
                Actor("user", device.user_id), ip, mobile_device_ids=(device.id,)
            )

    def mark_sessions_revoked(self, user_id: str) -> None:
        """From now on, approvals this user gave earlier no longer turn into sessions."""
        self._users.mark_sessions_revoked(user_id, self._clock())

    def search_users(self, text: str, limit: int) -> list[User]:
        return self._users.search(text, limit)

    def user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def devices_of(self, user_id: str) -> list[MobileDevice]:
        return self._devices.of_user(user_id)

    def device(self, mobile_device_id: str) -> MobileDevice | None:
        return self._devices.get(mobile_device_id)

    def sign_out_everywhere(self, user_id: str, device_id: str) -> list[str]:
        """End every live session of this user's phone with this device id (an admin unbinds it)."""
        return self._devices.revoke_device(user_id, device_id, self._clock())

    # --- Browser sessions (the code flow's), as their phones and admins end them --------------
    def browser_session(self, session_id: str) -> BrowserSession | None:
        return self._browser_sessions.get(session_id)

    def browser_sessions(
        self, user_id: str | None, active_only: bool, limit: int, offset: int
    ) -> list[BrowserSession]:
        """Browser sessions newest first; `active_only`: not ended and not expired."""
        live_at = self._clock() if active_only else None
        return self._browser_sessions.find(user_id, live_at, limit, offset)

    def end_browser_session(self, session: BrowserSession, actor: Actor, ip: str) -> bool:
        """End one browser session, audited in the caller's unit of work; False if it was over."""
        now = self._clock()
        if not session.is_live(now) or not self._browser_sessions.end(session.id, now):
            return False
        self._audit_revoked(session, actor, ip)
        return True

    def end_browser_sessions(
        self,
        actor: Actor,
        ip: str,
        *,
        user_id: str | None = None,
        mobile_device_ids: tuple[str, ...] = (),
    ) -> list[BrowserSession]:
        """End the live browser sessions of this user, or started by these phones' approvals,
        one audit event each, in the caller's unit of work; those it ended."""
        ended = self._browser_sessions.end_all(
            self._clock(), user_id=user_id, mobile_device_ids=mobile_device_ids
        )
        for session in ended:
            self._audit_revoked(session, actor, ip)
        return ended

    def _audit_revoked(self, session: BrowserSession, actor: Actor, ip: str) -> None:
        self._audit.record(
            AuditEventType.BROWSER_SESSION_REVOKED,
            actor,
            ip=ip,
            user_id=session.user_id,
            mobile_device_id=session.mobile_device_id,
            browser_session_id=session.id,
        )


def plausible_email(email: str) -> bool:
    """local@domain within RFC 5321's lengths, printable, no spaces: what an operator meant to
    type. Whether it receives mail is what email_verified says, not this check."""
    local, at, domain = email.rpartition("@")
    return (
        bool(at and local and domain)
        and len(email) <= 320
        and len(local) <= 64
        and "." in domain.strip(".")
        and email.isprintable()
        and not any(ch.isspace() for ch in email)
    )


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise errors.MalformedRequest("A password has at least 8 characters.")
