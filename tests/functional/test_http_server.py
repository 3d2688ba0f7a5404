"""The HTTP layer without sockets: WsgiBridge under a fake RSGI protocol, and server options.

What the bridge promises: the body is read (bounded in size and time) before an app thread is
taken, a slow app never blocks the event loop, and refusals are RFC 6749 §5.2-shaped JSON.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from authserver import http_server
from authserver.config import Config, ConfigError
from authserver.http_server import (
    FD_RESERVE,
    HEADER_READ_TIMEOUT_MS,
    MAX_CONNECTIONS,
    MAX_HEAD_BYTES,
    ServerOptions,
    WsgiBridge,
    body_read_timeout,
    check_threads,
    connection_limit,
    granian_options,
)


class Headers:
    """RSGI's header mapping: lower-case names, a name may repeat."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get(self, key: str, default: Any = None) -> Any:
        return next((v for k, v in self._items if k == key), default)

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


@dataclass
class Scope:
    headers: Headers
    method: str = "POST"
    path: str = "/echo"
    query_string: str = ""
    client: str = "10.0.0.7:50123"
    server: str = "127.0.0.1:8000"
    scheme: str = "http"
    http_version: str = "1.1"
    proto: str = "http"


@dataclass
class Protocol:
    """Hands the body over in `chunks`; with `stall`, then waits forever (a slow client)."""

    chunks: list[bytes] = field(default_factory=list)
    stall: bool = False
    body_reads: int = 0
    response: tuple[int, list[tuple[str, str]], bytes] | None = None

    async def __call__(self) -> bytes:
        self.body_reads += 1
        if self.stall:
            await asyncio.Event().wait()
        return b"".join(self.chunks)

    async def _iterate(self) -> AsyncIterator[bytes]:
        self.body_reads += 1
        for chunk in self.chunks:
            yield chunk
        if self.stall:
            await asyncio.Event().wait()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.response = (status, headers, body)


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answers with what a WSGI app sees of the request."""
    seen = {k: v for k, v in environ.items() if isinstance(v, str)}
    seen["body"] = environ["wsgi.input"].read().decode()
    seen["thread"] = threading.current_thread().name
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


def serve(
    bridge: WsgiBridge, scope: Scope, protocol: Protocol
) -> tuple[int, dict[str, str], bytes]:
    asyncio.run(bridge.__rsgi__(scope, protocol))
    assert protocol.response is not None
    status, headers, body = protocol.response
    return status, {k.lower(): v for k, v in headers}, body


def bridge(app: Any = echo_app, **kwargs: Any) -> WsgiBridge:
    return WsgiBridge(app, 4, max_body=100, **kwargs)


def test_the_app_gets_a_pep_3333_environ_and_the_whole_body() -> None:
    scope = Scope(
        Headers(
            [
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-length", "11"),
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "2.2.2.2"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
            ]
        ),
        path="/caf%C3%A9/a%20b",
        query_string="x=%41",
    )
    status, _, body = serve(bridge(), scope, Protocol([b"hello", b" world"]))
    seen = json.loads(body)
    assert status == 200
    assert seen["body"] == "hello world"
    assert seen["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert seen["CONTENT_LENGTH"] == "11"
    # PEP 3333: PATH_INFO is decoded, as latin-1 characters of its bytes; the query is raw.
    assert seen["PATH_INFO"] == "/caf\u00c3\u00a9/a b"
    assert seen["QUERY_STRING"] == "x=%41"
    assert seen["REMOTE_ADDR"] == "10.0.0.7"
    assert seen["REQUEST_METHOD"] == "POST"
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert seen["HTTP_X_FORWARDED_FOR"] == "1.1.1.1, 2.2.2.2"  # RFC 9110 §5.3
    assert seen["HTTP_COOKIE"] == "a=1; b=2"  # RFC 6265 §5.4: cookies join with "; "
    assert seen["thread"].startswith("authserver-app")  # never the event loop's thread


def test_an_ipv6_client_address_loses_its_brackets() -> None:
    scope = Scope(Headers([]), method="GET", client="[::1]:50123")
    _, _, body = serve(bridge(), scope, Protocol())
    assert json.loads(body)["REMOTE_ADDR"] == "::1"


def test_a_body_larger_than_the_limit_is_refused_unread() -> None:
    protocol = Protocol([b"x" * 101])
    status, headers, body = serve(bridge(), Scope(Headers([("content-length", "101")])), protocol)
    assert status == 413 and protocol.body_reads == 0
    assert headers["connection"] == "close"  # the unread body must not be parsed as a request
    assert json.loads(body)["error"] == "invalid_request"


def test_a_chunked_body_is_counted_as_it_arrives() -> None:
    protocol = Protocol([b"x" * 60, b"x" * 60], stall=True)  # never ends: refused at 120 bytes
    status, _, _ = serve(bridge(), Scope(Headers([("transfer-encoding", "chunked")])), protocol)
    assert status == 413

    within = Protocol([b"a" * 40, b"b" * 40])
    status, _, body = serve(bridge(), Scope(Headers([("transfer-encoding", "chunked")])), within)
    assert status == 200 and json.loads(body)["body"] == "a" * 40 + "b" * 40


@pytest.mark.parametrize(
    "headers", [[("content-length", "50")], [("transfer-encoding", "chunked")]]
)
def test_a_body_that_stops_arriving_is_a_408_and_never_reaches_the_app(
    headers: list[tuple[str, str]],
) -> None:
    called: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        called.append(True)
        return echo_app(environ, start_response)

    status, answer, body = serve(
        bridge(app, body_timeout=0.05), Scope(Headers(headers)), Protocol([b"x" * 10], stall=True)
    )
    assert status == 408 and not called
    assert answer["connection"] == "close" and json.loads(body)["error"] == "invalid_request"


@pytest.mark.parametrize("length", ["-1", "\u00b2", "1" * 19])
def test_a_malformed_content_length_is_a_400(length: str) -> None:
    status, _, _ = serve(bridge(), Scope(Headers([("content-length", length)])), Protocol())
    assert status == 400


def test_an_app_that_raises_out_of_wsgi_is_a_bare_500() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("secret-internal-detail")

    status, _, body = serve(bridge(app), Scope(Headers([]), method="GET"), Protocol())
    assert status == 500
    assert json.loads(body)["error"] == "server_error"
    assert b"secret-internal-detail" not in body


def test_a_slow_app_does_not_hold_up_other_requests() -> None:
    """The event loop only reads bodies: while one request sits in the app, others finish."""
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            assert release.wait(10)
        return echo_app(environ, start_response)

    server = bridge(app)

    async def both() -> tuple[Protocol, Protocol, bool]:
        slow, fast = Protocol(), Protocol()
        slow_task = asyncio.create_task(
            server.__rsgi__(Scope(Headers([]), method="GET", path="/slow"), slow)
        )
        await asyncio.wait_for(server.__rsgi__(Scope(Headers([]), method="GET"), fast), 5)
        slow_still_running = not slow_task.done()
        release.set()
        await slow_task
        return slow, fast, slow_still_running

    slow, fast, slow_still_running = asyncio.run(both())
    assert slow_still_running
    assert fast.response is not None and fast.response[0] == 200
    assert slow.response is not None and slow.response[0] == 200


def test_a_refusal_is_access_logged_with_an_echoed_request_id() -> None:
    lines: list[bytes] = []
    scope = Scope(Headers([("content-length", "5000"), ("x-request-id", "req-77")]))
    status, headers, body = serve(bridge(access_log=lines.append), scope, Protocol())
    assert status == 413 and headers["x-request-id"] == "req-77"
    [line] = [json.loads(raw) for raw in lines]
    assert line["request_id"] == "req-77" and line["status"] == 413
    assert line["route"] is None and line["bytes"] == len(body)


# --- options --------------------------------------------------------------------------------
def test_granian_defaults_bound_slow_clients_and_never_log_raw_paths() -> None:
    from granian.constants import HTTPModes, Interfaces

    kwargs = granian_options(Config(), ServerOptions(workers=2))
    assert kwargs["interface"] == Interfaces.RSGI and kwargs["workers"] == 2
    assert kwargs["http"] == HTTPModes.http1
    assert kwargs["http1_settings"].header_read_timeout == HEADER_READ_TIMEOUT_MS
    assert kwargs["http1_settings"].max_buffer_size == MAX_HEAD_BYTES
    assert kwargs["http2_settings"].max_headers_size == MAX_HEAD_BYTES
    assert kwargs["backpressure"] == MAX_CONNECTIONS
    assert kwargs["log_access"] is False
    assert kwargs["respawn_failed_workers"] is True
    assert kwargs["workers_kill_timeout"] > 0  # a stop never waits forever


def test_server_options_are_converted_to_granian_types() -> None:
    from granian.constants import Loops

    kwargs = granian_options(
        Config(),
        ServerOptions(
            extra={
                "http1_header_read_timeout": "2500",
                "http1_keep_alive": "false",
                "backpressure": "2048",
                "loop": "uvloop",
                "respawn_interval": "1.5",
                "ssl_cert": "/etc/ssl/cert.pem",
            }
        ),
    )
    assert kwargs["http1_settings"].header_read_timeout == 2500
    assert kwargs["http1_settings"].keep_alive is False
    assert kwargs["http1_settings"].max_buffer_size == MAX_HEAD_BYTES  # the rest stays
    assert kwargs["backpressure"] == 2048 and kwargs["loop"] == Loops.uvloop
    assert kwargs["respawn_interval"] == 1.5 and str(kwargs["ssl_cert"]) == "/etc/ssl/cert.pem"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("log_access", "true", "raw paths"),
        ("workers", "4", "--workers"),
        ("interface", "wsgi", "WsgiBridge"),
        ("no_such_option", "1", "unknown"),
        ("backpressure", "many", "not a valid int"),
        ("loop", "twisted", "not a valid"),
        ("http1_keep_alive", "maybe", "not a valid bool"),
    ],
)
def test_a_wrong_server_option_is_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        granian_options(Config(), ServerOptions(extra={name: value}))
    assert name in str(raised.value)


def test_the_body_read_timeout_is_an_option_of_its_own() -> None:
    assert body_read_timeout(ServerOptions(extra={"body_read_timeout": "2.5"})) == 2.5
    granian_options(Config(), ServerOptions(extra={"body_read_timeout": "2.5"}))  # not granian's
    for wrong in ("0", "-1", "soon", "301"):
        with pytest.raises(ConfigError, match="body_read_timeout"):
            body_read_timeout(ServerOptions(extra={"body_read_timeout": wrong}))


def test_threads_must_outnumber_the_long_polls() -> None:
    config = Config(status_max_waiters=16)
    check_threads(config, 20)
    with pytest.raises(ConfigError, match="AUTHSERVER_STATUS_MAX_WAITERS"):
        check_threads(config, 19)


@pytest.mark.parametrize(
    ("soft", "hard", "raised_to", "connections"),
    [
        (1024, 1024, None, 1024 - FD_RESERVE),  # cannot raise: fewer connections
        (1024, 1 << 20, MAX_CONNECTIONS + FD_RESERVE, MAX_CONNECTIONS),
        (1 << 20, 1 << 20, None, MAX_CONNECTIONS),
    ],
)
def test_connections_per_worker_fit_the_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, raised_to: int | None, connections: int
) -> None:
    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(http_server.resource, "getrlimit", lambda _: (soft, hard))
    monkeypatch.setattr(http_server.resource, "setrlimit", lambda _, limits: raised.append(limits))
    assert connection_limit() == connections
    assert raised == ([(raised_to, hard)] if raised_to else [])
