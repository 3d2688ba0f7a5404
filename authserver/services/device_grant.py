"""The device grant (RFC 8628): device authorization requests and the device_code token grant."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

from authserver.config import Config
from authserver.domain import errors
from authserver.domain import flow as flows
from authserver.domain.codes import (
    hash_secret,
    new_device_code,
    new_match_number,
    new_user_code,
    normalize_user_code,
    presented_secret_hash,
)
from authserver.domain.flow import (
    DEVICE_CODE_GRANT,
    ClaimSettlement,
    Flow,
    FlowState,
    PollOutcome,
    PollResult,
)
from authserver.domain.limits import Limit, retry_after
from authserver.domain.models import (
    Actor,
    ApprovalFacts,
    AuditEventType,
    Client,
    GrantType,
    RevocationReason,
    TokenFamily,
)
from authserver.domain.oidc import approval_authentication, context_of, wants_id_token
from authserver.domain.ports import (
    FlowStore,
    MobileDeviceRepository,
    RateLimiter,
    TokenRepository,
    Transaction,
)
from authserver.domain.text import printable
from authserver.services.audit import Auditor, flow_ref
from authserver.services.clients import ClientService
from authserver.services.context import place_of
from authserver.services.id_tokens import IdTokenMinter
from authserver.services.revocation import Revocations
from authserver.services.token_endpoint import TokenRequest
from authserver.services.tokens import IssuedTokens, TokenMinter

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """The RFC 8628 §3.2 response, before rendering."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int
    qr_png: str  # images of verification_uri_complete, served by this server
    qr_svg: str

    @property
    def message(self) -> str:
        """One line telling the user what to do (an RFC 8628 §3.2 extension parameter, which
        Microsoft's clients print as it is, without a QR code: so it names the code)."""
        return (
            f"To sign in, enter the code {self.user_code} in your phone's app, or open "
            f"{self.verification_uri} in a browser and enter it there."
        )


def verification_uri_complete(config: Config, user_code: str) -> str:
    """RFC 8628 §3.3.1: the verification URI with the user code, which the QR code encodes."""
    return f"{config.verification_uri}?user_code={quote(user_code)}"


