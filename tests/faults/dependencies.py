"""Private Redis and PostgreSQL servers that a test may pause, kill and restart.

Never the machine's shared ones: each runs from its own directory on its own port (see
processes.PRIVATE_PORTS), and only the processes started here are ever signalled.

    pause()    SIGSTOP: connections stay open, nothing answers (a hung server)
    resume()   SIGCONT
    kill()     SIGKILL, the server and every child (Redis loses its data: no persistence)
    restart()  kill if still running, then start again on the same port
    heal()     whatever a test did, running and answering again (for fixtures)
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.faults.processes import (
    descendants,
    free_private_port,
    is_stopped,
    signal_all,
    wait_gone,
    wait_state,
)

START_TIMEOUT = 20.0


class Unavailable(RuntimeError):
    """A binary that a private dependency needs is not installed."""


def _answers_tcp(port: int, probe: bytes, expected: bytes, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(probe)
            return sock.recv(64).startswith(expected)
    except OSError:
        return False


class PrivateRedis:
    """`redis-server` without persistence on a private port, in its own directory."""

    def __init__(self, workdir: Path, binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise Unavailable("redis-server is not on PATH (apt-get install redis-server)")
        self.binary = found
        self.workdir = workdir
        self.port = free_private_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def start(self) -> PrivateRedis:
        log = (self.workdir / "redis.log").open("ab")
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_answering()
        return self

    def answers(self) -> bool:
        """True if a PING gets a PONG now."""
        return _answers_tcp(self.port, b"PING\r\n", b"+PONG")

    def wait_answering(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self._process is not None and self._process.poll() is not None:
                log = (self.workdir / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited: {log[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on {self.port} not answering")
            time.sleep(0.01)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        wait_state([self.pid], stopped=True)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        wait_state([self.pid], stopped=False)

    @property
    def paused(self) -> bool:
        return is_stopped(self.pid)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: every key is gone (no persistence), as after a crash of a cache."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.kill()  # a stopped process dies on SIGKILL too
        self._process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def heal(self) -> None:
        if self.running:
            self.resume()
            self.wait_answering()
        else:
            self.start()

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self.resume()
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)


def postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/*/bin with initdb and postgres."""
    override = os.environ.get("TEST_PG_BINDIR")
    candidates = [override] if override else glob.glob("/usr/lib/postgresql/*/bin")
    usable = [
        Path(path)
        for path in candidates
        if (Path(path) / "initdb").exists() and (Path(path) / "postgres").exists()
    ]
    if not usable:
        raise Unavailable(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql; or set TEST_PG_BINDIR)"
        )
    return max(usable, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)


class PrivatePostgres:
    """A PostgreSQL cluster of its own: initdb once, then start, pause, kill, restart.

    PostgreSQL refuses to run as root, so as root its commands run as the `postgres` OS user
    (subprocess's user=) in a temporary directory that user owns. Trust authentication, on
    127.0.0.1 and a unix socket in that directory only.
    """

    OS_USER = "postgres"

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        # PostgreSQL refuses to run as root: then every command runs as the postgres user.
        self._user = self.OS_USER if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="authserver-faults-pg-"))
        if self._user:
            shutil.chown(self.root, user=self._user)
        self.data = self.root / "data"
        self.port = free_private_port()
        self.initdb_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.root,
            user=self._user,
            group=self._user,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")

    def init(self) -> PrivatePostgres:
        started = time.monotonic()
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        self.initdb_seconds = time.monotonic() - started
        return self

    def start(self) -> PrivatePostgres:
        """Run the postmaster as our own child, so a killed one is reaped at once (a zombie
        postmaster would make its successor refuse the data directory)."""
        log = (self.root / "postgres.log").open("ab")
        self._process = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D", str(self.data),
                "-p", str(self.port),
                "-k", str(self.root),  # its unix socket here, not in /var/run/postgresql
                "-c", "listen_addresses=127.0.0.1",
                # Nothing here has to survive a power cut, only kill -9: what reached the OS
                # survives that, so no fsync. (synchronous_commit stays on: without it a
                # killed server loses its last commits, which would look like the app's bug.)
                "-c", "fsync=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
            user=self._user,
            group=self._user,
        )  # fmt: skip
        log.close()
        self.wait_answering()
        return self

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def processes(self) -> list[int]:
        """The postmaster and every backend and helper it forked."""
        pid = self.pid
        return [] if pid is None else [pid, *descendants(pid)]

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str, port: int | None = None) -> str:
        """The server's SQLAlchemy URL for `database`, directly or through a proxy's `port`."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{port or self.port}/{database}"

    def answers(self) -> bool:
        """True if `select 1` works now (half a second at most)."""
        import psycopg

        try:
            with psycopg.connect(self.admin_url(), connect_timeout=1) as conn:
                conn.execute("SET statement_timeout = 500")
                conn.execute("select 1")
            return True
        except psycopg.Error:
            return False

    def wait_answering(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if time.monotonic() > deadline:
                log = (self.root / "postgres.log").read_text(errors="replace")
                raise TimeoutError(f"PostgreSQL on {self.port} not answering: {log[-2000:]}")
            time.sleep(0.02)

    def create_database(self, name: str | None = None) -> str:
        """A fresh database; returns its name."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def pause(self) -> None:
        """SIGSTOP the postmaster first (so it forks no more), then every child it has."""
        postmaster = self.pid
        assert postmaster is not None, "not running"
        os.kill(postmaster, signal.SIGSTOP)
        wait_state([postmaster], stopped=True)
        pids = self.processes()
        signal_all(pids, signal.SIGSTOP)
        wait_state(pids, stopped=True)

    def resume(self) -> None:
        pids = list(reversed(self.processes()))
        signal_all(pids, signal.SIGCONT)
        wait_state(pids, stopped=False)

    @property
    def paused(self) -> bool:
        pid = self.pid
        return pid is not None and is_stopped(pid)

    def kill(self) -> None:
        """kill -9 the postmaster and all its children, as a crashed machine would."""
        pids = self.processes()
        signal_all(pids, signal.SIGKILL)
        if self._process is not None:
            self._process.wait(timeout=10)
        wait_gone(pids)

    def restart(self) -> None:
        self.kill()
        self.start()  # crash recovery replays the WAL

    def heal(self) -> None:
        if self.pid is None:
            self.start()
        else:
            self.resume()
            self.wait_answering()

    def stop(self) -> None:
        """Immediate shutdown (SIGQUIT), then the directory goes."""
        if self.pid is not None and self._process is not None:
            self.resume()
            self._process.send_signal(signal.SIGQUIT)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
