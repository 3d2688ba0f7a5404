"""The composition root: build the stores and services for a Config."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from authserver.config import Config
from authserver.domain.ports import FlowStore, ProofReplayCache, RateLimiter, RevocationList
from authserver.services.accounts import AccountService
from authserver.services.admin import AdminAuth, Administration
from authserver.services.approvals import Approvals
from authserver.services.audit import Auditor
from authserver.services.authorization import Authorizations
from authserver.services.authorization_code_grant import AuthorizationCodeGrant
from authserver.services.clients import ClientService
from authserver.services.context import RequesterFacts
from authserver.services.device_grant import DeviceGrant
from authserver.services.dpop import DpopProofs
from authserver.services.external_tokens import ExternalTokenVerifier, Fetch, fetch_url
from authserver.services.id_tokens import IdTokenMinter
from authserver.services.keys import KeyRing
from authserver.services.lifecycle import TokenLifecycle
from authserver.services.limits import SignInThrottle
from authserver.services.logins import PhoneLogins
from authserver.services.qr_links import QrLinks
from authserver.services.refresh_grant import RefreshGrant
from authserver.services.revocation import Revocations
from authserver.services.status_channel import StatusChannel
from authserver.services.token_endpoint import Grant, TokenEndpoint
from authserver.services.token_exchange import TokenExchangeGrant
from authserver.services.tokens import AccessTokenVerifier, TokenMinter
from authserver.storage.embedded.deny_list import EmbeddedRevocationList
from authserver.storage.embedded.flows import EmbeddedFlowStore
from authserver.storage.embedded.limits import EmbeddedRateLimiter
from authserver.storage.embedded.replay_cache import EmbeddedReplayCache
from authserver.storage.key_encryption import KeyCipher, key_from_file, parse_keys
from authserver.storage.redis_store.client import connect_redis
from authserver.storage.redis_store.deny_list import RedisRevocationList
from authserver.storage.redis_store.flows import RedisFlowStore
from authserver.storage.redis_store.limits import RedisRateLimiter
from authserver.storage.redis_store.replay_cache import RedisReplayCache
from authserver.storage.sql.admins import SqlAdmins
from authserver.storage.sql.audit import SqlAuditLog
from authserver.storage.sql.authorization_codes import SqlAuthorizationCodes
from authserver.storage.sql.browser_sessions import SqlBrowserSessions
from authserver.storage.sql.clients import SqlClients
from authserver.storage.sql.database import Database
from authserver.storage.sql.device_cookies import SqlDeviceCookies
from authserver.storage.sql.devices import SqlMobileDevices
from authserver.storage.sql.guard import SqlLimits
from authserver.storage.sql.identities import SqlExternalIdentities
from authserver.storage.sql.keys import SqlKeys
from authserver.storage.sql.tokens import SqlTokens
from authserver.storage.sql.users import SqlUsers


@dataclass
class Services:
    """Everything the web layer and the CLI call, built once per process."""

    config: Config
    database: Database
    redis: redis.Redis | None
    flow_store: FlowStore
    keys: KeyRing
    minter: TokenMinter
    id_tokens: IdTokenMinter
    verifier: AccessTokenVerifier
    dpop: DpopProofs
    revocations: Revocations
    auditor: Auditor
    clients: ClientService
    accounts: AccountService
    device_grant: DeviceGrant
    status_channel: StatusChannel
    approvals: Approvals
    logins: PhoneLogins
    authorizations: Authorizations
    token_endpoint: TokenEndpoint
    lifecycle: TokenLifecycle
    admin_auth: AdminAuth
    administration: Administration

    def close(self) -> None:
        self.database.dispose()
        if self.redis is not None:
            self.redis.close()


def key_cipher(config: Config) -> KeyCipher:
    """The key-encryption keys: the setting's, else the one in the key file (made once)."""
    if config.key_encryption_keys:
        return KeyCipher(parse_keys(config.key_encryption_keys))
    return KeyCipher([key_from_file(config.key_encryption_key_file)])


def wall_clock() -> float:
    """Unix seconds now; looked up per call so tests can freeze time (freezegun)."""
    return time.time()


