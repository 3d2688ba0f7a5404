"""The audit trail: who did what, when, from where; never a secret."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authserver.domain.flow import Flow
from authserver.domain.models import Actor, AuditEvent, AuditEventType, AuditFilter
from authserver.domain.ports import AuditLog
from authserver.metrics import count_event


def flow_ref(device_code_hash: str) -> str:
    """A short handle for a flow in the audit trail: a prefix of its device code's hash.

    The device code itself is a secret and never recorded; this prefix only correlates events.
    """
    return device_code_hash[:16]


class Auditor:
    """Appends events to the audit log, inside the caller's unit of work.

    Each step records its events in the transaction that performs it, so an action and its
    audit trail commit together or not at all: a failed audit write fails the step, which then
    changed nothing.
    """

    def __init__(self, audit_log: AuditLog, clock: Callable[[], float]) -> None:
        self._log = audit_log
        self._clock = clock

    def record(
        self,
        event: AuditEventType,
        actor: Actor,
        *,
        ip: str = "",
        once_key: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
        mobile_device_id: str | None = None,
        family_id: str | None = None,
        flow_ref: str | None = None,
        **detail: Any,
    ) -> None:
        entry = AuditEvent(
            event=event,
            actor=actor,
            occurred_at=self._clock(),
            ip=ip,
            user_id=user_id,
            client_id=client_id,
            mobile_device_id=mobile_device_id,
            family_id=family_id,
            flow_ref=flow_ref,
            detail=detail,
        )
        if self._log.record(entry, once_key) is not False:  # once_key: counted the first time
            count_event(event.value)

    def flow_expired(self, flow: Flow, actor: Actor, ip: str) -> None:
        """Audit a flow's expiry once, the first time anyone sees it expired.

        Seen by a token poll, the status channel or a scan. A flow nobody asks about after it
        expires leaves its flow.created event (with expires_in) and nothing more.
        """
        ref = flow_ref(flow.device_code_hash)
        self.record(
            AuditEventType.FLOW_EXPIRED,
            actor,
            ip=ip,
            once_key=f"flow.expired:{ref}",
            client_id=flow.client_id,
            user_id=flow.user_id,
            flow_ref=ref,
            state=flow.state.value,
        )

    def query(self, where: AuditFilter) -> list[AuditEvent]:
        return self._log.query(where)
