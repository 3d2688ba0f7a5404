"""Structured logs: one JSON access line per request, JSON app records, both with a request id.

What a line may hold is decided here, once: the route *template* (`/qr/<code>.<fmt>`), never
the raw path (user codes travel in paths) nor the query string, body, Authorization or cookies.
User codes, device codes, tokens and passwords therefore never reach a log line through the
access log; the app's own records name ids and facts only (see services/audit.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flask import Request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REQUEST_ID_HEADER = "X-Request-Id"
# Where the request waits for the access log: Flask clears its own environ key for it
# ("werkzeug.request") before the middleware could read the matched route.
REQUEST_KEY = "authserver.request"
# The request being served in this thread, for the app's own log records.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# A caller's id is kept if it is short and plain (a UUID, a proxy's hex id, a ULID): it is
# echoed in a header and written to the log, so nothing that could forge a line or a header.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_json_string = json.encoder.encode_basestring_ascii
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def new_request_id() -> str:
    """64 bits from the process's PRNG: unique enough to correlate, no syscall, not a secret.

    The random module reseeds itself in every forked worker (os.register_at_fork).
    """
    return f"{random.getrandbits(64):016x}"


def request_id_from(incoming: str | None) -> str:
    """The caller's request id when it is sane, else a new one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


def route_of(request: Request | None) -> str | None:
    """The matched route's template, e.g. `/qr/<code>.<fmt>`; None when nothing matched."""
    rule = request.url_rule if request is not None else None
    return rule.rule if rule is not None else None


class LoggedRequest(Request):
    """Flask's request, also kept in the environ so the access log can read its route."""

    def __init__(self, environ: WSGIEnvironment, *args: Any, **kwargs: Any) -> None:
        super().__init__(environ, *args, **kwargs)
        environ[REQUEST_KEY] = self  # AccessLog pops it, breaking the reference cycle


_second = -1
_second_text = ""


def utc_timestamp(now: float) -> str:
    """`now` as ISO 8601 UTC with milliseconds; the seconds part is formatted once a second."""
    global _second, _second_text
    whole = int(now)
    if whole != _second:  # a race here only formats the same second twice
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = whole
    return f"{_second_text}.{int((now - whole) * 1000):03d}Z"


def stdout_writer() -> Callable[[bytes], None]:
    """Write whole lines to the process's stdout (fd 1) with one unbuffered write each.

    One `write(2)` per line: lines from many threads and processes never interleave (a pipe
    keeps writes up to PIPE_BUF whole, and a line is far shorter), and none wait in a buffer.
    """

    def write(line: bytes) -> None:
        # No stdout (closed, non-blocking and full): a lost line must not fail the request.
        with contextlib.suppress(OSError):
            os.write(1, line)

    return write


class AccessLog:
    """WSGI middleware: a request id for every request, and one JSON line when it is answered.

    The app's request class must be LoggedRequest (create_app sets it).

    The id is the caller's `X-Request-Id` when sane, else a new one; it is echoed in the
    response and set in `request_id` for the app's own records while the app runs.
    """

    def __init__(self, app: WSGIApplication, write: Callable[[bytes], Any]) -> None:
        self._app = app
        self._write = write

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        rid = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        answer: list[Any] = [500, None]

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[0] = int(status[:3])
            for name, value in headers:
                if name.lower() == "content-length":
                    answer[1] = int(value)
                    break
            headers.append((REQUEST_ID_HEADER, rid))
            return start_response(status, headers, exc_info)

        token = request_id.set(rid)
        try:
            return self._app(environ, start)
        finally:
            request_id.reset(token)
            self._write(
                access_line(
                    rid,
                    environ.get("REQUEST_METHOD", ""),
                    route_of(environ.pop(REQUEST_KEY, None)),
                    answer[0],
                    started,
                    environ.get("REMOTE_ADDR"),
                    answer[1],
                )
            )


def access_line(
    rid: str,
    method: str,
    route: str | None,
    status: int,
    started: float,
    client: str | None,
    size: int | None,
) -> bytes:
    """One access-log line: what was asked (by route template) and answered, never content.

    `rid` is a sane id (request_id_from), `started` a time.perf_counter() reading, `size` the
    response body's bytes. Formatted by hand, not json.dumps (a third of the cost); the two
    strings that may come from outside (route, client: X-Forwarded-For through ProxyFix) are
    escaped by the json module's own C encoder.
    """
    took = (time.perf_counter() - started) * 1000
    return (
        f'{{"time":"{utc_timestamp(time.time())}","log":"access","request_id":"{rid}",'
        f'"method":"{method if method in _METHODS else "OTHER"}",'
        f'"route":{"null" if route is None else _json_string(route)},'
        f'"status":{status:d},"duration_ms":{took:.3f},'
        f'"client":{"null" if client is None else _json_string(client)},'
        f'"bytes":{"null" if size is None else f"{size:d}"}}}\n'
    ).encode()


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "log": "app",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """`logging.config.dictConfig` input: every record as a JSON line on stderr.

    The server's own loggers (granian's `_granian`) go the same way; its access log is never
    enabled (it would write raw paths).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"_granian": {"handlers": ["stderr"], "level": level, "propagate": False}},
        "root": {"handlers": ["stderr"], "level": level},
    }
