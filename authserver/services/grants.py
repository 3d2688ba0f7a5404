"""The refresh_token grant (RFC 6749 §6): authenticate the client, then rotate."""

from __future__ import annotations

from authserver.services.clients import ClientService
from authserver.services.tokens import IssuedTokens, TokenMinter


class GrantService:
    """Token requests other than the device code (which FlowService.exchange answers)."""

    def __init__(self, clients: ClientService, minter: TokenMinter) -> None:
        self._clients = clients
        self._minter = minter

    def refresh(
        self,
        client_id: str,
        client_secret: str | None,
        refresh_token: str,
        scope: str | None,
    ) -> IssuedTokens:
        client = self._clients.authenticate(client_id, client_secret)
        return self._minter.refresh(refresh_token, client.client_id, scope)
