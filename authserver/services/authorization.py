"""The authorization endpoint of the code flow (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636), its
QR sign-in step, the browser session it leaves behind, and RP-initiated logout.

The sign-in step is the QR login itself: /authorize starts a device-grant flow bound with
AUTHORIZE_BINDING (so no token poll can redeem it), the phone scans and approves it as any other
(same approval screen, confirm token, audit trail), and the browser's completion claims and
redeems it through DeviceGrant.redeem_claimed (the same lease and once-only rules as a token
poll) into a browser session and an authorization code.

Errors before the client and its redirect URI are known to be good are shown to the person
(BadAuthorizationRequest): RFC 6749 §4.1.2.1 forbids redirecting them. Every later error goes
to the redirect URI with `state` (and `iss`, RFC 9207).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.authorization import (
    AUTHORIZE_BINDING,
    CODE_CHALLENGE_METHOD,
    RESPONSE_TYPE_CODE,
    Prompt,
    is_registered,
    parse_max_age,
    parse_prompt,
    valid_challenge,
    with_params,
)
from authserver.domain.codes import hash_secret, new_token, secrets_equal
from authserver.domain.flow import Flow, PollOutcome, approval_withdrawn
from authserver.domain.models import (
    Actor,
    ApprovalFacts,
    AuditEventType,
    Authorization,
    BrowserSession,
    Client,
    GrantType,
    RevocationReason,
    TokenFamily,
)
from authserver.domain.ports import (
    AuthorizationCodeRepository,
    BrowserSessionRepository,
    MobileDeviceRepository,
    TokenRepository,
    Transaction,
)
from authserver.domain.text import N_, plain_text
from authserver.oauth.errors import redirect_error
from authserver.services.audit import Auditor, flow_ref
from authserver.services.clients import ClientService
from authserver.services.device_grant import DeviceAuthorization, DeviceGrant
from authserver.services.id_tokens import IdTokenMinter
from authserver.services.revocation import Revocations
from authserver.services.status_channel import StatusChannel, StatusView

MAX_STATE = 1000  # what authorization_codes.state holds
MAX_NONCE = 500


class BadAuthorizationRequest(errors.DomainError):
    """An authorization request that must not be redirected (RFC 6749 §4.1.2.1): unknown or
    disabled client, missing or unregistered redirect URI. Shown as a page, in the reader's
    language: `title` and `template` are marked N_ for the pages' catalogue, and `values` fill
    the template's %(name)s placeholders."""

    def __init__(self, title: str, template: str, status: int = 400, **values: str) -> None:
        super().__init__(template % values if values else template)
        self.title = title
        self.template = template
        self.values = values
        self.status = status


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the browser to a registered URI; `session_secret`: a new browser session's cookie."""

    url: str
    session_secret: str | None = None


@dataclass(frozen=True, slots=True)
class SignIn:
    """Show the QR sign-in page for an accepted request."""

    authorization_id: str
    device_code: str  # goes into the browser's HttpOnly cookie only
    started: DeviceAuthorization
    client: Client
    scope: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class SignOut:
    """What /logout does: end this browser's session (if `confirmed`), then go `redirect`."""

    redirect: str | None  # a registered post-logout URI with `state`, or None: a page
    needs_confirmation: bool  # no valid id_token_hint for this browser's user (OIDC §2)
    client_name: str | None


@dataclass(frozen=True, slots=True)
class _Request:
    """A validated authorization request."""

    client: Client
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompts: frozenset[Prompt]
    max_age: int | None


