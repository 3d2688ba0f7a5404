"""Real dependency faults for HTTP tests: the drivers fail as they do against a dead server.

`sql_down` sends the engine's new connections to a closed port (PostgreSQL) or to a file that
cannot be opened (SQLite); `redis_down` sends the Redis client's to a closed port. Both undo
themselves, so a test can show recovery without a restart.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry

from authserver.bootstrap import Services


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def sql_down(services: Services) -> Iterator[None]:
    """Every new SQL connection fails as the driver fails against a dead server."""
    engine = services.database.engine
    port = closed_port()

    def dead_server(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        if engine.dialect.name == "sqlite":
            cargs[0] = "/nonexistent-dir/authserver.db"  # sqlite3: unable to open (CANTOPEN)
        else:
            cparams.update(host="127.0.0.1", port=port, connect_timeout=2)  # refused

    engine.dispose()  # no pooled connection survives the outage
    sa.event.listen(engine, "do_connect", dead_server)
    try:
        yield
    finally:
        sa.event.remove(engine, "do_connect", dead_server)
        engine.dispose()


@contextmanager
def redis_down(services: Services) -> Iterator[None]:
    """Every Redis command fails as redis-py fails against a closed port (no retries)."""
    client = services.redis
    assert client is not None
    pool = client.connection_pool
    saved = dict(pool.connection_kwargs)
    # A closed port, and no retries: redis-py's default retries wait seconds.
    pool.connection_kwargs.update(port=closed_port(), retry=Retry(NoBackoff(), 0))
    pool.reset()  # drop the live connections: new ones are made with the settings above
    try:
        yield
    finally:
        pool.connection_kwargs.clear()
        pool.connection_kwargs.update(saved)
        pool.reset()
