"""The refresh_token grant (RFC 6749 §6): authenticate the client, then rotate."""

from __future__ import annotations

from authserver.domain.models import Actor
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.tokens import IssuedTokens, TokenMinter


class GrantService:
    """Token requests other than the device code (which FlowService.exchange answers)."""

    def __init__(self, clients: ClientService, minter: TokenMinter, auditor: Auditor) -> None:
        self._clients = clients
        self._minter = minter
        self._audit = auditor

    def refresh(
        self,
        client_id: str,
        client_secret: str | None,
        refresh_token: str,
        scope: str | None,
        ip: str,
    ) -> IssuedTokens:
        client = self._clients.authenticate(client_id, client_secret)
        issued = self._minter.refresh(refresh_token, client.client_id, scope, ip)
        self._audit.record(
            "token.refreshed",
            Actor("client", client.client_id),
            ip=ip,
            user_id=issued.user_id,
            client_id=client.client_id,
            family_id=issued.family_id,
            scope=issued.scope,
        )
        return issued
