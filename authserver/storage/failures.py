"""Which infrastructure failures mean "a dependency is unavailable", and the probes that ask.

The one place that knows the exception classes of Redis, SQLAlchemy, psycopg and sqlite3:
the web layer asks `is_unavailable(exc)` and answers 503 temporarily_unavailable with
Retry-After (the client retries) instead of a 500 (a bug, logged with its trace). Only failures
that say nothing about the request qualify: the dependency cannot be reached, timed out, is
starting, shutting down, full or read-only during a fail-over, or gave up on a lock or a
conflicting transaction that a retry can win. A malformed query, a constraint violation or a
missing table stays a 500.

`database_revision` and `redis_ping` are the readiness probes of web/health.py.
"""

from __future__ import annotations

import sqlite3
from functools import cache

import psycopg
import redis
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

# redis-py: every ConnectionError (refused, reset, DNS, AUTH failures, the pool's
# MaxConnectionsError, BusyLoadingError while Redis loads its data set) and TimeoutError; and
# the answers of a Redis that is failing over or full: READONLY (a replica promoted late),
# MASTERDOWN, TRYAGAIN, CLUSTERDOWN, OOM.
_REDIS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.OutOfMemoryError,
)

# SQLAlchemy's own: the pool's checkout timed out (every connection busy), or a pooled
# connection was found dead.
_SQLALCHEMY = (sa_exc.TimeoutError, sa_exc.DisconnectionError)

# sqlite3 primary result codes (https://sqlite.org/rescode.html) that a retry can clear:
# BUSY and LOCKED (another writer), IOERR, FULL, CANTOPEN, PROTOCOL. Anything else sqlite3
# calls OperationalError (no such table, a syntax error) is a bug or a missing migration.
_SQLITE_TRANSIENT = {5, 6, 10, 13, 14, 15}

_MAX_CAUSES = 8  # how far `raise ... from exc` chains are followed


def is_unavailable(exc: BaseException) -> bool:
    """True if `exc`, or an exception it was explicitly raised from, means a dependency is down.

    psycopg's OperationalError covers a refused or lost connection, a server shutting down,
    too many connections, statement and lock timeouts (QueryCanceled, LockNotAvailable),
    serialization failures and deadlocks (SQLSTATE classes 08, 53, 57, 40, 55P03).
    """
    seen: BaseException | None = exc
    for _ in range(_MAX_CAUSES):
        if seen is None:
            return False
        if _is_unavailable_itself(seen):
            return True
        seen = seen.__cause__  # an explicit `raise X from exc`, never an accidental context
    return False


def _is_unavailable_itself(exc: BaseException) -> bool:
    if isinstance(exc, (*_REDIS, *_SQLALCHEMY, psycopg.OperationalError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        # SQLAlchemy marks a DBAPI error that its dialect recognised as a disconnect.
        if exc.connection_invalidated:
            return True
        return exc.orig is not None and _is_unavailable_itself(exc.orig)
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and (code & 0xFF) in _SQLITE_TRANSIENT
    return False


def describe(exc: BaseException) -> str:
    """The failure for a log line: exception classes and the first line of the message.

    No trace (an outage would log thousands); a DBAPI error's message names the host and
    the statement, never its parameters (the engine hides them) or a password.
    """
    parts = [type(exc).__name__]
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        parts.append(f"{type(orig).__module__}.{type(orig).__name__}")
    message = str(orig if isinstance(orig, BaseException) else exc).strip()
    first_line = message.splitlines()[0][:200] if message else ""
    return f"{' / '.join(parts)}: {first_line}" if first_line else " / ".join(parts)


# --- Readiness probes -----------------------------------------------------------------------
def database_revision(engine: sa.Engine) -> str | None:
    """The Alembic revision the database is at (two small queries); raises if unreachable."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        revision: str | None = MigrationContext.configure(conn).get_current_revision()
        return revision


@cache
def code_revision() -> str | None:
    """The head revision of the code's migrations (read once: it cannot change while running)."""
    from alembic.script import ScriptDirectory

    from authserver.storage.sql.database import alembic_config

    head: str | None = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    return head


def redis_ping(client: redis.Redis) -> None:
    """PING; raises a redis error if Redis does not answer."""
    client.ping()
