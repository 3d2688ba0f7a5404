"""Which Host headers this server answers to, and redirects that never name a host.

A request's Host (RFC 9110 §7.2) must be the issuer's host and port, another loopback name
for a loopback issuer (http://localhost:8000 and http://127.0.0.1:8000 are the same server), or
an entry of AUTHSERVER_ALLOWED_HOSTS ("host" for any port, "host:port" for that one). Anything
else is refused with a 400 before a view runs, so a forged Host never reaches a Location header,
a link or a cache key. The health endpoints are exempt: load balancers and orchestrators probe
a backend by its address (Host: 10.0.0.5:8000), and those answers name no host.

Werkzeug's trailing-slash redirect (`/admin` -> `/admin/`) would build an absolute Location from
the Host and be a cacheable 308: it becomes a relative Location (RFC 9110 §10.2.2) here, and
every redirect says `Cache-Control: no-store`.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, redirect, request
from werkzeug.routing import RequestRedirect

from authserver.config import Config
from authserver.domain import errors
from authserver.web import health

ANY_PORT = -1
LOOPBACK = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = (80, 443)  # a Host without a port means the scheme's default port

HostKey = tuple[str, int | None]  # (lower-case name without brackets, port or None: default)


def host_key(host: str) -> HostKey | None:
    """(name, port) of a Host value or `host[:port]` setting; None if it is not one."""
    parts = urlsplit(f"//{host}")
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query:
        return None
    return parts.hostname.lower(), None if port in DEFAULT_PORTS else port


class HostPolicy:
    """The hosts a config serves; `allows(request.host)` decides."""

    def __init__(self, config: Config) -> None:
        issuer = urlsplit(config.issuer)
        name = (issuer.hostname or "").lower()
        port = None if issuer.port in DEFAULT_PORTS else issuer.port
        names = LOOPBACK if name in LOOPBACK else (name,)
        self._allowed: set[tuple[str, int | None]] = {(n, port) for n in names}
        for entry in config.allowed_host_list:
            key = host_key(entry)
            if key is not None:  # Config.validate refused anything else at start-up
                entry_name, entry_port = key
                given = ":" in entry.rsplit("]", 1)[-1]
                self._allowed.add((entry_name, entry_port if given else ANY_PORT))

    def allows(self, host: str) -> bool:
        key = host_key(host) if host else None
        if key is None:
            return False
        return key in self._allowed or (key[0], ANY_PORT) in self._allowed


def install(app: Flask, config: Config) -> None:
    """Refuse foreign Hosts before any view; keep redirects relative and uncached."""
    policy = HostPolicy(config)
    exempt = {f"{health.bp.name}.{view}" for view in health.VIEWS}

    @app.before_request
    def _check_host() -> Response | None:
        # Runs before every blueprint's own hooks; routing has run, the view has not.
        if request.endpoint in exempt:
            return None
        if not policy.allows(request.host):
            raise errors.MalformedRequest("This server does not serve the host in the request.")
        moved = request.routing_exception
        if isinstance(moved, RequestRedirect):
            parts = urlsplit(moved.new_url)
            location = urlunsplit(("", "", parts.path, parts.query, ""))
            return cast(Response, redirect(location, moved.code))
        return None

    @app.after_request
    def _redirects_are_not_cached(response: Response) -> Response:
        if 300 <= response.status_code < 400:
            response.headers["Cache-Control"] = "no-store"
        return response
