"""Serve the app with granian: HTTP parsed in Rust, and no app thread waits on a slow client.

Granian (Rust, hyper) reads request headers in its async runtime, with a timeout, so a client
that sends half a header costs a socket, not a thread. Its WSGI interface, though, reads the
request *body* from inside the app's thread, so a client that sends complete headers and then
trickles (or never sends) its body would hold that thread. The app therefore runs under
granian's RSGI interface through `WsgiBridge`: the worker's event loop reads the whole body,
bounded in size and time, and only then hands the request to one of `threads` app threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote_to_bytes

from authserver.config import AccessLog as AccessLogSetting
from authserver.config import Config, ConfigError
from authserver.logs import (
    REQUEST_ID_HEADER,
    access_line,
    logging_config,
    request_id_from,
    stdout_writer,
)
from authserver.oauth.errors import http_to_wire, server_error

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

# Limits of the HTTP layer, before the app sees anything (README "Serving").
HEADER_READ_TIMEOUT_MS = 10_000  # the whole request head, from its first byte (hyper)
BODY_READ_TIMEOUT = 10.0  # seconds for the whole body once the head is in (WsgiBridge)
MAX_HEAD_BYTES = 16 * 1024  # request line + headers (hyper's read buffer); more is a 431
STOP_TIMEOUT = 10  # seconds a worker may finish its requests after SIGTERM, then SIGKILL
# Connections one worker holds at once (granian's backpressure): idle, slow or busy alike.
# Past it, new connections wait in the listen backlog. Each costs a file descriptor and a
# few KiB, so it is also capped by the process's descriptor limit, less FD_RESERVE.
MAX_CONNECTIONS = 4096
FD_RESERVE = 256  # descriptors kept for SQL and Redis connections, files, pipes
# Threads left for everything else when every status-channel long-poll is held.
THREADS_BEYOND_LONG_POLLS = 4

# What `serve` sets itself, or that would bypass the app (its logs, its limits).
_NOT_OVERRIDABLE = {
    "target": "the app is authserver's",
    "address": "use --host",
    "port": "use --port",
    "interface": "the app runs through WsgiBridge (RSGI)",
    "workers": "use --workers",
    "blocking_threads": "use --threads",
    "websockets": "the app has no websockets",
    "factory": "the app is authserver's",
    "log_enabled": "the server's logs are JSON lines on stderr",
    "log_dictconfig": "the server's logs are JSON lines on stderr",
    "log_access": "it would log raw paths (user codes); see AUTHSERVER_ACCESS_LOG",
    "log_access_format": "it would log raw paths (user codes); see AUTHSERVER_ACCESS_LOG",
    "reload": "a development feature",
    "working_dir": "run the command from the directory you want",
    "env_files": "settings come from the environment (authserver/config.py)",
    "static_path_route": "files are served by the app",
    "static_path_mount": "files are served by the app",
    "static_path_dir_to_file": "files are served by the app",
    "static_path_expires": "files are served by the app",
}


@dataclass(frozen=True)
class ServerOptions:
    """How to serve: where, how many processes and threads, and granian options on top."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int = 32
    # `--server-option NAME=VALUE`: granian Server keywords, `http1_*`/`http2_*` for its
    # HTTP settings, and `body_read_timeout` (seconds) of WsgiBridge.
    extra: Mapping[str, str] = field(default_factory=dict)


def check_threads(config: Config, threads: int) -> None:
    """Long-polls on the status channel and requests that wait for SQL must leave threads for
    the SQL-free paths (token polls, the status channel, resource checks)."""
    if threads < config.status_max_waiters + THREADS_BEYOND_LONG_POLLS:
        raise ConfigError(
            f"--threads {threads} is too few: AUTHSERVER_STATUS_MAX_WAITERS "
            f"({config.status_max_waiters}) long-polls may hold threads at once, and "
            f"{THREADS_BEYOND_LONG_POLLS} more must stay for everything else."
        )
    if threads <= config.sql_max_threads:
        raise ConfigError(
            f"--threads {threads} is too few: AUTHSERVER_SQL_MAX_THREADS "
            f"({config.sql_max_threads}) may wait for SQL at once, and a hung database "
            "must not take every thread; lower it or raise --threads."
        )


