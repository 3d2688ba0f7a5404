"""The audit trail: who did what, when, from where; never a secret."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from authserver.domain.flow import Flow
from authserver.domain.models import Actor, AuditEvent, AuditFilter
from authserver.domain.ports import AuditLog

log = logging.getLogger(__name__)


def flow_ref(device_code_hash: str) -> str:
    """A short handle for a flow in the audit trail: a prefix of its device code's hash.

    The device code itself is a secret and never recorded; this prefix only correlates events.
    """
    return device_code_hash[:16]


class Auditor:
    """Appends events to the audit log.

    Recording runs after the action it describes has committed and never undoes it: a failed
    audit write is logged loudly, but a token that was issued still reaches its client
    ("nothing issued is ever lost").
    """

    def __init__(self, audit_log: AuditLog, clock: Callable[[], float]) -> None:
        self._log = audit_log
        self._clock = clock

    def record(
        self,
        event: str,
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
        try:
            self._log.record(entry, once_key)
        except Exception:
            log.exception("could not record audit event %s by %s:%s", event, actor.kind, actor.id)

    def flow_expired(self, flow: Flow, actor: Actor, ip: str) -> None:
        """Audit a flow's expiry once, the first time anyone sees it expired.

        Seen by a token poll, the status channel or a scan. A flow nobody asks about after it
        expires leaves its flow.created event (with expires_in) and nothing more.
        """
        ref = flow_ref(flow.device_code_hash)
        self.record(
            "flow.expired",
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
