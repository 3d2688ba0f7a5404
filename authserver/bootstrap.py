"""The composition root: build the stores and services for a Config."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from authserver.config import Config
from authserver.domain.ports import FlowStore, RateLimiter, RevocationList
from authserver.services.accounts import AccountService
from authserver.services.admin import AdminAuth, Administration
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.flows import FlowService
from authserver.services.grants import GrantService
from authserver.services.lifecycle import TokenLifecycle
from authserver.services.revocation import Revocations
from authserver.services.tokens import AccessTokenVerifier, KeyRing, TokenMinter
from authserver.storage.flow_store_memory import (
    EmbeddedFlowStore,
    EmbeddedRateLimiter,
    EmbeddedRevocationList,
)
from authserver.storage.flow_store_redis import (
    RedisFlowStore,
    RedisRateLimiter,
    RedisRevocationList,
)
from authserver.storage.sql import (
    Database,
    SqlAdmins,
    SqlAuditLog,
    SqlClients,
    SqlKeys,
    SqlMobileDevices,
    SqlTokens,
    SqlUsers,
)


@dataclass
class Services:
    """Everything the web layer and the CLI call, built once per process."""

    config: Config
    database: Database
    redis: redis.Redis | None
    flow_store: FlowStore
    keys: KeyRing
    minter: TokenMinter
    verifier: AccessTokenVerifier
    revocations: Revocations
    auditor: Auditor
    clients: ClientService
    accounts: AccountService
    flows: FlowService
    grants: GrantService
    lifecycle: TokenLifecycle
    admin_auth: AdminAuth
    administration: Administration

    def close(self) -> None:
        self.database.dispose()
        if self.redis is not None:
            self.redis.close()


def wall_clock() -> float:
    """Unix seconds now; looked up per call so tests can freeze time (freezegun)."""
    return time.time()


def build_services(config: Config, clock: Callable[[], float] = wall_clock) -> Services:
    """Wire stores and services for `config`: Redis when configured, else the embedded store."""
    database = Database(config.database_url)
    client: redis.Redis | None = None
    store: FlowStore
    limiter: RateLimiter
    deny_list: RevocationList
    if config.redis_url:
        client = redis.Redis.from_url(
            config.redis_url,
            health_check_interval=30,
            socket_connect_timeout=5,
            socket_timeout=5,  # above the status channel's 1 s pub/sub reads
        )
        store = RedisFlowStore(client, config.redis_prefix)
        limiter = RedisRateLimiter(client, config.redis_prefix)
        deny_list = RedisRevocationList(client, config.redis_prefix)
    else:
        store, limiter = EmbeddedFlowStore(), EmbeddedRateLimiter()
        deny_list = EmbeddedRevocationList()
    client_repo, token_repo = SqlClients(database), SqlTokens(database)
    auditor = Auditor(SqlAuditLog(database), clock)
    revocations = Revocations(token_repo, deny_list, auditor, clock)
    keys = KeyRing(SqlKeys(database), clock, access_token_ttl=config.access_token_ttl)
    minter = TokenMinter(config, token_repo, keys, revocations, clock)
    verifier = AccessTokenVerifier(config, keys, revocations, clock)
    clients = ClientService(config, client_repo, clock)
    accounts = AccountService(
        config, SqlUsers(database), SqlMobileDevices(database), limiter, auditor, clock
    )
    flows = FlowService(
        config, store, clients, token_repo, accounts, minter, revocations, limiter, auditor, clock
    )
    grants = GrantService(clients, minter, auditor)
    lifecycle = TokenLifecycle(config, token_repo, clients, accounts, verifier, revocations, clock)
    admin_auth = AdminAuth(config, SqlAdmins(database), limiter, auditor, clock)
    administration = Administration(token_repo, clients, accounts, flows, revocations, auditor)
    return Services(
        config=config,
        database=database,
        redis=client,
        flow_store=store,
        keys=keys,
        minter=minter,
        verifier=verifier,
        revocations=revocations,
        auditor=auditor,
        clients=clients,
        accounts=accounts,
        flows=flows,
        grants=grants,
        lifecycle=lifecycle,
        admin_auth=admin_auth,
        administration=administration,
    )