class WsgiBridge:
    """An RSGI app that reads the request body, bounded, then runs a WSGI app in a thread."""

    def __init__(
        self,
        app: WSGIApplication,
        threads: int,
        *,
        max_body: int,
        body_timeout: float = BODY_READ_TIMEOUT,
        access_log: Callable[[bytes], Any] | None = None,
    ) -> None:
        self._app = app
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="authserver-app")
        self._max_body = max_body
        self._body_timeout = body_timeout
        self._access_log = access_log
        self._base = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,  # the whole body is in wsgi.input
        }

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":  # websockets are off: nothing else arrives
            return
        started = time.perf_counter()
        headers = scope.headers
        body = await self._read_body(headers, protocol)
        if isinstance(body, int):
            self._refuse(body, scope, protocol, started)
            return
        environ = self._environ(scope, headers, body)
        loop = asyncio.get_running_loop()
        try:
            status, out_headers, content = await loop.run_in_executor(
                self._pool, self._call, environ
            )
        except Exception:
            # Flask answers its own errors; this is the bridge's last word. Nothing leaks.
            log.exception("the app raised out of WSGI on %s", scope.method)
            status, payload, out_headers = server_error()
            content = json.dumps(payload).encode()
        protocol.response_bytes(status, out_headers, content)

    async def _read_body(self, headers: Any, protocol: Any) -> bytes | int:
        """The whole body, or the status to refuse it with (413 too big, 408 too slow)."""
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            return b""  # RFC 9112 §6.3: no length, no chunks, no body
        if length is not None:
            if not (length.isascii() and length.isdigit() and len(length) <= 18):
                return 400  # hyper has parsed it already; this is belt and braces
            if int(length) > self._max_body:
                return 413  # refused before a byte of it is read
            if length == "0":
                return b""
        try:
            async with asyncio.timeout(self._body_timeout):
                if length is not None:
                    body: bytes = await protocol()
                    return body
                chunks, size = [], 0
                async for chunk in protocol:  # chunked: count as it arrives
                    size += len(chunk)
                    if size > self._max_body:
                        return 413
                    chunks.append(chunk)
                return b"".join(chunks)
        except TimeoutError:
            return 408

    def _environ(self, scope: Any, headers: Any, body: bytes) -> WSGIEnvironment:
        client, _, client_port = scope.client.rpartition(":")
        server, _, server_port = scope.server.rpartition(":")
        path = scope.path
        environ: dict[str, Any] = {
            **self._base,
            "REQUEST_METHOD": scope.method,
            # PEP 3333: the path percent-decoded, its bytes as latin-1 (Werkzeug re-decodes).
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1") if "%" in path else path,
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server.strip("[]"),
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client.strip("[]"),
            "REMOTE_PORT": client_port,
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": BytesIO(body),
        }
        for key, value in headers.items():
            if key == "content-type":
                environ["CONTENT_TYPE"] = value
            elif key == "content-length":
                environ["CONTENT_LENGTH"] = value
            else:
                name = "HTTP_" + key.upper().replace("-", "_")
                if name in environ:  # a repeated header: one value (RFC 9110 §5.3)
                    value = environ[name] + ("; " if key == "cookie" else ", ") + value
                environ[name] = value
        return environ

    def _call(self, environ: WSGIEnvironment) -> tuple[int, list[tuple[str, str]], bytes]:
        """Run the app in this (pool) thread; every response here is small, so join it."""
        answer: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            answer[:] = [int(status[:3]), headers]
            return lambda data: None  # the legacy write() callable; Flask never uses it

        result = self._app(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return answer[0], answer[1], content

    def _refuse(self, status: int, scope: Any, protocol: Any, started: float) -> None:
        """Answer a body we would not read, and close the connection (its rest is unread)."""
        description = {
            400: "Invalid Content-Length.",
            408: "The request body did not arrive in time.",
            413: f"The request body is larger than {self._max_body} bytes.",
        }[status]
        code, payload, headers = http_to_wire(status, description)
        rid = request_id_from(scope.headers.get("x-request-id"))
        headers = [*headers, ("Connection", "close"), (REQUEST_ID_HEADER, rid)]
        content = json.dumps(payload).encode()
        protocol.response_bytes(code, headers, content)
        if self._access_log is not None:
            client = scope.client.rpartition(":")[0].strip("[]")
            self._access_log(
                access_line(rid, scope.method, None, code, started, client, len(content))
            )


def _convert(name: str, raw: str, annotation: str, default: Any) -> Any:
    """A `--server-option` value as the type granian's keyword `name` takes."""
    kind = annotation.replace(" | None", "")
    try:
        if isinstance(default, Enum):
            return type(default)(raw)
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes", "on")
        if kind in ("int", "float", "str"):
            return {"int": int, "float": float, "str": str}[kind](raw)
        if kind == "Path":
            return Path(raw)
        if kind == "list[Path]":
            return [Path(part) for part in raw.split(",") if part]
    except ValueError:
        raise ConfigError(f"--server-option {name}: {raw!r} is not a valid {kind}") from None
    raise ConfigError(f"--server-option {name} cannot be set from the command line")


def connection_limit() -> int:
    """Connections per worker: MAX_CONNECTIONS if file descriptors allow, raising the soft
    limit toward the hard one first (as nginx's worker_rlimit_nofile does)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + FD_RESERVE
    raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < raised:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(64, min(MAX_CONNECTIONS, soft - FD_RESERVE))


def granian_options(
    config: Config, options: ServerOptions, max_connections: int = MAX_CONNECTIONS
) -> dict[str, Any]:
    """Keywords for granian's Server: our defaults, then `options.extra`, validated."""
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.log import LogLevels
    from granian.server import Server

    http1 = HTTP1Settings(
        header_read_timeout=HEADER_READ_TIMEOUT_MS, max_buffer_size=MAX_HEAD_BYTES
    )
    http2 = HTTP2Settings(max_headers_size=MAX_HEAD_BYTES)
    kwargs: dict[str, Any] = {
        "address": options.host,
        "port": options.port,
        "interface": Interfaces.RSGI,
        "workers": options.workers,
        "blocking_threads": 1,  # RSGI's own; the app's threads are WsgiBridge's pool
        "loop": Loops.asyncio,
        "http": HTTPModes.http1,  # a reverse proxy speaks HTTP/1.1 upstream; h2 is opt-in
        "websockets": False,
        "backpressure": max_connections,
        "log_level": LogLevels.info,
        "log_dictconfig": logging_config(),
        "log_access": False,  # the app writes its own, secret-free access log
        "respawn_failed_workers": True,  # a crashed worker is replaced, as gunicorn did
        "workers_kill_timeout": STOP_TIMEOUT,
    }
    parameters = inspect.signature(Server.__init__).parameters
    settings: dict[str, tuple[type, Any]] = {
        "http1": (HTTP1Settings, http1),
        "http2": (HTTP2Settings, http2),
    }
    for name, raw in options.extra.items():
        if name in _NOT_OVERRIDABLE:
            raise ConfigError(f"--server-option {name} is not allowed: {_NOT_OVERRIDABLE[name]}")
        prefix, _, rest = name.partition("_")
        if prefix in settings and rest in {f.name for f in fields(settings[prefix][0])}:
            cls, current = settings[prefix]
            hint = {f.name: f.type for f in fields(cls)}[rest]
            hint_text = hint.__name__ if isinstance(hint, type) else str(hint)
            value = _convert(name, raw, hint_text, getattr(current, rest))
            settings[prefix] = (cls, replace(current, **{rest: value}))
        elif name == "body_read_timeout":
            continue  # WsgiBridge's, read by `run`
        elif name in parameters and name not in ("self", "http1_settings", "http2_settings"):
            parameter = parameters[name]
            kwargs[name] = _convert(name, raw, str(parameter.annotation), parameter.default)
        else:
            raise ConfigError(
                f"--server-option {name} is unknown: see README 'Serving' for the names"
            )
    kwargs["http1_settings"] = settings["http1"][1]
    kwargs["http2_settings"] = settings["http2"][1]
    return kwargs


def body_read_timeout(options: ServerOptions) -> float:
    raw = options.extra.get("body_read_timeout")
    if raw is None:
        return BODY_READ_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 300:
        raise ConfigError("--server-option body_read_timeout must be seconds in (0, 300]")
    return value


def load_app(config: Config, threads: int, body_timeout: float) -> WsgiBridge:
    """Build the app in a worker process (granian calls this after it forks)."""
    from authserver.app import MAX_BODY_BYTES, create_app
    from authserver.services.passwords import dummy_hash

    dummy_hash(config.scrypt_p)  # the first unknown-user sign-in is not slower
    writer = stdout_writer() if config.access_log is AccessLogSetting.JSON else None
    return WsgiBridge(
        create_app(config),
        threads,
        max_body=MAX_BODY_BYTES,
        body_timeout=body_timeout,
        access_log=writer,
    )


def run(config: Config, options: ServerOptions) -> None:
    """Serve until SIGTERM or SIGINT; workers finish their requests for up to STOP_TIMEOUT s."""
    from granian.server import Server

    check_threads(config, options.threads)
    kwargs = granian_options(config, options, connection_limit())
    server = Server("authserver.http_server:load_app", **kwargs)
    loader = partial(load_app, config, options.threads, body_read_timeout(options))
    # An RSGI app may be an object with __rsgi__ (the RSGI spec); granian's hint says callable.
    server.serve(target_loader=cast("Callable[..., Callable[..., Any]]", loader), wrap_loader=False)
    # Every worker has stopped. Skip the interpreter's final garbage collection of this main
    # process (it imported the whole app for its checks): seconds of CPU that free nothing
    # the OS would not, while a deployment waits for the old server to go.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
