"""The token exchange grant (RFC 8693): the app's own sign-in becomes a device token here.

A team that already signs its users in to its mobile app with its own identity provider lets
the app exchange the access or ID token it holds, plus the phone's description, for this
server's device-bound mobile token, which then scans and approves QR logins like one from a
password sign-in. The subject (`iss` + `sub`) is linked to a local user, created on its first
exchange, with no password.
"""

from __future__ import annotations

import enum
import secrets
import uuid
from collections.abc import Callable, Iterator

from authserver.config import Config, PhoneKeys
from authserver.domain import errors
from authserver.domain.models import (
    Actor,
    AuditEventType,
    ClientKind,
    ExternalIdentity,
    SignInMethod,
    User,
)
from authserver.domain.ports import ExternalIdentityRepository, Transaction
from authserver.domain.text import printable
from authserver.services.accounts import AccountService, plausible_email
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.external_tokens import ExternalSubject, ExternalTokenVerifier
from authserver.services.token_endpoint import ExchangedToken, TokenRequest

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1


class TokenType(enum.StrEnum):
    """Token type identifiers (RFC 8693 §3) this grant accepts or issues."""

    ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
    ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
    JWT = "urn:ietf:params:oauth:token-type:jwt"
    # What it issues: a device token, which only the mobile API (/mobile/v1) accepts. Not
    # `access_token`: a resource server must never take it for one of this server's RFC 9068
    # access tokens, nor a client expect it to work at one.
    MOBILE_DEVICE_TOKEN = "urn:authserver:token-type:mobile-device-token"


SUBJECT_TOKEN_TYPES = (TokenType.ACCESS_TOKEN, TokenType.ID_TOKEN, TokenType.JWT)

# The phone's description, as POST /mobile/v1/sessions takes it: parameter, longest value.
DEVICE_PARAMETERS = {"device_id": 200, "device_name": 200, "device_platform": 50}