class Authorizations:
    """The authorization endpoint, its QR sign-in and completion, browser sessions, logout."""

    def __init__(
        self,
        config: Config,
        clients: ClientService,
        device_grant: DeviceGrant,
        status_channel: StatusChannel,
        codes: AuthorizationCodeRepository,
        sessions: BrowserSessionRepository,
        devices: MobileDeviceRepository,
        tokens: TokenRepository,
        id_tokens: IdTokenMinter,
        revocations: Revocations,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._clients = clients
        self._device_grant = device_grant
        self._status = status_channel
        self._codes = codes
        self._sessions = sessions
        self._devices = devices
        self._tokens = tokens
        self._id_tokens = id_tokens
        self._revocations = revocations
        self._audit = auditor
        self._transaction = transaction
        self._clock = clock

    # --- The authorization endpoint (OIDC Core §3.1.2.1-3.1.2.6) --------------------------
    def authorize(
        self,
        params: Mapping[str, str],
        repeated: frozenset[str],
        session_secret: str | None,
        ip: str,
        user_agent: str,
    ) -> Redirect | SignIn:
        """Answer one authorization request: a redirect (a code from the browser's session, or
        an error), or the QR sign-in page. `repeated` names parameters sent more than once."""
        client, redirect_uri = self._client_and_redirect(params, repeated)
        state = params.get("state") or None
        try:
            request = self._validated(client, redirect_uri, params, repeated)
            session = self._live_session(session_secret, client)
            fresh_login = (
                Prompt.LOGIN in request.prompts
                or session is None
                or (
                    request.max_age is not None
                    and self._clock() - session.auth_time > request.max_age
                )
            )
            if fresh_login and Prompt.NONE in request.prompts:
                # OIDC Core §3.1.2.6: no interaction allowed, and none would do.
                raise errors.LoginRequired()
            if not fresh_login:
                assert session is not None
                return Redirect(self._code_from_session(request, session, ip))
            return self._sign_in(request, ip, user_agent)
        except errors.DomainError as error:
            if isinstance(error, BadAuthorizationRequest):
                raise
            return Redirect(self.error_redirect(redirect_uri, state, error))

    def _client_and_redirect(
        self, params: Mapping[str, str], repeated: frozenset[str]
    ) -> tuple[Client, str]:
        """The client and its exact redirect URI, or a page: never redirect to either unchecked."""
        client_id = params.get("client_id", "")
        client = (
            self._clients.get(client_id)
            if client_id and "client_id" not in repeated and plain_text(client_id)
            else None
        )
        if client is None:
            raise BadAuthorizationRequest(
                N_("Unknown application"),
                N_("The link that brought you here names no known application."),
            )
        if client.disabled_at is not None:
            raise BadAuthorizationRequest(
                N_("Application disabled"), N_("This application is disabled."), 403
            )
        redirect_uri = params.get("redirect_uri", "")
        # RFC 9700 §4.1.3: exact string match; OIDC Core §3.1.2.1 requires the parameter.
        if "redirect_uri" in repeated or not is_registered(redirect_uri, client.redirect_uris):
            raise BadAuthorizationRequest(
                N_("Unregistered redirect address"),
                N_(
                    "%(client)s asked to send you back to an address it has not registered, "
                    "so this server will not send you there. Tell the website's operator."
                ),
                client=client.name,
            )
        return client, redirect_uri

    def _validated(
        self,
        client: Client,
        redirect_uri: str,
        params: Mapping[str, str],
        repeated: frozenset[str],
    ) -> _Request:
        """The request's checks after the redirect URI (RFC 6749 §4.1.2.1 errors)."""
        if repeated:
            # RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
            raise errors.MalformedRequest(f"Repeated parameter: {sorted(repeated)[0]}.")
        if params.get("response_type") != RESPONSE_TYPE_CODE:
            raise errors.UnsupportedResponseType()
        if params.get("response_mode", "query") != "query":
            raise errors.MalformedRequest("Only response_mode=query is supported.")
        if "request" in params or "request_uri" in params:
            raise errors.MalformedRequest("Request objects are not supported.")
        if not client.allows(GrantType.AUTHORIZATION_CODE):
            raise errors.UnauthorizedClient("This client may not use the authorization code flow.")
        scope = params.get("scope")
        if scope is not None and not plain_text(scope, 500):
            raise errors.InvalidScope()
        granted = self._clients.resolve_scope(client, scope)
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method") or None
        if challenge is None:
            if client.secret_hash is None:
                # RFC 9700 §2.1.1: a public client must use PKCE; OAuth 2.1 §4.1.1.
                raise errors.MalformedRequest("code_challenge (PKCE, S256) is required.")
            if method is not None:
                raise errors.MalformedRequest("code_challenge_method without a code_challenge.")
        else:
            if method != CODE_CHALLENGE_METHOD:
                # RFC 7636 §4.3 defaults to plain, which RFC 9700 §2.1.1 rules out.
                raise errors.MalformedRequest("code_challenge_method must be S256.")
            if not valid_challenge(challenge):
                raise errors.MalformedRequest("code_challenge is not an S256 challenge.")
        state = params.get("state") or None
        if state is not None and len(state) > MAX_STATE:
            raise errors.MalformedRequest("state is too long.")
        nonce = params.get("nonce") or None
        if nonce is not None and (len(nonce) > MAX_NONCE or not plain_text(nonce, MAX_NONCE)):
            raise errors.MalformedRequest("nonce is too long or not plain text.")
        return _Request(
            client=client,
            redirect_uri=redirect_uri,
            scope=granted,
            state=state,
            nonce=nonce,
            code_challenge=challenge,
            prompts=parse_prompt(params.get("prompt")),
            max_age=parse_max_age(params.get("max_age")),
        )

    def error_redirect(
        self, redirect_uri: str, state: str | None, error: errors.DomainError
    ) -> str:
        """RFC 6749 §4.1.2.1 error response at a checked, registered redirect URI."""
        code, description = redirect_error(error)
        return with_params(
            redirect_uri,
            {
                "error": code,
                "error_description": description,
                "state": state,
                "iss": self._config.issuer,  # RFC 9207 §2
            },
        )

    def _success_redirect(self, authorization: Authorization, code: str) -> str:
        """RFC 6749 §4.1.2 with RFC 9207's iss."""
        return with_params(
            authorization.redirect_uri,
            {"code": code, "state": authorization.state, "iss": self._config.issuer},
        )

    # --- Browser sessions -----------------------------------------------------------------
    def _live_session(self, secret: str | None, client: Client) -> BrowserSession | None:
        """This browser's session if it still stands: not ended or expired, and the approval
        that started it not withdrawn since (phone signed out, sessions revoked)."""
        if not secret:
            return None
        session = self._sessions.by_secret_hash(hash_secret(secret))
        now = self._clock()
        if session is None or not session.is_live(now):
            return None
        with self._transaction():
            facts = self._devices.lock_for_redemption(session.mobile_device_id, client.client_id)
        if approval_withdrawn(facts, session.user_id, session.created_at, now) is not None:
            return None
        return session

    def session_of(self, secret: str | None) -> BrowserSession | None:
        """The live session of a browser's cookie, if any (for logout)."""
        if not secret:
            return None
        session = self._sessions.by_secret_hash(hash_secret(secret))
        return session if session is not None and session.is_live(self._clock()) else None

    def _code_from_session(self, request: _Request, session: BrowserSession, ip: str) -> str:
        """A code at once: this browser is signed in (prompt=none, or a second website)."""
        now = self._clock()
        code = new_token()
        authorization = Authorization(
            id=str(uuid.uuid4()),
            client_id=request.client.client_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            state=request.state,
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            created_at=now,
            expires_at=now + self._config.authorization_code_ttl,
            code_hash=hash_secret(code),
            user_id=session.user_id,
            mobile_device_id=session.mobile_device_id,
            session_id=session.id,
            auth_time=session.auth_time,
            amr=session.amr,
        )
        with self._transaction():
            self._codes.add(authorization)
            self._audit_code_issued(authorization, ip)
        return self._success_redirect(authorization, code)

    def _audit_code_issued(self, authorization: Authorization, ip: str) -> None:
        self._audit.record(
            AuditEventType.AUTHORIZATION_CODE_ISSUED,
            Actor("client", authorization.client_id),
            ip=ip,
            user_id=authorization.user_id,
            client_id=authorization.client_id,
            mobile_device_id=authorization.mobile_device_id,
            flow_ref=flow_ref(authorization.flow_hash) if authorization.flow_hash else None,
            authorization_id=authorization.id,
            browser_session_id=authorization.session_id,
            scope=authorization.scope,
        )

    # --- The QR sign-in -------------------------------------------------------------------
    def _sign_in(self, request: _Request, ip: str, user_agent: str) -> SignIn:
        """Store the request and start its QR login in one unit of work."""
        authorization_id = uuid.uuid4().hex

        def record(flow: Flow) -> None:
            self._codes.add(
                Authorization(
                    id=authorization_id,
                    client_id=request.client.client_id,
                    redirect_uri=request.redirect_uri,
                    scope=request.scope,
                    state=request.state,
                    nonce=request.nonce,
                    code_challenge=request.code_challenge,
                    created_at=flow.created_at,
                    expires_at=flow.expires_at,
                    flow_hash=flow.device_code_hash,
                )
            )

        started = self._device_grant.begin(
            request.client,
            request.scope,
            ip,
            user_agent,
            AUTHORIZE_BINDING,
            record,
            # A client that requires number matching requires it of its website sign-in too.
            number_matching=request.client.number_matching,
        )
        return SignIn(
            authorization_id,
            started.device_code,
            started,
            request.client,
            request.scope,
            request.redirect_uri,
        )

    def _pending(self, authorization_id: str, device_code: str) -> Authorization:
        """The request this browser started: its cookie holds the flow's device code."""
        authorization = self._codes.get(authorization_id) if authorization_id else None
        if (
            authorization is None
            or authorization.flow_hash is None
            or not device_code
            or not secrets_equal(authorization.flow_hash, hash_secret(device_code))
        ):
            raise BadAuthorizationRequest(
                N_("This sign-in is over"),
                N_(
                    "This sign-in is not open in this browser any more. Go back to the website "
                    "and sign in again."
                ),
            )
        return authorization

    def status(
        self, authorization_id: str, device_code: str, known: str | None, wait: float, ip: str
    ) -> StatusView:
        """The sign-in page's status channel: the same long-poll as the PC's."""
        authorization = self._pending(authorization_id, device_code)
        assert authorization.flow_hash is not None
        return self._status.status_bound(
            authorization.flow_hash, authorization.client_id, AUTHORIZE_BINDING, known, wait, ip
        )

    def complete(self, authorization_id: str, device_code: str, ip: str) -> Redirect:
        """The browser comes back after the phone decided: redeem the QR login once, into a
        browser session and a code, and redirect; or redirect access_denied."""
        authorization = self._pending(authorization_id, device_code)
        flow_hash = authorization.flow_hash
        assert flow_hash is not None
        result = self._device_grant.claim(flow_hash, authorization.client_id, AUTHORIZE_BINDING)
        outcome, flow = result.outcome, result.flow
        if outcome is PollOutcome.REDEEM and flow is not None:
            try:
                code, secret = self._redeem(authorization, flow, ip)
            except errors.AccessDenied as error:
                return Redirect(
                    self.error_redirect(authorization.redirect_uri, authorization.state, error)
                )
            except errors.FlowExpired:
                raise self._over() from None
            return Redirect(self._success_redirect(authorization, code), secret)
        if outcome is PollOutcome.DENIED:
            # RFC 6749 §4.1.2.1: the resource owner denied the request.
            return Redirect(
                self.error_redirect(
                    authorization.redirect_uri, authorization.state, errors.AccessDenied()
                )
            )
        if outcome in (PollOutcome.PENDING, PollOutcome.SLOW_DOWN, PollOutcome.CLAIMED):
            raise BadAuthorizationRequest(
                N_("Not approved yet"),
                N_("Approve the sign-in on your phone first, then go back and continue."),
                409,
            )
        raise self._over()

    @staticmethod
    def _over() -> BadAuthorizationRequest:
        return BadAuthorizationRequest(
            N_("This sign-in is over"),
            N_("It expired or was already completed. Go back to the website and sign in again."),
        )

    def _redeem(self, authorization: Authorization, flow: Flow, ip: str) -> tuple[str, str]:
        """The claimed flow becomes a browser session and this request's code, once."""
        code, secret = new_token(), new_token()
        caller = Actor("client", flow.client_id)

        def issue(family: TokenFamily, facts: ApprovalFacts, now: float) -> tuple[str, str] | None:
            authenticated = DeviceGrant.authenticated(family, facts, flow)
            assert authenticated.auth_time is not None
            session = BrowserSession(
                id=str(uuid.uuid4()),
                secret_hash=hash_secret(secret),
                user_id=authenticated.user_id,
                mobile_device_id=facts.device.id,
                auth_time=authenticated.auth_time,
                amr=authenticated.amr,
                created_at=now,
                expires_at=now + self._config.browser_session_ttl,
            )
            issued = dataclasses.replace(
                authorization,
                code_hash=hash_secret(code),
                expires_at=now + self._config.authorization_code_ttl,
                user_id=session.user_id,
                mobile_device_id=session.mobile_device_id,
                session_id=session.id,
                auth_time=session.auth_time,
                amr=session.amr,
            )
            self._sessions.add(session)
            if not self._codes.set_code(issued):
                return None  # an earlier claim issued this request's code: void it
            self._audit.record(
                AuditEventType.BROWSER_SESSION_STARTED,
                caller,
                ip=ip,
                user_id=session.user_id,
                client_id=flow.client_id,
                mobile_device_id=session.mobile_device_id,
                flow_ref=flow_ref(flow.device_code_hash),
                browser_session_id=session.id,
                amr=" ".join(session.amr),
            )
            self._audit_code_issued(issued, ip)
            return code, secret

        def void() -> None:
            current = self._codes.get(authorization.id)
            self._audit.record(
                AuditEventType.FLOW_VOIDED,
                caller,
                ip=ip,
                user_id=flow.user_id,
                client_id=flow.client_id,
                family_id=current.family_id if current else None,
                flow_ref=flow_ref(flow.device_code_hash),
            )
            if current is None:
                return
            # Nobody knows whether the browser got the earlier code: it may no longer be
            # exchanged, and what an exchange issued is revoked.
            self._codes.mark_used(current.id, self._clock(), current.family_id)
            family = self._tokens.family(current.family_id) if current.family_id else None
            if family is not None:
                self._revocations.revoke_family(
                    family, RevocationReason.REDEMPTION_VOIDED, caller, ip
                )

        return self._device_grant.redeem_claimed(flow, ip, issue, void)

    # --- RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) ----------------------
    def logout(
        self,
        params: Mapping[str, str],
        session_secret: str | None,
        confirmed: bool,
        ip: str,
    ) -> SignOut:
        """End this browser's session, then go to a registered post-logout URI, if any.

        §2: with an id_token_hint of this server naming the session's user, the logout is
        what the RP asked for; without one, the person confirms first (`confirmed`), so a
        foreign page cannot sign anyone out by a link.
        """
        hint = params.get("id_token_hint") or None
        claims = self._id_tokens.hint_claims(hint) if hint else None
        if hint and claims is None:
            raise BadAuthorizationRequest(
                N_("Cannot sign out from here"),
                N_("The id_token_hint is not a token of this server."),
            )
        client_id = params.get("client_id") or (str(claims["aud"]) if claims else None)
        if claims is not None and client_id != claims["aud"]:
            raise BadAuthorizationRequest(
                N_("Cannot sign out from here"), N_("client_id and the id_token_hint disagree.")
            )
        client = self._clients.get(client_id) if client_id and plain_text(client_id) else None
        target = params.get("post_logout_redirect_uri") or None
        redirect = None
        if target is not None:
            # §3.1: only a URI registered for the client; else no redirect at all.
            if client is None or not is_registered(target, client.post_logout_redirect_uris):
                raise BadAuthorizationRequest(
                    N_("Unregistered address"),
                    N_("The website asked to send you to an address it has not registered."),
                )
            redirect = with_params(target, {"state": params.get("state") or None})
        session = self.session_of(session_secret)
        hinted = claims is not None and session is not None and claims["sub"] == session.user_id
        if session is not None and not hinted and not confirmed:
            return SignOut(redirect, True, client.name if client else None)
        if session is not None:
            with self._transaction():
                if self._sessions.end(session.id, self._clock()):
                    self._audit.record(
                        AuditEventType.BROWSER_SESSION_ENDED,
                        Actor("user", session.user_id),
                        ip=ip,
                        user_id=session.user_id,
                        client_id=client.client_id if client else None,
                        browser_session_id=session.id,
                    )
        return SignOut(redirect, False, client.name if client else None)
