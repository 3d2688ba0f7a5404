"""Shared fixtures: real Redis and PostgreSQL when reachable.

On a developer machine without them the tests skip with a visible reason; under CI
(CI=true) a missing service is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# The test suite's own variables are TEST_*: every AUTHSERVER_* variable must be a setting
# (authserver/config.py refuses any other).
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The system Chromium that Playwright drives (Debian package `chromium`); never downloaded.
CHROMIUM = os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium")


def _unavailable(what: str, why: Exception) -> None:
    message = f"{what} is not reachable ({type(why).__name__}: {why})"
    if IN_CI:
        pytest.fail(f"{message}; CI must run these tests", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a live Redis server, or skip/fail."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A client on the test Redis database; keys under a per-test prefix are removed after."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: object) -> Iterator[str]:
    """A unique key prefix so tests never see each other's keys."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    for key in redis_client.scan_iter(match=prefix + "*"):  # type: ignore[attr-defined]
        redis_client.delete(key)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of a live PostgreSQL server, or skip/fail."""
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    finally:
        engine.dispose()
    return POSTGRES_URL


@contextmanager
def fresh_postgres_schema(admin_url: str) -> Iterator[str]:
    """The URL of a fresh, empty schema of its own on the test database, dropped after."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty schema of its own on the test PostgreSQL database, dropped after."""
    with fresh_postgres_schema(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """Like postgres_url, shared by one module (e.g. by a server process it starts once)."""
    with fresh_postgres_schema(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the system Chromium for Playwright, or skip (fail under CI) naming what's missing."""
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        missing = f"Playwright is not installed ({exc}); pip install -e '.[dev]'"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium; TEST_CHROMIUM)"
    if missing:
        if IN_CI:
            pytest.fail(f"{missing}; CI must run the browser tests", pytrace=False)
        pytest.skip(missing)
    return CHROMIUM


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    """A fresh SQLite file."""
    return f"sqlite:///{tmp_path}/authserver.db"  # type: ignore[str-bytes-safe]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each SQL contract test runs against SQLite and a real PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI nothing may be skipped: a skip there means a real service was not tested."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; CI must run every test.", red=True)
        session.exitstatus = 1