class TokenExchangeGrant:
    """Exchanges a trusted identity provider's JWT for a device token (RFC 8693 §2).

    Only clients registered as the mobile app (ClientKind.MOBILE_APP) may use it: a PC client
    that got hold of a user's token must not make itself a phone of that user.
    """

    grant_type = TOKEN_EXCHANGE_GRANT

    def __init__(
        self,
        config: Config,
        clients: ClientService,
        verifier: ExternalTokenVerifier,
        identities: ExternalIdentityRepository,
        accounts: AccountService,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._clients = clients
        self._verifier = verifier
        self._identities = identities
        self._accounts = accounts
        self._audit = auditor
        self._transaction = transaction
        self._clock = clock

    def token(self, request: TokenRequest) -> ExchangedToken:
        """The token endpoint's token-exchange grant (the grant table's entry)."""
        client = self._clients.authenticate(
            request.client_id, request.client_secret, kind=ClientKind.MOBILE_APP
        )
        subject_token = request.required("subject_token")
        subject_token_type = request.required("subject_token_type")
        if subject_token_type not in SUBJECT_TOKEN_TYPES:
            # RFC 8693 §2.2.2: a subject token type it cannot process is invalid_request.
            raise errors.MalformedRequest(
                "subject_token_type must be one of " + ", ".join(SUBJECT_TOKEN_TYPES) + "."
            )
        requested = request.params.get("requested_token_type")
        if requested and requested != TokenType.MOBILE_DEVICE_TOKEN:
            raise errors.MalformedRequest(
                f"Only {TokenType.MOBILE_DEVICE_TOKEN} can be requested here."
            )
        if request.params.get("actor_token") or request.params.get("actor_token_type"):
            raise errors.MalformedRequest("Delegation (actor_token) is not supported.")
        for target in ("resource", "audience"):  # RFC 8693 §2.1: the token's intended use
            value = request.params.get(target)
            if value and value != self._config.issuer:
                raise errors.InvalidTarget(f"A device token is only for {self._config.issuer}.")
        if request.params.get("scope"):
            raise errors.InvalidScope("A device token has no scope.")
        device = {
            name: _device_parameter(request, name, n) for name, n in DEVICE_PARAMETERS.items()
        }
        if request.dpop_jkt is None and self._config.phone_keys == PhoneKeys.REQUIRED:
            raise errors.InvalidDpopProof("Send a DPoP proof of the app's key with the exchange.")
        # The identity provider is asked (for keys) before any unit of work opens: no database
        # connection waits on another server.
        subject = self._verifier.verify(
            subject_token, id_token=subject_token_type == TokenType.ID_TOKEN
        )
        with self._transaction():
            user, created = self._user_of(subject)
            token, bound = self._accounts.bind_device(
                user,
                device_id=device["device_id"],
                device_name=device["device_name"],
                platform=device["device_platform"],
                ip=request.ip,
                method=SignInMethod.TOKEN_EXCHANGE,
                dpop_jkt=request.dpop_jkt,  # the app's key, proved by this request (RFC 9449)
            )
            self._audit.record(
                AuditEventType.TOKEN_EXCHANGED,
                Actor("user", user.user_id),
                ip=request.ip,
                user_id=user.user_id,
                client_id=client.client_id,
                mobile_device_id=bound.id,
                issuer=subject.issuer,
                subject_token_type=subject_token_type,
                new_user=created,
            )
        return ExchangedToken(
            access_token=token,
            issued_token_type=TokenType.MOBILE_DEVICE_TOKEN,
            expires_in=self._config.mobile_token_ttl,
            user_id=user.user_id,
            mobile_device_id=bound.id,
            token_type="DPoP" if bound.dpop_jkt else "Bearer",
        )

    def _user_of(self, subject: ExternalSubject) -> tuple[User, bool]:
        """The subject's local user, created and linked on its first exchange: (user, created).

        Inside the caller's unit of work. Concurrent first exchanges of one subject make one
        user: the link's primary key lets one insert win, and the loser reads its link.
        """
        profile = _profile(subject)
        user = self._identities.user_of(subject.issuer, subject.subject)
        if user is not None and user.disabled_at is not None:
            raise errors.InvalidGrant("This account is disabled.")
        if user is not None:
            display_name, email, email_verified = profile
            if (user.display_name, user.email, user.email_verified) != profile:
                # The identity provider is where its users' names and emails are kept.
                self._identities.update_profile(user.user_id, display_name, email, email_verified)
            return user, False
        now = self._clock()
        for username in _usernames(subject):
            new = User(
                user_id=str(uuid.uuid4()),
                username=username,
                display_name=profile[0],
                password_hash=None,  # never signs in with a password here
                email=profile[1],
                email_verified=profile[2],
            )
            identity = ExternalIdentity(subject.issuer, subject.subject, new.user_id)
            if self._identities.link_new_user(identity, new, now):
                self._audit.record(
                    AuditEventType.IDENTITY_LINKED,
                    Actor("user", new.user_id),
                    user_id=new.user_id,
                    issuer=subject.issuer,
                    subject=subject.subject,
                    username=username,
                )
                return new, True
            user = self._identities.user_of(subject.issuer, subject.subject)
            if user is not None:  # a concurrent first exchange linked it: use that user
                return user, False
            # Otherwise the username was taken: try the next one.
        raise errors.TemporarilyUnavailable(1, "The user could not be created; try again.")


def _device_parameter(request: TokenRequest, name: str, max_len: int) -> str:
    value = request.required(name)
    if len(value) > max_len:
        raise errors.MalformedRequest(f"The parameter {name!r} is too long.")
    return value


def _profile(subject: ExternalSubject) -> tuple[str, str | None, bool]:
    """(display name, email, email_verified) from the standard claims (OIDC Core §5.1)."""
    claims = subject.claims
    email = claims.get("email")
    email = printable(email, 320) if isinstance(email, str) else None
    if email is not None and not plausible_email(email):
        email = None
    names = (claims.get("name"), claims.get("preferred_username"), email, subject.subject)
    display_name = next(
        printable(n, 200) for n in names if isinstance(n, str) and printable(n, 200)
    )
    verified = email is not None and claims.get("email_verified") is True
    return display_name, email, verified


def _usernames(subject: ExternalSubject) -> Iterator[str]:
    """Usernames to try for a new user: the provider's preferred one, then it with a random
    suffix, then one that cannot be taken. Never a key to the account: that is iss + sub."""
    claims = subject.claims
    preferred = claims.get("preferred_username") or claims.get("email") or subject.subject
    base = printable(preferred, 140) if isinstance(preferred, str) else ""
    if base:
        yield base
        yield f"{base}-{secrets.token_hex(3)}"
    yield f"user-{uuid.uuid4().hex}"