class DeviceGrant:
    """RFC 8628: starts flows (§3.1-3.2) and answers the PC's token polls (§3.4-3.5)."""

    grant_type = DEVICE_CODE_GRANT

    def __init__(
        self,
        config: Config,
        store: FlowStore,
        clients: ClientService,
        tokens: TokenRepository,
        devices: MobileDeviceRepository,
        minter: TokenMinter,
        id_tokens: IdTokenMinter,
        revocations: Revocations,
        limiter: RateLimiter,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._store = store
        self._clients = clients
        self._tokens = tokens
        self._devices = devices
        self._transaction = transaction
        self._minter = minter
        self._id_tokens = id_tokens
        self._revocations = revocations
        self._limiter = limiter
        self._audit = auditor
        self._clock = clock

    # --- RFC 8628 §3.1-3.2 ----------------------------------------------------------------
    def start(
        self,
        client_id: str,
        client_secret: str | None,
        scope: str | None,
        ip: str,
        user_agent: str,
        dpop_jkt: str | None = None,
        number_matching: bool = False,
        rotating_qr: bool = False,
    ) -> DeviceAuthorization:
        """A new flow with a device code and a user code; with `dpop_jkt` (the request carried
        a DPoP proof), only a poll proving that key can redeem the device code. Number matching
        when the client requires it, or when the request asked for it (a client that shows
        the status channel's number)."""
        client = self._clients.authenticate(client_id, client_secret)
        if not client.allows(GrantType.DEVICE_CODE):
            raise errors.UnauthorizedClient("This client may not use the device flow.")
        granted = self._clients.resolve_scope(client, scope)
        return self.begin(
            client,
            granted,
            ip,
            user_agent,
            client.secret_hash or "",
            dpop_jkt=dpop_jkt,
            number_matching=number_matching or client.number_matching,
            rotating_qr=rotating_qr,
        )

    def begin(
        self,
        client: Client,
        granted: str,
        ip: str,
        user_agent: str,
        binding: str,
        record: Callable[[Flow], None] | None = None,
        *,
        dpop_jkt: str | None = None,
        number_matching: bool = False,
        rotating_qr: bool = False,
    ) -> DeviceAuthorization:
        """Start a flow for an authenticated client: `binding` is what its token polls must
        present (see presented_secret_hash), or AUTHORIZE_BINDING for the code flow's sign-in,
        which only the server redeems (services/authorization.py); `record` stores what goes
        with the flow in the same unit of work as its audit row."""
        now = self._clock()
        # Every flow costs store memory until it expires: bound how fast one caller makes them.
        limit = Limit(
            f"da:{client.client_id}:{ip}", self._config.device_authorizations_per_minute, 60
        )
        wait = self._limiter.attempt((limit,), now)
        if wait:
            raise errors.RateLimited(retry_after(wait))
        for _ in range(8):  # 20^8 codes: a collision with a live flow is rare, retry it
            device_code, user_code = new_device_code(), new_user_code()
            flow = Flow(
                device_code_hash=hash_secret(device_code),
                user_code_hash=hash_secret(normalize_user_code(user_code) or ""),
                client_id=client.client_id,
                client_secret_hash=binding,
                scope=granted,
                requester_ip=ip,
                requester_user_agent=printable(user_agent, 200),
                created_at=now,
                expires_at=now + self._config.device_code_ttl,
                interval=self._config.poll_interval,
                dpop_jkt=dpop_jkt,
                match_number=new_match_number() if number_matching else None,
                rotating_qr=rotating_qr,
            )
            if self._store.create(flow):
                with self._transaction():
                    self._audit.record(
                        AuditEventType.FLOW_CREATED,
                        Actor("client", client.client_id),
                        ip=ip,
                        client_id=client.client_id,
                        flow_ref=flow_ref(flow.device_code_hash),
                        scope=granted,
                        user_agent=flow.requester_user_agent,
                        expires_in=self._config.device_code_ttl,
                    )
                    if record is not None:
                        record(flow)
                return DeviceAuthorization(
                    device_code=device_code,
                    user_code=user_code,
                    verification_uri=self._config.verification_uri,
                    verification_uri_complete=verification_uri_complete(self._config, user_code),
                    expires_in=self._config.device_code_ttl,
                    interval=self._config.poll_interval,
                    qr_png=f"{self._config.issuer}/qr/{user_code}.png",
                    qr_svg=f"{self._config.issuer}/qr/{user_code}.svg",
                )
        raise RuntimeError("could not allocate a free user code")

    # --- RFC 8628 §3.4-3.5 ----------------------------------------------------------------
    def token(self, request: TokenRequest) -> IssuedTokens:
        """The token endpoint's device_code grant (the grant table's entry)."""
        return self.exchange(
            request.required("device_code"),
            request.client_id,
            request.client_secret,
            request.ip,
            request.dpop_jkt,
        )

    def exchange(
        self,
        device_code: str,
        client_id: str,
        client_secret: str | None,
        ip: str,
        dpop_jkt: str | None = None,
    ) -> IssuedTokens:
        """One poll of the token endpoint (RFC 8628 §3.5).

        A pending poll is decided by one atomic store call and touches no SQL: the flow carries
        the client binding and secret hash from its creation. Only the poll that claims an
        approved flow writes SQL, in one unit of work (see _redeem).
        """
        device_code_hash = hash_secret(device_code)
        result = self._store.poll(
            device_code_hash,
            self._clock(),
            client_id=client_id,
            client_secret_hash=presented_secret_hash(client_secret),
            lease=self._config.redemption_lease,
            dpop_jkt=dpop_jkt,
        )
        outcome, flow = result.outcome, result.flow
        if outcome in (PollOutcome.PENDING, PollOutcome.CLAIMED):
            # CLAIMED: another poll is issuing the tokens; if it never does, its lease lapses
            # and a later poll claims again, so the PC just keeps polling.
            raise errors.AuthorizationPending()
        if outcome is PollOutcome.SLOW_DOWN:
            raise errors.SlowDown()
        if outcome is PollOutcome.REDEEM and flow is not None:
            return self._redeem(flow, ip, dpop_jkt)
        # Every other answer is an error; authenticate the client first, so a caller with bad
        # credentials learns invalid_client and nothing about the code (RFC 6749 §5.2).
        client = self._clients.authenticate(client_id, client_secret)
        caller = Actor("client", client.client_id)
        if outcome is PollOutcome.WRONG_KEY:
            # The code was asked for with a DPoP key (RFC 9449): a stolen copy is worthless.
            if dpop_jkt is None:
                raise errors.InvalidDpopProof(
                    "This device code is bound to a DPoP key: send a DPoP proof signed with it."
                )
            raise errors.InvalidGrant("This device code is bound to another DPoP key.")
        if outcome is PollOutcome.DENIED:
            raise errors.AccessDenied()
        if outcome is PollOutcome.EXPIRED and flow is not None:
            with self._transaction():
                self._audit.flow_expired(flow, caller, ip)
            raise _ended(flow)
        if outcome in (PollOutcome.REPLAY, PollOutcome.UNKNOWN):
            # Replayed after the tokens were issued, or after the flow left the store: the
            # family that holds the device code is revoked (RFC 6749 §4.1.2 by analogy).
            family = self._tokens.family_by_device_code(device_code_hash)
            if family is not None and family.client_id == client.client_id:
                self._revoke_replayed(family, caller, ip)
        raise errors.InvalidGrant(
            "The device code is invalid, was already used, or belongs to another client."
        )

    def _redeem(self, flow: Flow, ip: str, dpop_jkt: str | None) -> IssuedTokens:
        """Issue the tokens of a flow this poll has claimed, exactly once, or end it clearly;
        bound to the DPoP key this poll proved, if any (RFC 9449 §5)."""
        caller = Actor("client", flow.client_id)

        def issue(family: TokenFamily, facts: ApprovalFacts, now: float) -> IssuedTokens | None:
            family = dataclasses.replace(self.authenticated(family, facts, flow), dpop_jkt=dpop_jkt)
            issued = self._minter.issue(family)
            if issued is None:
                return None
            if wants_id_token(family.scope):
                issued = dataclasses.replace(issued, id_token=self._id_token(family, facts, now))
            self._audit.record(
                AuditEventType.TOKEN_ISSUED,
                caller,
                ip=ip,
                family_id=family.id,
                scope=family.scope,
                amr=" ".join(family.amr),  # how the user authenticated (RFC 8176)
                **_refs(flow),
            )
            return issued

        def void() -> None:
            family = self._tokens.family_by_device_code(flow.device_code_hash)
            self._audit.record(
                AuditEventType.FLOW_VOIDED,
                caller,
                ip=ip,
                user_id=flow.user_id,
                client_id=flow.client_id,
                family_id=family.id if family else None,
                flow_ref=flow_ref(flow.device_code_hash),
            )
            if family is not None:
                self._revocations.revoke_family(
                    family, RevocationReason.REDEMPTION_VOIDED, caller, ip
                )

        return self.redeem_claimed(flow, ip, issue, void, family_in_audit=True)

    def claim(self, device_code_hash: str, client_id: str, binding: str) -> PollResult:
        """One poll of a flow by the server itself (the code flow's sign-in, bound with
        AUTHORIZE_BINDING): the same atomic decision and claim as a PC's token poll."""
        return self._store.poll(
            device_code_hash,
            self._clock(),
            client_id=client_id,
            client_secret_hash=binding,
            lease=self._config.redemption_lease,
        )

    def redeem_claimed(
        self,
        flow: Flow,
        ip: str,
        issue: Callable[[TokenFamily, ApprovalFacts, float], T | None],
        void: Callable[[], None],
        *,
        family_in_audit: bool = False,
    ) -> T:
        """Turn a flow this caller has claimed into what `issue` makes, exactly once.

        One unit of work: the approval is checked with the rows it depends on locked (so a
        concurrent revocation either waits for it or is seen by it), `issue` stores its result
        (a unique key on the flow's device code refuses a second one whatever the store says:
        it answers None then), and the audit rows go with it. Then the claim is settled. If
        anything fails before the commit, the claim is given back (or, if even that fails, its
        lease lapses) and the next poll claims again: nothing approved is lost and nothing is
        issued twice. If an earlier claim issued and never finished, `void` undoes what it
        issued (inside a unit of work) and the flow ends.
        """
        assert flow.user_id is not None and flow.mobile_device_id is not None
        claim, now = flow.version, self._clock()
        caller = Actor("client", flow.client_id)
        family = TokenFamily(
            id=str(uuid.uuid4()),
            user_id=flow.user_id,
            client_id=flow.client_id,
            mobile_device_id=flow.mobile_device_id,
            scope=flow.scope,
            device_code_hash=flow.device_code_hash,
            created_at=now,
            requester_ip=flow.requester_ip,
            requester_user_agent=flow.requester_user_agent,
            requester_place=place_of(flow.requester_ip).key,
        )
        try:
            with self._transaction():
                facts = self._devices.lock_for_redemption(flow.mobile_device_id, flow.client_id)
                if facts is not None and facts.client.disabled_at is not None:
                    # RFC 6749 §5.2: a disabled client cannot authenticate; nothing is issued.
                    raise errors.ClientAuthenticationFailed("This client is disabled.")
                withdrawn = flows.withdrawal_reason(facts, flow, now)
                if withdrawn is not None:
                    raise errors.AccessDenied(withdrawn)
                assert facts is not None  # withdrawal_reason withdraws an approval without them
                self._audit.record(
                    AuditEventType.FLOW_REDEEMED,
                    caller,
                    ip=ip,
                    family_id=family.id if family_in_audit else None,
                    **_refs(flow),
                )
                issued = issue(family, facts, now)
                if issued is None:
                    raise _IssuedBefore()
        except errors.AccessDenied:
            self._settle(flow, claim, ClaimSettlement.WITHDRAWN)
            with self._transaction():
                self._audit.record(AuditEventType.FLOW_WITHDRAWN, caller, ip=ip, **_refs(flow))
            raise
        except _IssuedBefore:
            with self._transaction():
                void()
            self._settle(flow, claim, ClaimSettlement.VOIDED)
            raise _ended(flow) from None
        except BaseException:
            self._settle(flow, claim, ClaimSettlement.GIVEN_BACK)
            raise
        self._settle(flow, claim, ClaimSettlement.ISSUED, family.id if family_in_audit else "")
        return issued

    @staticmethod
    def authenticated(family: TokenFamily, facts: ApprovalFacts, flow: Flow) -> TokenFamily:
        """The family with how its user authenticated, kept for refreshed ID tokens (OIDC
        Core §12.2): the approval on a phone, or the password of a browser on /device."""
        authentication = approval_authentication(
            facts.device.platform,
            approved_at=flow.approved_at or family.created_at,
            signed_in_at=facts.device.created_at,
        )
        return dataclasses.replace(
            family, auth_time=authentication.time, amr=tuple(authentication.methods)
        )

    def _id_token(self, family: TokenFamily, facts: ApprovalFacts, now: float) -> str:
        """OIDC Core §3.1.3.6; the device authorization request carries no nonce (RFC 8628
        defines none), so neither does the ID token."""
        assert family.auth_time is not None
        return self._id_tokens.id_token(
            user=facts.user,
            client_id=family.client_id,
            scope=family.scope,
            auth_time=family.auth_time,
            amr=family.amr,
            acr=context_of(family.amr),
            nonce=None,
            now=now,
        )

    def _settle(
        self, flow: Flow, claim: int, settlement: ClaimSettlement, family_id: str = ""
    ) -> None:
        """Settle the claim in the store; if the store fails, the claim's lease does it."""
        try:
            self._store.settle_claim(flow.device_code_hash, claim, settlement, family_id)
        except Exception:
            # ISSUED: the tokens are committed and still reach the client; a replay is then
            # caught through SQL. Otherwise the lease lapses and the next poll claims again.
            log.warning("could not settle claim %s of a flow as %s", claim, settlement.value)

    def _revoke_replayed(self, family: TokenFamily, actor: Actor, ip: str) -> None:
        with self._transaction():
            self._audit.record(
                AuditEventType.FLOW_REPLAY_DETECTED,
                actor,
                ip=ip,
                user_id=family.user_id,
                client_id=family.client_id,
                family_id=family.id,
                flow_ref=flow_ref(family.device_code_hash or ""),
            )
            revoked = self._revocations.revoke_family(
                family, RevocationReason.DEVICE_CODE_REPLAY, actor, ip
            )
        if revoked:
            log.warning("device code replayed: token family %s revoked", family.id)


def _refs(flow: Flow) -> dict[str, str | None]:
    """The ids a flow's audit rows carry."""
    return {
        "user_id": flow.user_id,
        "client_id": flow.client_id,
        "mobile_device_id": flow.mobile_device_id,
        "flow_ref": flow_ref(flow.device_code_hash),
    }


class _IssuedBefore(Exception):
    """The device code already has a family: an earlier claim issued and never finished."""


def _ended(flow: Flow) -> errors.FlowExpired:
    if flow.state is FlowState.VOIDED or flow.state is FlowState.REDEEMED:
        return errors.FlowExpired("This login could not be completed: start a new one.")
    return errors.FlowExpired()
