"""The status channel: what the PC's screen shows while it waits (non-standard, never the token
endpoint, whose RFC 8628 §3.5 clients must stop on codes they do not know)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.codes import hash_secret, mask_name, presented_secret_hash, secrets_equal
from authserver.domain.flow import Flow, FlowStatus
from authserver.domain.models import Actor
from authserver.domain.ports import FlowStore
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.qr_links import QrLinks


@dataclass(frozen=True, slots=True)
class StatusView:
    """What the PC's status channel shows."""

    status: FlowStatus
    expires_in: int
    scanner: dict[str, str] | None
    # Number matching: shown once scanned, when the phone is asked to pick it.
    match_number: int | None = None
    # A rotating QR code, while it waits for a scan: (scan token, seconds it is shown).
    qr_token: tuple[str, int] | None = None


class StatusChannel:
    """Answers the PC's status questions, optionally long-polling until the status changes."""

    def __init__(
        self,
        config: Config,
        store: FlowStore,
        clients: ClientService,
        auditor: Auditor,
        clock: Callable[[], float],
        qr_links: QrLinks,
    ) -> None:
        self._config = config
        self._qr_links = qr_links
        self._store = store
        self._clients = clients
        self._audit = auditor
        self._clock = clock
        # Long-polls hold a server thread each: cap them per process, one per device code, so
        # no caller can tie up every thread (then the status is simply answered at once).
        self._waiter_slots = threading.BoundedSemaphore(config.status_max_waiters)
        self._waiting: set[str] = set()
        self._waiting_lock = threading.Lock()

    def status(
        self,
        device_code: str,
        client_id: str,
        client_secret: str | None,
        known: str | None,
        wait: float,
        ip: str,
    ) -> StatusView:
        """The flow's state, optionally waiting for it to change.

        The client is checked against what the flow recorded at creation (no SQL), the same
        way a token poll checks it.
        """
        device_code_hash = hash_secret(device_code)
        flow = self._store.get(device_code_hash)
        if (
            flow is None
            or flow.client_id != client_id
            or not secrets_equal(flow.client_secret_hash, presented_secret_hash(client_secret))
        ):
            # Error path only, as on the token endpoint: bad client credentials are
            # invalid_client (RFC 6749 §5.2) whatever the code, so the answer is no oracle.
            self._clients.authenticate(client_id, client_secret)
            raise errors.InvalidGrant("Unknown device code for this client.")
        return self._follow(flow, device_code_hash, client_id, known, wait, ip)

    def status_bound(
        self,
        device_code_hash: str,
        client_id: str,
        binding: str,
        known: str | None,
        wait: float,
        ip: str,
    ) -> StatusView:
        """The status of a flow the server started itself (the code flow's sign-in page), which
        carries `binding` instead of a client secret's hash; the caller checked the browser."""
        flow = self._store.get(device_code_hash)
        if flow is None or flow.client_id != client_id or flow.client_secret_hash != binding:
            raise errors.InvalidGrant("Unknown sign-in.")
        return self._follow(flow, device_code_hash, client_id, known, wait, ip)

    def _follow(
        self,
        flow: Flow,
        device_code_hash: str,
        client_id: str,
        known: str | None,
        wait: float,
        ip: str,
    ) -> StatusView:
        now = self._clock()
        wait = min(max(wait, 0.0), self._config.status_max_wait, max(flow.expires_at - now, 0.0))
        if known == flow.status(now).value and wait > 0 and self._claim_waiter(device_code_hash):
            try:
                flow = self._store.wait_for_change(device_code_hash, flow.version, wait) or flow
            finally:
                self._release_waiter(device_code_hash)
            now = self._clock()
        view = self._view(flow, now)
        if view.status is FlowStatus.EXPIRED:
            self._audit.flow_expired(flow, Actor("client", client_id), ip)
        return view

    def _claim_waiter(self, device_code_hash: str) -> bool:
        with self._waiting_lock:
            if device_code_hash in self._waiting or not self._waiter_slots.acquire(blocking=False):
                return False
            self._waiting.add(device_code_hash)
            return True

    def _release_waiter(self, device_code_hash: str) -> None:
        with self._waiting_lock:
            self._waiting.discard(device_code_hash)
            self._waiter_slots.release()

    def _view(self, flow: Flow, now: float) -> StatusView:
        status = flow.status(now)
        scanner = None
        if flow.scanner_name and status in (FlowStatus.SCANNED, FlowStatus.APPROVED):
            # Masked: a phishing PC must not learn who its victim is.
            scanner = {"name": mask_name(flow.scanner_name)}
            if flow.scanner_platform:
                scanner["platform"] = flow.scanner_platform
        number = flow.match_number if status is FlowStatus.SCANNED else None
        qr = (
            self._qr_links.current(flow)
            if flow.rotating_qr and status is FlowStatus.PENDING
            else None
        )
        return StatusView(status, max(int(flow.expires_at - now), 0), scanner, number, qr)