def build_services(
    config: Config, clock: Callable[[], float] = wall_clock, jwks_fetch: Fetch = fetch_url
) -> Services:
    """Wire stores and services for `config`: Redis when configured, else the embedded store.

    `jwks_fetch` fetches trusted identity providers' key sets (tests may serve their own).
    """
    database = Database(config.database_url, SqlLimits.from_config(config))
    client: redis.Redis | None = None
    store: FlowStore
    limiter: RateLimiter
    deny_list: RevocationList
    replay_cache: ProofReplayCache
    if config.redis_url:
        client = connect_redis(config.redis_url, config.redis_timeout)
        store = RedisFlowStore(client, config.redis_prefix)
        limiter = RedisRateLimiter(client, config.redis_prefix, config.redis_timeout)
        deny_list = RedisRevocationList(client, config.redis_prefix)
        replay_cache = RedisReplayCache(client, config.redis_prefix)
    else:
        store, limiter = EmbeddedFlowStore(), EmbeddedRateLimiter()
        deny_list = EmbeddedRevocationList()
        replay_cache = EmbeddedReplayCache()
    transaction = database.transaction
    client_repo, token_repo = SqlClients(database), SqlTokens(database)
    device_repo = SqlMobileDevices(database)
    auditor = Auditor(SqlAuditLog(database), clock)
    revocations = Revocations(
        token_repo,
        deny_list,
        auditor,
        transaction,
        clock,
        access_token_ttl=config.access_token_ttl,
    )
    keys = KeyRing(
        SqlKeys(database, key_cipher(config)), clock, access_token_ttl=config.access_token_ttl
    )
    minter = TokenMinter(config, token_repo, keys, clock)
    id_tokens = IdTokenMinter(config, keys)
    verifier = AccessTokenVerifier(config, keys, revocations, clock)
    clients = ClientService(config, client_repo, clock)
    user_repo = SqlUsers(database)
    throttle = SignInThrottle(config, limiter, SqlDeviceCookies(database))
    browser_sessions = SqlBrowserSessions(database)
    accounts = AccountService(
        config, user_repo, device_repo, browser_sessions, throttle, auditor, transaction, clock
    )
    device_grant = DeviceGrant(
        config,
        store,
        clients,
        token_repo,
        device_repo,
        minter,
        id_tokens,
        revocations,
        limiter,
        auditor,
        transaction,
        clock,
    )
    refresh_grant = RefreshGrant(
        config,
        clients,
        token_repo,
        user_repo,
        minter,
        id_tokens,
        revocations,
        auditor,
        transaction,
        clock,
    )
    grants: list[Grant] = [device_grant, refresh_grant]
    verifier_of_external = ExternalTokenVerifier(config, clock, jwks_fetch)
    if verifier_of_external.enabled:  # RFC 8693, for the trusted identity providers only
        grants.append(
            TokenExchangeGrant(
                config,
                clients,
                verifier_of_external,
                SqlExternalIdentities(database),
                accounts,
                auditor,
                transaction,
                clock,
            )
        )
    qr_links = QrLinks(replay_cache, clock)
    approvals = Approvals(
        config,
        store,
        clients,
        accounts,
        limiter,
        auditor,
        transaction,
        clock,
        RequesterFacts(token_repo),
        qr_links,
    )
    status_channel = StatusChannel(config, store, clients, auditor, clock, qr_links)
    code_repo = SqlAuthorizationCodes(database)
    authorizations = Authorizations(
        config,
        clients,
        device_grant,
        status_channel,
        code_repo,
        browser_sessions,
        device_repo,
        token_repo,
        id_tokens,
        revocations,
        auditor,
        transaction,
        clock,
    )
    code_grant = AuthorizationCodeGrant(
        config,
        clients,
        code_repo,
        token_repo,
        device_repo,
        minter,
        id_tokens,
        revocations,
        auditor,
        transaction,
        clock,
    )
    lifecycle = TokenLifecycle(config, token_repo, clients, accounts, verifier, revocations, clock)
    admin_auth = AdminAuth(config, SqlAdmins(database), throttle, auditor, transaction, clock)
    administration = Administration(
        token_repo, clients, accounts, approvals, revocations, auditor, transaction, clock
    )
    return Services(
        config=config,
        database=database,
        redis=client,
        flow_store=store,
        keys=keys,
        minter=minter,
        id_tokens=id_tokens,
        verifier=verifier,
        dpop=DpopProofs(config, replay_cache, clock),
        revocations=revocations,
        auditor=auditor,
        clients=clients,
        accounts=accounts,
        device_grant=device_grant,
        status_channel=status_channel,
        approvals=approvals,
        logins=PhoneLogins(
            accounts, token_repo, device_repo, clients, revocations, auditor, transaction, clock
        ),
        authorizations=authorizations,
        token_endpoint=TokenEndpoint([code_grant, *grants]),
        lifecycle=lifecycle,
        admin_auth=admin_auth,
        administration=administration,
    )
