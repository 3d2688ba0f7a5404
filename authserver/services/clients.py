"""Registering PC clients and authenticating them (RFC 6749 §2.3)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.authorization import registration_problem
from authserver.domain.codes import hash_secret, new_client_id, new_token, secrets_equal
from authserver.domain.models import DEFAULT_GRANT_TYPES, Client, ClientKind, GrantType
from authserver.domain.oidc import Scope
from authserver.domain.ports import ClientRepository
from authserver.domain.text import N_
from authserver.services.logos import normalized_logo

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
        self._logos: dict[str, tuple[float, bytes | None]] = {}

    def create(
        self,
        name: str,
        *,
        confidential: bool,
        scope: str | None,
        kind: ClientKind = ClientKind.DEVICE,
        redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] = (),
        grant_types: Sequence[str] = (),
        number_matching: bool = False,
    ) -> tuple[Client, str]:
        """A new client and its secret ("" for public clients, the RFC 8628 §5.6 default).

        A resource server is always confidential: it authenticates to introspect (RFC 7662 §2.1).
        Without `grant_types` a client runs the device flow (and refreshes), as clients always
        have; a website names authorization_code and registers its redirect URIs.
        """
        confidential = confidential or kind is ClientKind.RESOURCE_SERVER
        secret = new_token() if confidential else ""
        client = self._registered(
            Client(
                client_id=new_client_id(),
                name=name,
                scope=scope if scope else " ".join(self._config.scope_list),
                secret_hash=hash_secret(secret) if confidential else None,
                kind=kind,
                number_matching=number_matching,
            ),
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_redirect_uris,
            grant_types=grant_types or DEFAULT_GRANT_TYPES,
        )
        self._clients.add(client, self._clock())
        return client, secret

    def update(
        self,
        client_id: str,
        *,
        name: str | None = None,
        scope: str | None = None,
        redirect_uris: Sequence[str] | None = None,
        post_logout_redirect_uris: Sequence[str] | None = None,
        grant_types: Sequence[str] | None = None,
        number_matching: bool | None = None,
    ) -> Client:
        """Change a client's name, scope or registration; what is not given stays."""
        current = self.existing(client_id)
        client = self._registered(
            dataclasses.replace(
                current,
                name=current.name if name is None else name,
                scope=current.scope if scope is None else scope,
                number_matching=(
                    current.number_matching if number_matching is None else number_matching
                ),
            ),
            redirect_uris=current.redirect_uris if redirect_uris is None else redirect_uris,
            post_logout_redirect_uris=(
                current.post_logout_redirect_uris
                if post_logout_redirect_uris is None
                else post_logout_redirect_uris
            ),
            grant_types=current.grant_types if grant_types is None else grant_types,
        )
        self._forget(client_id)
        if not self._clients.update(client):
            raise errors.NotFound(N_("No such client."))
        return client

    def _registered(
        self,
        client: Client,
        *,
        redirect_uris: Sequence[str],
        post_logout_redirect_uris: Sequence[str],
        grant_types: Sequence[str],
    ) -> Client:
        """The client with a checked name, scope, grants and URIs, or MalformedRequest."""
        if not client.name.strip():
            raise errors.MalformedRequest("A client needs a name.")
        granted = client.scope.split()
        unknown = set(granted) - set(self._config.scope_list)
        if unknown or not granted:
            raise errors.InvalidScope(f"Unknown scope(s): {' '.join(sorted(unknown))}")
        grants = tuple(dict.fromkeys(parse_grant_type(g) for g in grant_types))
        uris = tuple(dict.fromkeys(u.strip() for u in redirect_uris if u.strip()))
        logout_uris = tuple(
            dict.fromkeys(u.strip() for u in post_logout_redirect_uris if u.strip())
        )
        for uri in (*uris, *logout_uris):
            problem = registration_problem(uri)
            if problem is not None:
                raise errors.MalformedRequest(f"{uri!r}: {problem}.")
        if GrantType.AUTHORIZATION_CODE in grants and not uris:
            raise errors.MalformedRequest(
                "The authorization_code grant needs at least one redirect URI."
            )
        return dataclasses.replace(
            client,
            name=client.name.strip(),
            scope=" ".join(dict.fromkeys(granted)),
            redirect_uris=uris,
            post_logout_redirect_uris=logout_uris,
            grant_types=grants,
        )

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

    def existing(self, client_id: str) -> Client:
        """The client as stored now; NotFound if there is none or it was deleted."""
        client = self._clients.get(client_id)
        if client is None or client.deleted_at is not None:
            raise errors.NotFound(N_("No such client."))
        return client

    def _forget(self, client_id: str) -> None:
        self._cache.pop(client_id, None)

    def find_by_name(self, name: str) -> Client | None:
        """A client by its display name (the demo set-up is idempotent through it)."""
        return self._clients.by_name(name)

    def all(self) -> list[Client]:
        return self._clients.all()

    def rotate_secret(self, client_id: str) -> tuple[Client, str]:
        """A new secret for a confidential client; the old one stops working at once."""
        client = self.existing(client_id)
        if not client.is_confidential:
            # RFC 8628 §5.6: a public client has no secret to rotate (nor to keep).
            raise errors.MalformedRequest("A public client has no secret to rotate.")
        secret = new_token()
        self._forget(client_id)
        if not self._clients.set_secret_hash(client_id, hash_secret(secret)):
            raise errors.NotFound(N_("No such client."))
        return dataclasses.replace(client, secret_hash=hash_secret(secret)), secret

    def delete(self, client_id: str) -> Client:
        """Leave a disabled tombstone of the client; the caller revokes what it holds."""
        self._forget(client_id)
        self._logos.pop(client_id, None)
        if not self._clients.erase(client_id, self._clock()):
            raise errors.NotFound(N_("No such client."))
        client = self._clients.get(client_id)
        assert client is not None
        return client

    def set_disabled(self, client_id: str, disabled: bool) -> Client:
        """Disable or re-enable a client; the caller revokes what it holds."""
        self.existing(client_id)
        self._forget(client_id)
        if not self._clients.set_disabled(client_id, self._clock() if disabled else None):
            raise errors.NotFound(N_("No such client."))
        client = self._clients.get(client_id)
        assert client is not None
        return client

    def set_logo(self, client_id: str, image: bytes | None) -> None:
        """Give a client a logo (any PNG, JPEG, GIF or WebP, re-encoded) or take it away."""
        self.existing(client_id)
        png = None if image is None else normalized_logo(image)
        self._logos.pop(client_id, None)
        self._clients.set_logo(client_id, png, self._clock())

    def logo(self, client_id: str) -> bytes | None:
        """The client's logo PNG, from a copy at most CLIENT_CACHE_SECONDS old."""
        now = time.monotonic()
        cached = self._logos.get(client_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        png = self._clients.logo(client_id)
        if len(self._logos) > 1_000:  # logos are small, but made-up ids must not grow memory
            self._logos.clear()
        self._logos[client_id] = (now + CLIENT_CACHE_SECONDS, png)
        return png

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


# Short names an operator types for the grant types (the device grant's is a URN).
_GRANT_ALIASES = {"device_code": GrantType.DEVICE_CODE}


def parse_grant_type(name: str) -> GrantType:
    """A grant type by its RFC name or short alias, or MalformedRequest naming the choices."""
    name = name.strip()
    if name in _GRANT_ALIASES:
        return _GRANT_ALIASES[name]
    try:
        return GrantType(name)
    except ValueError:
        choices = ", ".join(["authorization_code", "device_code", "refresh_token"])
        raise errors.MalformedRequest(f"Unknown grant type {name!r}: one of {choices}.") from None
