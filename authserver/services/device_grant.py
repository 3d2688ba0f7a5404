"""The device grant (RFC 8628): device authorization requests and the device_code token grant."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from authserver.config import Config
from authserver.domain import errors
from authserver.domain import flow as flows
from authserver.domain.codes import (
    hash_secret,
    new_device_code,
    new_user_code,
    normalize_user_code,
    presented_secret_hash,
)
from authserver.domain.flow import DEVICE_CODE_GRANT, Flow, FlowState, PollOutcome
from authserver.domain.models import Actor, TokenFamily
from authserver.domain.ports import FlowStore, RateLimiter, TokenRepository
from authserver.domain.text import printable
from authserver.services.accounts import AccountService
from authserver.services.audit import Auditor, flow_ref
from authserver.services.clients import ClientService
from authserver.services.revocation import Revocations
from authserver.services.token_endpoint import TokenRequest
from authserver.services.tokens import IssuedTokens, TokenMinter

log = logging.getLogger(__name__)


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
        accounts: AccountService,
        minter: TokenMinter,
        revocations: Revocations,
        limiter: RateLimiter,
        auditor: Auditor,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._store = store
        self._clients = clients
        self._tokens = tokens
        self._accounts = accounts
        self._minter = minter
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
    ) -> DeviceAuthorization:
        """A new flow with a device code and a user code."""
        client = self._clients.authenticate(client_id, client_secret)
        granted = self._clients.resolve_scope(client, scope)
        now = self._clock()
        # Every flow costs store memory until it expires: bound how fast one caller makes them.
        key = f"da:{client.client_id}:{ip}"
        wait = self._limiter.hit(key, self._config.device_authorizations_per_minute, 60, now)
        if wait:
            raise errors.RateLimited(wait)
        for _ in range(8):  # 20^8 codes: a collision with a live flow is rare, retry it
            device_code, user_code = new_device_code(), new_user_code()
            flow = Flow(
                device_code_hash=hash_secret(device_code),
                user_code_hash=hash_secret(normalize_user_code(user_code) or ""),
                client_id=client.client_id,
                client_secret_hash=client.secret_hash or "",  # see presented_secret_hash
                scope=granted,
                requester_ip=ip,
                requester_user_agent=printable(user_agent, 200),
                created_at=now,
                expires_at=now + self._config.device_code_ttl,
                interval=self._config.poll_interval,
            )
            if self._store.create(flow):
                self._audit.record(
                    "flow.created",
                    Actor("client", client.client_id),
                    ip=ip,
                    client_id=client.client_id,
                    flow_ref=flow_ref(flow.device_code_hash),
                    scope=granted,
                    user_agent=flow.requester_user_agent,
                    expires_in=self._config.device_code_ttl,
                )
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
            request.required("device_code"), request.client_id, request.client_secret, request.ip
        )

    def exchange(
        self, device_code: str, client_id: str, client_secret: str | None, ip: str
    ) -> IssuedTokens:
        """One poll of the token endpoint.

        A pending poll is decided by one atomic store call and touches no SQL: the flow carries
        the client binding and secret hash from its creation.
        """
        device_code_hash = hash_secret(device_code)
        family_id = str(uuid.uuid4())
        result = self._store.poll(
            device_code_hash,
            self._clock(),
            client_id=client_id,
            client_secret_hash=presented_secret_hash(client_secret),
            family_id=family_id,
        )
        outcome, flow = result.outcome, result.flow
        if outcome is PollOutcome.PENDING:
            raise errors.AuthorizationPending()
        if outcome is PollOutcome.SLOW_DOWN:
            raise errors.SlowDown()
        if outcome is PollOutcome.REDEEM and flow is not None:
            return self._issue(flow, family_id, client_secret, ip)
        # Every other answer is an error; authenticate the client first, so a caller with bad
        # credentials learns invalid_client and nothing about the code (RFC 6749 §5.2).
        client = self._clients.authenticate(client_id, client_secret)
        caller = Actor("client", client.client_id)
        if outcome is PollOutcome.DENIED:
            raise errors.AccessDenied()
        if outcome is PollOutcome.EXPIRED and flow is not None:
            self._audit.flow_expired(flow, caller, ip)
            raise errors.FlowExpired()
        if outcome is PollOutcome.REPLAY and flow is not None and flow.family_id:
            family = self._tokens.family(flow.family_id)
            if family is not None:
                self._revoke_replayed(family, caller, ip)
        if outcome is PollOutcome.UNKNOWN:
            # The flow may have left the store; a family still remembers its device code.
            family = self._tokens.family_by_device_code(device_code_hash)
            if family is not None and family.client_id == client.client_id:
                self._revoke_replayed(family, caller, ip)
        raise errors.InvalidGrant(
            "The device code is invalid, was already used, or belongs to another client."
        )

    def _revoke_replayed(self, family: TokenFamily, actor: Actor, ip: str) -> None:
        self._audit.record(
            "flow.replay_detected",
            actor,
            ip=ip,
            user_id=family.user_id,
            client_id=family.client_id,
            family_id=family.id,
            flow_ref=flow_ref(family.device_code_hash or ""),
        )
        if self._revocations.revoke_family(family, "device_code_replay", actor, ip):
            log.warning("device code replayed: token family %s revoked", family.id)

    def _issue(
        self, flow: Flow, family_id: str, client_secret: str | None, ip: str
    ) -> IssuedTokens:
        """Commit the tokens of a flow this poll has claimed; give the flow back on failure.

        The approval must still stand when the PC redeems it: its client enabled, the approving
        phone still signed in, no revoke-all of the user since the flow started. It is checked
        before the tokens are committed, and again after, because a revocation that ran in
        between could not see them.
        """
        assert flow.user_id is not None
        family = TokenFamily(
            id=family_id,
            user_id=flow.user_id,
            client_id=flow.client_id,
            mobile_device_id=flow.mobile_device_id,
            scope=flow.scope,
            device_code_hash=flow.device_code_hash,
            created_at=self._clock(),
            requester_ip=flow.requester_ip,
            requester_user_agent=flow.requester_user_agent,
        )
        caller = Actor("client", family.client_id)
        try:
            self._check_approval(flow, client_secret)
            issued = self._minter.issue(family)
        except errors.AccessDenied:
            self._store.undo_redemption(flow.device_code_hash, family_id)
            self._withdraw(flow.device_code_hash, caller, ip)
            raise
        except BaseException:
            # Nothing approved is lost: the flow is APPROVED again and the next poll retries.
            self._store.undo_redemption(flow.device_code_hash, family_id)
            raise
        try:
            self._store.finish_redemption(flow.device_code_hash, family_id)
        except Exception:
            # The tokens are committed and must reach the client; only replay detection for
            # this code falls back to the SQL lookup once the flow leaves the store.
            log.exception("could not mark flow redeemed after issuing family %s", family_id)
        refs = {
            "user_id": family.user_id,
            "client_id": family.client_id,
            "mobile_device_id": family.mobile_device_id,
            "family_id": family.id,
        }
        ref = flow_ref(flow.device_code_hash)
        self._audit.record("flow.redeemed", caller, ip=ip, flow_ref=ref, **refs)
        self._audit.record("token.issued", caller, ip=ip, flow_ref=ref, scope=family.scope, **refs)
        try:
            self._check_approval(flow, client_secret)
        except errors.DomainError:
            self._revocations.revoke_family(family, "approval_withdrawn", caller, ip)
            raise
        except Exception:
            # The check passed before issuing; an outage now must not lose what was issued.
            log.exception("could not re-check the approval of family %s", family_id)
        return issued

    def _check_approval(self, flow: Flow, client_secret: str | None) -> None:
        """Raise unless the approval of this claimed flow still stands (see _issue)."""
        assert flow.user_id is not None
        # The flow vouched for the credentials; SQL says whether the client is still enabled.
        client = self._clients.authenticate(flow.client_id, client_secret)
        revoked_at = client.sessions_revoked_at
        if revoked_at is not None and flow.created_at <= revoked_at:
            raise errors.AccessDenied(
                "The approval was withdrawn: the client's sessions were revoked."
            )
        if not self._accounts.approval_stands(flow.user_id, flow.mobile_device_id, flow.created_at):
            raise errors.AccessDenied(
                "The approval was withdrawn: the approving phone was signed out or revoked."
            )

    def _withdraw(self, device_code_hash: str, actor: Actor, ip: str) -> None:
        """APPROVED -> DENIED: later polls read access_denied instead of retrying the claim."""
        flow = self._store.get(device_code_hash)
        if flow is None or flow.state is not FlowState.APPROVED:
            return
        if self._store.replace(flow, flows.cancel(flow, self._clock())):
            self._audit.record(
                "flow.withdrawn",
                actor,
                ip=ip,
                user_id=flow.user_id,
                client_id=flow.client_id,
                mobile_device_id=flow.mobile_device_id,
                flow_ref=flow_ref(device_code_hash),
            )
