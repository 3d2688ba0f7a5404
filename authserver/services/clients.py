"""Registering PC clients and authenticating them (RFC 6749 §2.3)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.codes import hash_secret, new_token, secrets_equal
from authserver.domain.models import Client, ClientKind
from authserver.domain.oidc import Scope
from authserver.domain.ports import ClientRepository

# How long a process trusts its copy of a client row. Every request authenticates its client,
# and client rows almost never change; a change made in another process (a client disabled) is
# seen within this, and a redemption reads the row itself, locked, so a disabled client never
# gets tokens (DeviceGrant). A change made in this process is seen at once.
CLIENT_CACHE_SECONDS = 5.0


class ClientService:
    """Creates clients and checks their credentials."""

    def __init__(
        self, config: Config, clients: ClientRepository, clock: Callable[[], float]
    ) -> None:
        self._config = config
        self._clients = clients
        self._clock = clock
        self._cache: dict[str, tuple[float, Client | None]] = {}

    def create(
        self,
        name: str,
        *,
        confidential: bool,
        scope: str | None,
        kind: ClientKind = ClientKind.DEVICE,
    ) -> tuple[Client, str]:
        """A new client and its secret ("" for public clients, the RFC 8628 §5.6 default).

        A resource server is always confidential: it authenticates to introspect (RFC 7662 §2.1).
        """
        confidential = confidential or kind is ClientKind.RESOURCE_SERVER
        if not name.strip():
            raise errors.MalformedRequest("A client needs a name.")
        granted = scope.split() if scope else list(self._config.scope_list)
        unknown = set(granted) - set(self._config.scope_list)
        if unknown:
            raise errors.InvalidScope(f"Unknown scope(s): {' '.join(sorted(unknown))}")
        secret = new_token() if confidential else ""
        client = Client(
            client_id=secrets.token_urlsafe(16),
            name=name.strip(),
            scope=" ".join(granted),
            secret_hash=hash_secret(secret) if confidential else None,
            kind=kind,
        )
        self._clients.add(client, self._clock())
        return client, secret

    def get(self, client_id: str) -> Client | None:
        """The client, from a copy at most CLIENT_CACHE_SECONDS old (unknown ids included)."""
        now = time.monotonic()
        cached = self._cache.get(client_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        client = self._clients.get(client_id)
        if len(self._cache) > 10_000:  # a flood of made-up client ids must not grow memory
            self._cache.clear()
        self._cache[client_id] = (now + CLIENT_CACHE_SECONDS, client)
        return client

    def _forget(self, client_id: str) -> None:
        self._cache.pop(client_id, None)

    def find_by_name(self, name: str) -> Client | None:
        """A client by its display name (the demo set-up is idempotent through it)."""
        return self._clients.by_name(name)

    def all(self) -> list[Client]:
        return self._clients.all()

    def set_disabled(self, client_id: str, disabled: bool) -> Client:
        """Disable or re-enable a client; the caller revokes what it holds."""
        self._forget(client_id)
        if not self._clients.set_disabled(client_id, self._clock() if disabled else None):
            raise errors.NotFound("No such client.")
        client = self._clients.get(client_id)
        assert client is not None
        return client

    def mark_sessions_revoked(self, client_id: str) -> None:
        """From now on, approvals of this client's earlier flows no longer become sessions."""
        self._forget(client_id)
        self._clients.mark_sessions_revoked(client_id, self._clock())

    def authenticate(
        self, client_id: str, client_secret: str | None, kind: ClientKind | None = ClientKind.DEVICE
    ) -> Client:
        """The client, if its credentials hold and it is enabled; public clients present no secret.

        `kind` is what the endpoint serves (None: any kind); another kind is unauthorized_client.
        """
        client = self.get(client_id)
        if client is None:
            raise errors.ClientAuthenticationFailed("Unknown client.")
        checked = self._check_secret(client, client_secret)
        if checked.disabled_at is not None:
            raise errors.ClientAuthenticationFailed("This client is disabled.")
        if kind is not None and checked.kind is not kind:
            raise errors.UnauthorizedClient(f"A {checked.kind.value} client cannot use this.")
        return checked

    @staticmethod
    def _check_secret(client: Client, client_secret: str | None) -> Client:
        if client.secret_hash is None:
            if client_secret:
                raise errors.ClientAuthenticationFailed(
                    "This is a public client: it has no secret."
                )
            return client
        if not client_secret or not secrets_equal(client.secret_hash, hash_secret(client_secret)):
            raise errors.ClientAuthenticationFailed("Client authentication failed.")
        return client

    def resolve_scope(self, client: Client, requested: str | None) -> str:
        """The scope to grant: the requested one if allowed, else the default (RFC 6749 §3.3):
        what the client may have, but `openid`, which only an OpenID Connect request asks for
        (OIDC Core §3.1.2.1), so a plain OAuth client's grant stays what it was."""
        allowed = client.scope.split()
        if requested is None or not requested.strip():
            return " ".join(s for s in allowed if s != Scope.OPENID)
        asked = requested.split()
        if not set(asked) <= set(allowed):
            raise errors.InvalidScope()
        return " ".join(dict.fromkeys(asked))
