"""The database: its engine, sessions, and the Alembic migrations it is upgraded with."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from authserver.storage.sql.guard import SqlLimits, bounded_engine

# The top-level migrations/ folder, reached through the package's link to it (authserver/
# migrations), so the same path works from a checkout and from an installed wheel.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Any:
    """The Alembic configuration for this project's migrations and a given database."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig(stdout=sys.stdout)  # now, not the stream of Alembic's first import
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def _sqlite_pragmas(lock_timeout: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the one writer
        # Waiting for the one write lock is a lock wait: bounded by AUTHSERVER_SQL_LOCK_TIMEOUT,
        # after which "database is locked" is a 503 like any unavailable dependency.
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        cursor.close()
        # Transactions are begun by _sqlite_begin below, not implicitly by the driver.
        dbapi_connection.isolation_level = None

    return on_connect


def _sqlite_begin(conn: sa.Connection) -> None:
    # BEGIN IMMEDIATE takes SQLite's one write lock up front, so a unit of work that reads, checks
    # and then writes (a redemption re-checking its approval) is serialised against every other
    # writer, as row locks serialise it on PostgreSQL; a deferred BEGIN would fail at the write.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and session factory of one database URL, and its units of work."""

    def __init__(self, url: str, limits: SqlLimits | None = None) -> None:
        self.url = url
        # hide_parameters: a logged SQL error never carries the values it was called with.
        # bounded_engine: every wait is bounded, and SQL cannot take every thread (guard.py).
        limits = limits or SqlLimits()
        self.engine = bounded_engine(url, limits, hide_parameters=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas(limits.lock_timeout))
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # The unit of work this thread (or task) is inside, if any.
        self._current: ContextVar[Session | None] = ContextVar(f"uow-{id(self)}", default=None)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work across repositories: it commits once, at the end, or rolls back.

        Repositories called inside it join it (their session() is this one), so a step of a
        login and its audit rows commit together. A transaction inside another joins the outer.
        """
        outer = self._current.get()
        if outer is not None:
            yield outer
            return
        with self._sessions.begin() as session:
            token = self._current.set(session)
            try:
                yield session
            finally:
                self._current.reset(token)

    def session(self) -> AbstractContextManager[Session]:
        """What a repository works in: the caller's unit of work, or one of its own."""
        return self.transaction()

    def upgrade(self) -> None:
        """Alembic upgrade to head."""
        from alembic import command

        command.upgrade(alembic_config(self.url), "head")

    def schema_revision(self) -> tuple[str | None, str | None]:
        """(revision in the database, head revision of the code)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        return current, head

    def dispose(self) -> None:
        self.engine.dispose()
