"""The HTTP seam of the clients: a tiny transport protocol, requests behind it by default.

Tests inject a fake `Transport`; nothing else in the clients touches the network.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from qrlogin_client import __version__

DEFAULT_TIMEOUT = 10.0  # seconds, for every single request (long-polls add their wait)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


# Set to 1 to allow plain http to a private address too: `authserver demo --lan` on the Wi-Fi.
INSECURE_LAN_ENV = "QRLOGIN_INSECURE_LAN"


def _private_address(host: str | None) -> bool:
    try:
        address = ipaddress.ip_address((host or "").strip("[]"))
    except ValueError:
        return False
    return address.is_private and not address.is_unspecified


def require_secure_url(url: str, what: str = "server") -> str:
    """`url` if it is https, or http on this machine; else a ClientError.

    Tokens, client secrets and passwords must not cross a network in clear text (RFC 6749 §1.6,
    RFC 8414 §2); plain http is only for trying a server on localhost, or, with
    QRLOGIN_INSECURE_LAN=1, `authserver demo --lan` on a private address.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.netloc:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url
    if (
        parts.scheme == "http"
        and os.environ.get(INSECURE_LAN_ENV) == "1"
        and _private_address(parts.hostname)
    ):
        return url
    raise ClientError(f"The {what} URL must be https (http only for localhost): {url!r}")


class ClientError(Exception):
    """Base of every error the reference clients raise."""


class TransportError(ClientError):
    """The request got no HTTP answer: connection refused or reset, DNS, timeout, TLS."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True)
class HttpResponse:
    """What came back: the status, the JSON body (None if the body was not JSON), headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def json_object(self) -> dict[str, Any]:
        """The body if it is a JSON object, else an empty dict."""
        return dict(self.body) if isinstance(self.body, dict) else {}

    def header(self, name: str) -> str | None:
        """A header's value, whatever its case on the wire (HTTP/2 sends lower case)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def retry_after(self, now: float) -> float | None:
        """RFC 9110 §10.2.3 Retry-After in seconds (delay-seconds or an HTTP-date), or None.

        `now` is the wall clock, for an HTTP-date.
        """
        value = (self.header("Retry-After") or "").strip()
        if value.isascii() and value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # "-0000": UTC without a zone (RFC 5322 §3.3)
            when = when.replace(tzinfo=UTC)
        return max(when.timestamp() - now, 0.0)


class Transport(Protocol):
    """Send one request and return the answer; raise TransportError if there is none."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        json_body: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> HttpResponse: ...


class RequestsTransport:
    """The default transport: requests, one Session per thread (a Session is not thread-safe).

    The PC client polls the token endpoint on one thread while it long-polls the status
    channel on another, so each thread gets its own connection pool.
    """

    def __init__(self, user_agent: str | None = None) -> None:
        self.user_agent = user_agent or f"qrlogin-clients/{__version__}"
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        json_body: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> HttpResponse:
        try:
            response = self._session().request(
                method,
                url,
                headers=dict(headers or {}),
                data=dict(form) if form is not None else None,
                json=json_body,
                timeout=timeout,
                allow_redirects=False,  # a redirected POST would drop or leak its body
            )
        except requests.Timeout as exc:
            raise TransportError(f"{method} {url}: timed out ({exc})", timeout=True) from exc
        except requests.RequestException as exc:
            raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = None
        return HttpResponse(response.status_code, body, dict(response.headers))

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
