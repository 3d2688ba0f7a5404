"""Every wait on the database is bounded, and SQL cannot take every thread of a worker.

PostgreSQL gets, per connection: a connect timeout, server-side statement, lock and
idle-in-transaction timeouts, TCP keepalives and a TCP user timeout (libpq parameters, so no
extra round trip). None of these helps against a server that hangs (SIGSTOP, a frozen VM): it
fires no timeout of its own and its kernel still acknowledges every packet. So each round trip
is also bounded client-side: psycopg (>= 3.3.6) waits for the server through
`Connection.wait(gen, interval, timeout)`, and BoundedConnection gives every wait a timeout a
moment longer than the server's statement timeout (the server gets to report its own timeout
first). When that runs out the connection is closed (the protocol stopped mid-message, it
cannot be reused), and SQLAlchemy invalidates it like any lost connection. That covers
everything that waits for the server: statements, COMMIT, ROLLBACK and the pool's pre-ping.

The wait for a free connection is bounded by AUTHSERVER_SQL_POOL_TIMEOUT, and GuardedQueuePool
admits a thread into the pool (waiting for or holding a connection) only while
- the circuit breaker is closed: after a round trip or a connect timed out, the database is not
  asked again for a short cool-off; then one probe goes through (storage/isolation.py). A
  refused connection fails at once by itself: it does not open the breaker;
- fewer than AUTHSERVER_SQL_MAX_THREADS threads are already inside.
Otherwise the thread gets TemporarilyUnavailable (503, Retry-After) at once, so a hung
database holds at most that many threads and the SQL-free paths (pending poll, status channel,
resource check) keep the rest.

SQLite (the embedded default) is a local file: it keeps its busy_timeout (database.py) and
gets the pool bounds and the bulkhead; there is no server to time out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg.abc import PQGen
from psycopg.errors import _WaitTimeout  # what Connection.wait raises when its timeout ends
from psycopg.rows import TupleRow
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from authserver.domain.errors import TemporarilyUnavailable
from authserver.storage.isolation import Bulkhead, CircuitBreaker

if TYPE_CHECKING:
    from authserver.config import Config

RV = TypeVar("RV")

MAX_COOLOFF = 2.0  # seconds the breaker answers at once before it lets a probe through
IDLE_IN_TRANSACTION_MIN = 10.0  # seconds a transaction may idle before the server ends it
# TCP keepalives: a connection idle in the pool whose peer vanished (a network partition, a
# host gone) is found dead within about idle + the TCP user timeout.
KEEPALIVES_IDLE, KEEPALIVES_INTERVAL, KEEPALIVES_COUNT = 10, 5, 3


@dataclass(frozen=True)
class SqlLimits:
    """The bounds of every wait on the database (seconds) and of the threads that wait."""

    connect_timeout: float = 3.0
    statement_timeout: float = 5.0
    lock_timeout: float = 2.0
    pool_timeout: float = 2.0
    pool_size: int = 5
    pool_overflow: int = 5
    max_threads: int = 12

    @classmethod
    def from_config(cls, config: Config) -> SqlLimits:
        return cls(
            connect_timeout=config.sql_connect_timeout,
            statement_timeout=config.sql_statement_timeout,
            lock_timeout=config.sql_lock_timeout,
            pool_timeout=config.sql_pool_timeout,
            pool_size=config.sql_pool_size,
            pool_overflow=config.sql_pool_overflow,
            max_threads=config.sql_max_threads,
        )

    @property
    def libpq_connect_timeout(self) -> int:
        """libpq counts the connect timeout in whole seconds and makes anything below 2 be 2."""
        return max(2, math.ceil(self.connect_timeout))

    @property
    def round_trip_timeout(self) -> float:
        """How long a round trip may wait for the server before the connection is cut off.

        The statement timeout plus half of it (at most 1 s), so a live server reports its own
        statement timeout first and keeps the connection.
        """
        return self.statement_timeout + min(1.0, self.statement_timeout / 2)

    @property
    def idle_in_transaction_timeout(self) -> float:
        """A transaction left open (its worker frozen or cut off) releases its locks after this."""
        return max(IDLE_IN_TRANSACTION_MIN, 2 * self.statement_timeout)

    @property
    def cooloff(self) -> float:
        return min(MAX_COOLOFF, self.statement_timeout)

    @property
    def probe_window(self) -> float:
        """The longest one checkout can take: pool wait, connect, pre-ping and a statement."""
        return self.pool_timeout + self.libpq_connect_timeout + 2 * self.round_trip_timeout


@dataclass(frozen=True)
class SqlGuard:
    """The breaker and the bulkhead in front of one database."""

    breaker: CircuitBreaker
    bulkhead: Bulkhead

    def enter(self) -> None:
        """Admit this thread into the pool, or raise TemporarilyUnavailable at once."""
        self.breaker.admit()
        try:
            self.bulkhead.enter()
        except TemporarilyUnavailable:
            self.breaker.released()
            raise

    def leave(self) -> None:
        # A probe that got no round trip done (its pool wait timed out, its request needed no
        # SQL after all) hands the turn on instead of holding it for the whole probe window.
        self.breaker.released()
        self.bulkhead.leave()


class GuardedQueuePool(QueuePool):
    """A QueuePool whose threads pass the SqlGuard first, from checkout to checkin.

    QueuePool pairs every record `_do_get` hands out with one `_do_return_conn` (on checkin,
    and on a checkout that failed after it), so those two bracket a thread's time inside.
    """

    guard: SqlGuard | None = None  # set by bounded_engine; carried over by recreate()

    def _do_get(self) -> ConnectionPoolEntry:
        if self.guard is None:
            return super()._do_get()
        self.guard.enter()
        try:
            return super()._do_get()
        except BaseException:
            self.guard.leave()
            raise

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            if self.guard is not None:
                self.guard.leave()

    def recreate(self) -> QueuePool:
        # Engine.dispose() replaces the pool; connections still out come back to the old
        # one, so both must count against the same guard.
        pool = super().recreate()
        assert isinstance(pool, GuardedQueuePool)
        pool.guard = self.guard
        return pool


class BoundedConnection(psycopg.Connection[TupleRow]):
    """A psycopg connection that waits for the server at most `round_trip_timeout` per wait."""

    _round_trip_timeout: float | None = None
    _breaker: CircuitBreaker | None = None

    def bound(self, round_trip_timeout: float, breaker: CircuitBreaker) -> None:
        self._round_trip_timeout = round_trip_timeout
        self._breaker = breaker

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        bound, breaker = self._round_trip_timeout, self._breaker
        if bound is None or breaker is None or timeout is not None:
            # Not bound yet, or the caller chose its own timeout (e.g. notifies()).
            return super().wait(gen, interval, timeout)
        try:
            result = super().wait(gen, interval, bound)
        except _WaitTimeout:
            # The server stopped answering mid-exchange: close, so SQLAlchemy sees a lost
            # connection (is_disconnect: closed) and invalidates it instead of reusing it.
            self.close()
            breaker.failed()
            raise psycopg.OperationalError(
                f"no answer from the database server within {bound:g} s; connection closed"
            ) from None
        except BaseException:
            # A connection lost at once (reset, the server restarted) says nothing about the
            # server: the reconnect that follows does.
            breaker.released()
            raise
        breaker.succeeded()
        return result


class BoundedPsycopg:
    """psycopg as SQLAlchemy's DBAPI module (create_engine's `module=`), connecting bounded.

    Everything is psycopg's except connect(): it opens a BoundedConnection with the timeouts
    and keepalives, admitted by the breaker and reporting to it. Being the DBAPI's connect (not
    a do_connect listener that returns a connection), it runs after every do_connect listener
    has had its say about the parameters.
    """

    def __init__(self, limits: SqlLimits, breaker: CircuitBreaker) -> None:
        self._limits = limits
        self._breaker = breaker
        ms = [
            ("statement_timeout", limits.statement_timeout),
            ("lock_timeout", limits.lock_timeout),
            ("idle_in_transaction_session_timeout", limits.idle_in_transaction_timeout),
        ]
        self._options = " ".join(f"-c {name}={max(1, round(s * 1000))}" for name, s in ms)
        self._params: dict[str, Any] = {
            "connect_timeout": limits.libpq_connect_timeout,
            "keepalives": 1,
            "keepalives_idle": KEEPALIVES_IDLE,
            "keepalives_interval": KEEPALIVES_INTERVAL,
            "keepalives_count": KEEPALIVES_COUNT,
            # Sent data unacknowledged this long (a partition, not a pause) drops the connection.
            "tcp_user_timeout": math.ceil(limits.round_trip_timeout * 1000),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(psycopg, name)

    def connect(self, *cargs: Any, **cparams: Any) -> BoundedConnection:
        self._breaker.admit()  # a reconnect after a failed pre-ping is asked again
        params = {**self._params, **cparams}  # what the URL says wins
        # Ours first, the URL's after: libpq applies the last -c of a name.
        params["options"] = " ".join(filter(None, [self._options, cparams.get("options")]))
        try:
            connection = BoundedConnection.connect(*cargs, **params)
        except psycopg.errors.ConnectionTimeout:
            self._breaker.failed()
            raise
        except BaseException:
            # Refused, reset, too many connections: answered at once, nobody waited.
            self._breaker.released()
            raise
        connection.bound(self._limits.round_trip_timeout, self._breaker)
        self._breaker.succeeded()
        return connection


def bounded_engine(url: str, limits: SqlLimits, **options: Any) -> sa.Engine:
    """create_engine for `url` with every wait bounded by `limits` (see the module docstring)."""
    parsed = sa.make_url(url)
    dialect: Any = parsed.get_dialect()  # get_pool_class is DefaultDialect's, untyped on Dialect
    if not issubclass(dialect.get_pool_class(parsed), QueuePool):
        # e.g. an in-memory SQLite database: one connection per thread, nothing to wait for.
        return sa.create_engine(url, **options)
    name = "database"  # what a 503 says is unavailable: no product or host names
    breaker = CircuitBreaker(name, limits.cooloff, limits.probe_window)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        options = {**options, "module": BoundedPsycopg(limits, breaker)}
    engine = sa.create_engine(
        url,
        poolclass=GuardedQueuePool,
        pool_size=limits.pool_size,
        max_overflow=limits.pool_overflow,
        pool_timeout=limits.pool_timeout,
        pool_pre_ping=True,  # bounded like every other round trip (BoundedConnection)
        **options,
    )
    assert isinstance(engine.pool, GuardedQueuePool)
    engine.pool.guard = SqlGuard(breaker, Bulkhead(name, limits.max_threads))
    return engine


def guard_of(engine: sa.Engine) -> SqlGuard | None:
    """The guard in front of `engine`'s pool, if it has one (for readiness probes and tests)."""
    return engine.pool.guard if isinstance(engine.pool, GuardedQueuePool) else None
