"""The composition root: build the stores and services for a Config."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from authserver.config import Config
from authserver.domain.ports import FlowStore, RateLimiter
from authserver.services.accounts import AccountService
from authserver.services.clients import ClientService
from authserver.services.flows import FlowService
from authserver.services.grants import GrantService
from authserver.services.tokens import KeyRing, TokenMinter
from authserver.storage.flow_store_memory import EmbeddedFlowStore, EmbeddedRateLimiter
from authserver.storage.flow_store_redis import RedisFlowStore, RedisRateLimiter
from authserver.storage.sql import (
    Database,
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
    clients: ClientService
    accounts: AccountService
    flows: FlowService
    grants: GrantService

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
    if config.redis_url:
        client = redis.Redis.from_url(
            config.redis_url,
            health_check_interval=30,
            socket_connect_timeout=5,
            socket_timeout=5,  # above the status channel's 1 s pub/sub reads
        )
        store = RedisFlowStore(client, config.redis_prefix)
        limiter = RedisRateLimiter(client, config.redis_prefix)
    else:
        store, limiter = EmbeddedFlowStore(), EmbeddedRateLimiter()
    client_repo, token_repo = SqlClients(database), SqlTokens(database)
    keys = KeyRing(SqlKeys(database), clock)
    minter = TokenMinter(config, token_repo, keys, clock)
    clients = ClientService(config, client_repo, clock)
    accounts = AccountService(
        config, SqlUsers(database), SqlMobileDevices(database), limiter, clock
    )
    flows = FlowService(config, store, clients, token_repo, minter, limiter, clock)
    grants = GrantService(clients, minter)
    return Services(config, database, client, store, keys, minter, clients, accounts, flows, grants)
