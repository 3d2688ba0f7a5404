"""Real `authserver` processes for the fault tests, with short timeouts and killable workers.

Spawning and the test settings are tests/e2e/conftest.py's; this adds what faults need:
the settings that make a 2 s fault show what a 20 s one would, and the server's worker
processes, found through /proc (children of the spawned process, and the one that owns a
given TCP connection), whichever HTTP server runs them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.e2e.conftest import (
    DEMO_PASSWORD,
    DEMO_USERNAME,
    METADATA_PATH,
    _demo_output,
    _free_port,
    _server_env,
    _spawn,
)
from tests.faults.processes import age, descendants, tcp_connection_owner, wait_gone

# Every dependency wait of the server under test is bounded by 1 s (core-design.md's
# settings), so an answer during a fault arrives in about a second however long the fault.
DEPENDENCY_TIMEOUT = 1
# The claim on an approved flow lapses after this many seconds if it never issued; the server
# requires at least pool + connect + statement timeouts (3 s here).
REDEMPTION_LEASE = 4
FAULT_SETTINGS: dict[str, str] = {
    "AUTHSERVER_REDIS_TIMEOUT": str(DEPENDENCY_TIMEOUT),
    "AUTHSERVER_SQL_CONNECT_TIMEOUT": str(DEPENDENCY_TIMEOUT),
    "AUTHSERVER_SQL_STATEMENT_TIMEOUT": str(DEPENDENCY_TIMEOUT),
    "AUTHSERVER_SQL_LOCK_TIMEOUT": str(DEPENDENCY_TIMEOUT),
    "AUTHSERVER_SQL_POOL_TIMEOUT": str(DEPENDENCY_TIMEOUT),
    "AUTHSERVER_REDEMPTION_LEASE": str(REDEMPTION_LEASE),
    "AUTHSERVER_REFRESH_GRACE": "30",
    # Long-polls and SQL users hold a thread each: together below the servers' THREADS, so
    # the SQL-free paths always find one.
    "AUTHSERVER_STATUS_MAX_WAITERS": "2",
    "AUTHSERVER_SQL_MAX_THREADS": "3",
    "AUTHSERVER_STATUS_MAX_WAIT": "5",
    # The suite starts many flows from one address; the limit is not under test here.
    "AUTHSERVER_DEVICE_AUTHORIZATIONS_PER_MINUTE": "100000",
    # Small, so a sign-in counter that moved during an outage shows at once; the tests that
    # count sign-ins come from addresses of their own (X-Forwarded-For, one trusted hop), so
    # what they leave in the per-address window never blocks the others.
    "AUTHSERVER_LOGIN_ATTEMPTS": "3",
    "AUTHSERVER_TRUSTED_PROXIES": "1",
    # Every test signs a phone in: a third of the default scrypt work keeps that cheap.
    "AUTHSERVER_SCRYPT_P": "1",
}
# Few threads per worker, so requests that wait for a hung dependency could take them all
# quickly: what the SQL-free paths must survive.
THREADS = 6
READY_TIMEOUT = 20.0
KILL_SPACING = 6.5  # see FaultServer.space_kills


@dataclass
class FaultServer:
    """A running `authserver` and what the tests registered on it."""

    process: subprocess.Popen[bytes]
    base_url: str
    port: int
    workdir: Path
    env: dict[str, str]
    client_id: str  # a public PC client (RFC 8628 §5.6)
    username: str
    password: str
    kind: str  # "embedded" or "redis+postgres"
    http_workers: int  # worker processes it was started with
    resource_server: tuple[str, str] | None = None  # (client_id, secret) that may introspect

    @property
    def log_text(self) -> str:
        return (self.workdir / "server.err").read_text(errors="replace")

    def create_user(self, display_name: str = "Fault Tester") -> tuple[str, str]:
        """A new user (username, password), registered through the server's own services."""
        from authserver.bootstrap import build_services
        from authserver.config import Config

        username, password = f"u-{uuid.uuid4().hex[:8]}", "correct horse battery"
        services = build_services(Config.from_env(self.env))
        try:
            services.accounts.create_user(username, password, display_name)
        finally:
            services.close()
        return username, password

    # --- its processes ------------------------------------------------------------------------
    def workers(self) -> list[int]:
        """Every process below the one we spawned (the HTTP server's workers)."""
        return descendants(self.process.pid)

    def worker_serving(self, client_port: int) -> int | None:
        """The process holding the test's HTTP connection from local port `client_port`."""
        return tcp_connection_owner(self.port, client_port, self._processes())

    def worker_behind(self, dependency_port: int, local_port: int) -> int | None:
        """The process whose connection from `local_port` goes to `dependency_port` (e.g. a
        proxy's: FaultProxy's Link.peer[1] is that local port)."""
        return tcp_connection_owner(local_port, dependency_port, self._processes())

    def _processes(self) -> list[int]:
        return [self.process.pid, *self.workers()]

    def kill(self, pid: int) -> None:
        """SIGKILL one of this server's processes, as the OOM killer or a crash would."""
        assert pid in self._processes(), f"{pid} is not a process of this server"
        os.kill(pid, signal.SIGKILL)
        wait_gone([pid])

    def space_kills(self) -> None:
        """Wait until every worker runs and is KILL_SPACING seconds old, before a scenario
        that kills.

        granian takes a worker that dies within 5.5 s of its (re)start for a crash loop and
        shuts the whole server down; each scenario here is about one death, so a worker is
        only killed once it is older than that, counted from its own start (a respawn on a
        busy machine may start well after the kill that caused it). Two real crashes that
        close would stop the server: run it under a supervisor (README, "Serving").
        """
        deadline = time.monotonic() + READY_TIMEOUT + KILL_SPACING
        while True:
            ages = [a for a in map(age, self.workers()) if a is not None]
            if len(ages) >= self.http_workers and min(ages) >= KILL_SPACING:
                return  # every worker runs, and is old enough
            assert time.monotonic() < deadline, f"workers {self.workers()} never settled"
            time.sleep(0.1 if len(ages) < self.http_workers else KILL_SPACING - min(ages))

    def wait_answering(self, timeout: float = READY_TIMEOUT) -> None:
        """Until the metadata answers again on fresh connections (e.g. a worker respawned)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = requests.get(
                    self.base_url + METADATA_PATH, timeout=2, headers={"Connection": "close"}
                )
                if answer.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"server not answering again:\n{self.log_text[-3000:]}")
            time.sleep(0.05)


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, workdir: Path) -> None:
    """Until the metadata answers 200. Unlike tests/e2e's, a slow first answer (a worker
    still importing on a busy machine) is waited for, not a failure."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            log = (workdir / "server.err").read_text(errors="replace")
            raise AssertionError(f"server exited with {process.returncode}:\n{log[-3000:]}")
        try:
            if requests.get(base_url + METADATA_PATH, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            log = (workdir / "server.err").read_text(errors="replace")
            raise AssertionError(f"server not ready after {READY_TIMEOUT} s:\n{log[-3000:]}")
        time.sleep(0.05)


def _prepare(env: dict[str, str], *, upgrade: bool) -> tuple[str, str, str, tuple[str, str]]:
    """Migrate, then register a public client, a user and a resource-server client.

    In this process through the server's own services: three `authserver` commands would cost
    a Python start-up each, seconds on a busy 2-core machine.
    """
    from authserver.bootstrap import build_services
    from authserver.config import Config
    from authserver.domain.models import ClientKind

    services = build_services(Config.from_env(env))
    try:
        if upgrade:
            services.database.upgrade()
        client, _ = services.clients.create("Fault PC", confidential=False, scope=None)
        resource, secret = services.clients.create(
            "Fault API", confidential=True, scope=None, kind=ClientKind.RESOURCE_SERVER
        )
        username, password = f"u-{uuid.uuid4().hex[:8]}", "correct horse battery"
        services.accounts.create_user(username, password, "Fay Ult")
    finally:
        services.close()
    return client.client_id, username, password, (resource.client_id, secret)


def _halt(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server's process group (its own session): a graceful stop would wait for
    long-polls and keep-alive connections, and nothing here depends on one."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def serve(
    workdir: Path,
    *,
    database_url: str,
    redis_url: str,
    setup_database_url: str | None = None,
    workers: int = 2,
    settings: dict[str, str] | None = None,
) -> Iterator[FaultServer]:
    """`authserver serve --workers N` on these URLs, on a freshly migrated database.

    `setup_database_url`: where the test process migrates and registers (e.g. the database
    directly while the server goes through a proxy).
    """
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _server_env(
        workdir,
        AUTHSERVER_DATABASE_URL=database_url,
        AUTHSERVER_REDIS_URL=redis_url,
        AUTHSERVER_REDIS_PREFIX=f"faults:{uuid.uuid4().hex[:8]}:",
        **{**FAULT_SETTINGS, **(settings or {})},
    )
    setup_env = {**env, "AUTHSERVER_DATABASE_URL": setup_database_url or database_url}
    client_id, username, password, resource_server = _prepare(setup_env, upgrade=True)
    args = ["serve", "--port", str(port), "--workers", str(workers), "--threads", str(THREADS)]
    process = _spawn(args, env, workdir)
    try:
        _wait_ready(process, base_url, workdir)
        yield FaultServer(
            process, base_url, port, workdir, env, client_id, username, password,
            "redis+postgres", workers, resource_server,
        )  # fmt: skip
    finally:
        _halt(process)


@contextmanager
def demo(workdir: Path, settings: dict[str, str] | None = None) -> Iterator[FaultServer]:
    """`authserver demo`: the embedded default (SQLite file, in-process flow store)."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _server_env(
        workdir,
        AUTHSERVER_DATABASE_URL=f"sqlite:///{workdir / 'authserver.db'}",
        **{**FAULT_SETTINGS, **(settings or {})},
    )
    args = ["demo", "--port", str(port), "--threads", str(THREADS)]
    process = _spawn(args, env, workdir)
    try:
        _wait_ready(process, base_url, workdir)
        client_id = str(_demo_output(workdir)["demo_client_id"])
        yield FaultServer(
            process, base_url, port, workdir, env, client_id, DEMO_USERNAME, DEMO_PASSWORD,
            "embedded", 1,
        )  # fmt: skip
    finally:
        _halt(process)
