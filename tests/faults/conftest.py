"""Fixtures of the fault suite: private dependencies, proxies and the servers in front of them.

Costs are paid once: the private PostgreSQL cluster (initdb + start) and the
Redis + PostgreSQL stack (`authserver serve --workers 2` behind two FaultProxies) once per
session, the embedded `authserver demo` once per module that asks for it. Every test that
uses the stack gets it healed and serving first, and heals it again after, whatever the
test broke. Nothing here touches the machine's shared Redis or PostgreSQL.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, NoReturn

import psycopg
import pytest

from tests.conftest import _unavailable
from tests.faults.actors import authorize_on_some_worker
from tests.faults.dependencies import PrivatePostgres, PrivateRedis, Unavailable
from tests.faults.proxy import FaultProxy
from tests.faults.servers import FaultServer, demo, serve

SERVING_TIMEOUT = 15.0


def device_code_hash(device_code: str) -> str:
    """How the server keys a device code at rest (SHA-256, hex)."""
    return hashlib.sha256(device_code.encode()).hexdigest()


@dataclass
class Stack:
    """Two server processes on Redis and PostgreSQL, each dependency behind a FaultProxy.

    Faults on the real processes: `redis.pause()/kill()/restart()`, `postgres.pause()/...`;
    faults on the wire: `redis_proxy.pause()`, `postgres_proxy.hold_after(...)`, ...
    """

    server: FaultServer
    redis: PrivateRedis
    redis_proxy: FaultProxy
    postgres: PrivatePostgres
    postgres_proxy: FaultProxy
    database: str

    @contextmanager
    def outage(
        self, dependency: Literal["redis", "postgres"], fault: Literal["pause", "kill"]
    ) -> Iterator[None]:
        """`dependency` hung (SIGSTOP) or dead (SIGKILL) for the block, then resumed or
        restarted (Redis restarts empty)."""
        target: PrivateRedis | PrivatePostgres = (
            self.redis if dependency == "redis" else self.postgres
        )
        if fault == "pause":
            target.pause()
        else:
            target.kill()
        try:
            yield
        finally:
            if fault == "pause":
                target.resume()
            else:
                target.restart()

    def heal(self) -> None:
        """Both proxies passing, both dependencies running and answering."""
        self.redis_proxy.restore()
        self.postgres_proxy.restore()
        self.redis.heal()
        self.postgres.heal()

    def wait_serving(self, timeout: float = SERVING_TIMEOUT) -> None:
        """Until a round of concurrent device authorizations (Redis and SQL) all succeed and
        reach every worker process: each has its own connections and circuit breakers, and a
        worker still in its cool-off would answer the test's next step with a 503."""
        deadline = time.monotonic() + timeout
        calls = [partial(authorize_on_some_worker, self.server)] * (2 * self.server.http_workers)
        while True:
            with ThreadPoolExecutor(len(calls)) as pool:
                results = [future.result() for future in [pool.submit(c) for c in calls]]
            served = {worker for answer, worker in results if answer.status == 200}
            if all(answer.status == 200 for answer, _ in results) and (
                len(served - {None}) >= self.server.http_workers
            ):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not serving on every worker after healing: {[str(a) for a, _ in results]}"
                    f" (served by {served})\n{self.server.log_text[-3000:]}"
                )
            time.sleep(0.1)

    def families(self, device_code: str) -> list[tuple[str, float | None]]:
        """(id, revoked_at) of every token family issued for this device code, read straight
        from PostgreSQL (not through the proxy)."""
        with psycopg.connect(self.postgres.admin_url(self.database), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT id, revoked_at FROM token_families WHERE device_code_hash = %s",
                (device_code_hash(device_code),),
            ).fetchall()
        return [(str(row[0]), row[1]) for row in rows]


def _missing(what: str, why: Unavailable) -> NoReturn:
    """Skip, or under CI=true fail: a binary the suite needs is not installed."""
    _unavailable(what, why)
    raise AssertionError("unreachable: _unavailable skips or fails")


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the suite's own, started once (initdb costs seconds)."""
    try:
        postgres = PrivatePostgres()
    except Unavailable as exc:
        _missing("A private PostgreSQL", exc)
    try:
        postgres.init().start()
        yield postgres
    finally:
        postgres.stop()


def private_redis(workdir: Path) -> PrivateRedis:
    """A started private Redis in `workdir` (skip, or fail under CI, without redis-server)."""
    try:
        return PrivateRedis(workdir).start()
    except Unavailable as exc:
        _missing("A private Redis", exc)


@pytest.fixture(scope="session")
def stack(
    private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The Redis + PostgreSQL deployment with two worker processes, started once."""
    workdir = tmp_path_factory.mktemp("faults-stack")
    redis = private_redis(workdir)
    database = private_postgres.create_database()
    with FaultProxy(redis.port) as redis_proxy, FaultProxy(private_postgres.port) as pg_proxy:
        try:
            with serve(
                workdir,
                database_url=private_postgres.url(database, port=pg_proxy.port),
                setup_database_url=private_postgres.url(database),
                redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0",
            ) as server:
                yield Stack(server, redis, redis_proxy, private_postgres, pg_proxy, database)
        finally:
            redis.stop()


@pytest.fixture
def healthy_stack(stack: Stack) -> Iterator[Stack]:
    """The stack, healed and serving before the test and healed again after it."""
    stack.heal()
    stack.wait_serving()
    yield stack
    stack.heal()


@dataclass
class Embedded:
    """`authserver demo`: one worker, SQLite file, the in-process flow store."""

    server: FaultServer

    @property
    def database(self) -> Path:
        return self.server.workdir / "authserver.db"

    def families(self, device_code: str) -> list[tuple[str, float | None]]:
        with sqlite3.connect(self.database, timeout=5) as conn:
            rows = conn.execute(
                "SELECT id, revoked_at FROM token_families WHERE device_code_hash = ?",
                (device_code_hash(device_code),),
            ).fetchall()
        return [(str(row[0]), row[1]) for row in rows]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """The embedded default, started once per module."""
    with demo(tmp_path_factory.mktemp("faults-demo")) as server:
        yield Embedded(server)
