"""One `authserver serve` of one build on one backend, with fresh data, pinned to a core.

Fresh data: a new SQLite file in a temporary directory, or a new schema on the shared
PostgreSQL database `test` plus a key prefix of its own on the shared Redis (db 12). The
shared services are never flushed or reconfigured; on stop the schema is dropped and the
prefix's keys deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import redis
import sqlalchemy as sa

from bench import httpclient, procstat

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/12"
POLL_INTERVAL = 1  # seconds (RFC 8628 §3.2 interval) the servers run with
PHONE_PASSWORD = "bench phone password 1"  # a throwaway account on a throwaway database

# Settings both builds get. Only settings the oldest build to compare understands, passed the
# only way every build reads them (environment variables; a build ignores one it does not
# know). Set for the scenarios, not for speed:
SETTINGS = {
    # pending polls every second per code are accepted (RFC 8628 §3.5 slow_down otherwise)
    "AUTHSERVER_POLL_INTERVAL": str(POLL_INTERVAL),
    # the poll pool and the warm-up's codes stay valid over a long interleaved run
    "AUTHSERVER_DEVICE_CODE_TTL": "3600",
    # every device authorization comes from one client and one IP
    "AUTHSERVER_DEVICE_AUTHORIZATIONS_PER_MINUTE": "1000000000",
    # many phones scan from one IP at once; each attempt is counted while it runs
    "AUTHSERVER_USER_CODE_ATTEMPTS_PER_IP": "1000000000",
    "AUTHSERVER_USER_CODE_ATTEMPTS": "1000000000",
    # cheap password hashes for the bench users (their sign-in is outside the measurement)
    "AUTHSERVER_SCRYPT_P": "1",
}


class Backend(StrEnum):
    """Where flows, rate limits and rows live."""

    EMBEDDED = "embedded"  # SQLite file + in-process flow store (the default install)
    REDIS = "redis"  # PostgreSQL + Redis


@dataclass(frozen=True)
class Build:
    """A version of the server to measure: a label and the venv bin/ holding `authserver`."""

    label: str
    bin_dir: Path


@dataclass(frozen=True)
class Phone:
    device_id: str
    device_token: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A running server with a client, signed-in phones and its own scratch directory."""

    def __init__(
        self,
        build: Build,
        backend: Backend,
        *,
        workers: int,
        threads: int,
        phones: int,
        cpu: int,
    ) -> None:
        self.build = build
        self.backend = backend
        self.workdir = Path(tempfile.mkdtemp(prefix="authserver-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = ""
        self.phones: list[Phone] = []
        self._workers = workers
        self._threads = threads
        self._phone_count = phones
        self.cpu = cpu  # the core it is pinned to
        self._process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self._schema = f"bench_{uuid.uuid4().hex[:10]}"
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
        self._env.update(SETTINGS)
        self._env["AUTHSERVER_DATABASE_URL"] = f"sqlite:///{self.workdir}/bench.db"
        self._admin: sa.Engine | None = None  # on the shared database (Redis backend)
        if backend is Backend.REDIS:
            self._env["AUTHSERVER_DATABASE_URL"] = (
                f"{POSTGRES_URL}?options=-csearch_path%3D{self._schema}"
                f"&application_name={self._schema}"
            )
            self._env["AUTHSERVER_REDIS_URL"] = REDIS_URL
            self._env["AUTHSERVER_REDIS_PREFIX"] = f"{self._schema}:"

    # --- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Fresh data, `db upgrade`, a client and users by the CLI, serve, sign phones in."""
        if self.backend is Backend.REDIS:
            self._admin = sa.create_engine(POSTGRES_URL)
            with self._admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{self._schema}"'))
        self._cli("db", "upgrade")
        self.client_id = self._cli("clients", "create", "--name", "bench PC")["client_id"]
        usernames = [f"bench{n}" for n in range(self._phone_count)]
        # Setup only: two at a time, one per core.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(self._create_user, usernames))
        self._log = (self.workdir / "server.log").open("wb")
        self._process = subprocess.Popen(
            [
                "taskset",
                "-c",
                str(self.cpu),
                str(self.build.bin_dir / "authserver"),
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self._workers),
                "--threads",
                str(self._threads),
            ],
            env=self._env,
            stdout=subprocess.DEVNULL,  # gunicorn's access log
            stderr=self._log,
        )
        process = self._process
        try:
            httpclient.wait_until_serving(self.port, alive=lambda: process.poll() is None)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; its log ends:\n{self.server_log_tail()}") from None
        self.phones = [
            Phone(
                f"phone-{name}",
                httpclient.sign_in_phone(self.port, name, PHONE_PASSWORD, f"phone-{name}"),
            )
            for name in usernames
        ]
        (self.workdir / "phones.txt").write_text(
            "".join(f"{p.device_id} {p.device_token}\n" for p in self.phones)
        )

    def stop(self) -> None:
        """Stop the server, drop its schema, delete its Redis keys and its scratch files."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.backend is Backend.REDIS:
            r = redis.Redis.from_url(REDIS_URL)
            batch: list[bytes] = []
            for key in r.scan_iter(match=f"{self._schema}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    r.delete(*batch)
                    batch.clear()
            if batch:
                r.delete(*batch)
            r.close()
            if self._admin is not None:
                with self._admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE'))
                self._admin.dispose()
                self._admin = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- what a measurement reads ---------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def phones_file(self) -> Path:
        return self.workdir / "phones.txt"

    def cpu_seconds(self) -> float:
        """CPU time of the server: its process and every worker."""
        return procstat.tree_cpu_seconds(self.pid)

    def database_cpu(self) -> dict[int, float]:
        """CPU seconds of each PostgreSQL backend serving this server (empty on SQLite)."""
        if self._admin is None:
            return {}
        with self._admin.connect() as conn:
            pids = conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": self._schema},
            ).scalars()
            return procstat.cpu_by_pid(list(pids))

    def server_log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "server.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    # --- set-up helpers -------------------------------------------------------------------
    def _cli(self, *args: str, stdin: str | None = None) -> dict[str, Any]:
        done = subprocess.run(
            [str(self.build.bin_dir / "authserver"), *args],
            env=self._env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"authserver {' '.join(args)}: {done.stderr.strip()}")
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def _create_user(self, username: str) -> None:
        self._cli("users", "create", username, "--password-stdin", stdin=PHONE_PASSWORD + "\n")
