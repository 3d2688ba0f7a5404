"""Real servers for the end-to-end tests: `authserver` subprocesses started the README way.

`live_server` is `authserver demo` (SQLite file, embedded flow store, one granian worker);
`live_server_redis` is `authserver db upgrade` + `authserver serve --workers 2` on Redis and a
fresh PostgreSQL schema, so a flow has to work whichever worker answers each request.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

# The console script of the venv running the tests, so the tests exercise what pip installed.
AUTHSERVER = str(Path(sys.executable).with_name("authserver"))
# A ceiling, not a wait: ready returns at the first 200. Generous because a worker importing
# the app on a 2-core machine that runs the suite in parallel can take many seconds.
STARTUP_TIMEOUT = 60.0
READY_REQUEST_TIMEOUT = 5.0  # one readiness request; a slow first answer is waited for
STOP_TIMEOUT = 15.0
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"
METADATA_PATH = "/.well-known/oauth-authorization-server"


@dataclass(frozen=True)
class LiveServer:
    """A running server: where it is, a public client and a user registered on it."""

    base_url: str
    client_id: str
    username: str
    password: str
    workdir: Path
    kind: str
    # An admin of its API and console: demo's own, or one `authserver admins create` made.
    admin_username: str = ""
    admin_password: str = field(default="", repr=False)

    @property
    def log_text(self) -> str:
        """Everything the server wrote to stderr: JSON log records (granian's, the app's)."""
        return (self.workdir / "server.err").read_text(errors="replace")

    @property
    def access_log_text(self) -> str:
        """What the server wrote to stdout after `demo`'s own JSON: the access log lines."""
        text = (self.workdir / "server.out").read_text(errors="replace")
        if self.kind == "demo":
            _, end = json.JSONDecoder().raw_decode(text.lstrip())
            text = text.lstrip()[end:]
        return text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_env(workdir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update(
        # RFC 8628 §3.2 interval: 1 s keeps the polling tests quick; clients must honour it.
        AUTHSERVER_POLL_INTERVAL="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def _cli(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> dict:
    """Run one `authserver` command and return the JSON it prints."""
    done = subprocess.run(
        [AUTHSERVER, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"authserver {' '.join(args)}: {done.stderr}"
    return dict(json.loads(done.stdout))


def _spawn(args: list[str], env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    # stdout/stderr go to files: the access log shares stdout and would fill a pipe.
    with (workdir / "server.out").open("wb") as out, (workdir / "server.err").open("wb") as err:
        return subprocess.Popen(
            [AUTHSERVER, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=workdir,
            start_new_session=True,  # its own process group: the granian workers are in it
        )


def _wait_ready(
    process: subprocess.Popen[bytes],
    base_url: str,
    workdir: Path,
    *,
    path: str = METADATA_PATH,
    verify: str | bool = True,
) -> None:
    """Bounded wait until `path` answers 200; fail with the last outcome and the server's stderr.

    Any request exception is a "not yet": refused while the socket opens, a read timeout or a
    reset while a worker still imports the app on a busy machine. Only a 200 is ready.
    """
    url = base_url + path
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = "no answer yet"
    while True:
        if process.poll() is not None:
            log = (workdir / "server.err").read_text(errors="replace")
            pytest.fail(f"server exited with {process.returncode}:\n{log}", pytrace=False)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            answer = requests.get(
                url,
                timeout=min(READY_REQUEST_TIMEOUT, max(remaining, 0.1)),
                verify=verify,
                headers={"Connection": "close"},  # no idle keep-alive to delay the stop
            )
        except requests.RequestException as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if answer.status_code == 200:
                return
            last = f"HTTP {answer.status_code}: {answer.text[:200]}"
        time.sleep(0.05)
    _stop(process)
    log = (workdir / "server.err").read_text(errors="replace")
    pytest.fail(
        f"server not ready after {STARTUP_TIMEOUT:g} s: GET {url} never answered 200 "
        f"(last: {last}); its stderr:\n{log}",
        pytrace=False,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM granian's main process: it stops its workers gracefully, then exits."""
    if process.poll() is not None:
        return
    # Close the tests' idle keep-alive connections that only wait for the garbage collector
    # (sessions and responses in reference cycles): a graceful stop would wait out each one.
    gc.collect()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # Still running, so the process group we created is still ours: kill it, workers too.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _demo_output(workdir: Path) -> dict:
    """The JSON object `authserver demo` prints first (the access log follows it)."""
    text = (workdir / "server.out").read_text()
    payload, _ = json.JSONDecoder().raw_decode(text.lstrip())
    return dict(payload)


@contextmanager
def demo_server(workdir: Path, *args: str, **settings: str) -> Iterator[LiveServer]:
    """`authserver demo [args]` in `workdir` (SQLite file, embedded flow store), with
    AUTHSERVER_* `settings` on top of the test defaults; stopped when the block ends."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _server_env(workdir, **settings)
    process = _spawn(["demo", "--port", str(port), *args], env, workdir)
    try:
        _wait_ready(process, base_url, workdir)
        demo = _demo_output(workdir)
        assert demo["issuer"] == base_url
        admin = demo["admin_console"]
        yield LiveServer(
            base_url,
            demo["demo_client_id"],
            DEMO_USERNAME,
            DEMO_PASSWORD,
            workdir,
            "demo",
            admin["username"],
            admin["password"],
        )
    finally:
        _stop(process)
    assert process.returncode in (0, -signal.SIGKILL), process.returncode


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`authserver demo` in a fresh directory: SQLite file, embedded flow store."""
    with demo_server(tmp_path_factory.mktemp("demo")) as server:
        yield server


@pytest.fixture(scope="module")
def live_server_redis(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, module_postgres_url: str
) -> Iterator[LiveServer]:
    """`authserver serve --workers 2` on Redis (db 14) and a fresh PostgreSQL schema.

    Started once per module (each start costs seconds); redis_url and module_postgres_url
    skip locally, and fail under CI=true, when the service is down.
    """
    import redis

    workdir = tmp_path_factory.mktemp("serve")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    flow_redis = redis_url.rsplit("/", 1)[0] + "/14"
    prefix = f"e2e:{uuid.uuid4().hex}:"
    env = _server_env(
        workdir,
        AUTHSERVER_DATABASE_URL=module_postgres_url,
        AUTHSERVER_REDIS_URL=flow_redis,
        AUTHSERVER_REDIS_PREFIX=prefix,
    )
    _cli(["db", "upgrade"], env, workdir)
    process = _spawn(["serve", "--port", str(port), "--workers", "2"], env, workdir)
    try:
        # Register the client, the user and an admin while the server boots, all at once.
        username, password = f"erin-{uuid.uuid4().hex[:6]}", "correct horse battery"
        admin, admin_password = f"ops-{uuid.uuid4().hex[:6]}", f"admin-{uuid.uuid4().hex}"
        with ThreadPoolExecutor(3) as pool:
            client = pool.submit(_cli, ["clients", "create", "--name", "E2E PC"], env, workdir)
            user = pool.submit(
                _cli,
                ["users", "create", username, "--password-stdin", "--display-name", "Erin Example"],
                env,
                workdir,
                stdin=password + "\n",
            )
            admins = pool.submit(
                _cli,
                ["admins", "create", admin, "--password-stdin"],
                env,
                workdir,
                stdin=admin_password + "\n",
            )
            client_id, _, _ = client.result()["client_id"], user.result(), admins.result()
        _wait_ready(process, base_url, workdir)
        yield LiveServer(
            base_url, client_id, username, password, workdir, "redis", admin, admin_password
        )
    finally:
        _stop(process)
        flows = redis.Redis.from_url(flow_redis)
        for key in flows.scan_iter(match=prefix + "*"):
            flows.delete(key)
        flows.close()
    assert process.returncode in (0, -signal.SIGKILL), process.returncode


@pytest.fixture(params=["embedded+sqlite", "redis+postgres"])
def any_live_server(request: pytest.FixtureRequest) -> LiveServer:
    """The same test on `authserver demo` and on two workers sharing Redis and PostgreSQL."""
    name = "live_server" if request.param == "embedded+sqlite" else "live_server_redis"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    """A headless system Chromium driven by Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()
