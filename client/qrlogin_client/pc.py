"""A typed library for PC apps: sign in with the QR login server (RFC 8628 device flow).

    login = DeviceLogin("https://login.example.com", client_id="...", scope="profile")
    authorization = login.start()                     # show authorization.qr_text as a QR code
    tokens = login.wait(authorization, on_status=lambda update: print(update.message))
    TokenStore(path).save(
        tokens, issuer=login.issuer, client_id=login.client_id, dpop_key=login.dpop_key
    )

`wait` polls the token endpoint exactly as RFC 8628 §3.5 demands: it waits `interval` seconds
between polls, adds 5 s for every later poll after `slow_down`, keeps going on
`authorization_pending`, and stops with a typed exception on `access_denied` (AccessDenied),
`expired_token` (ExpiredToken) and on any error it does not know (OAuthError). A server that
cannot be reached or answers 5xx (a 503 temporarily_unavailable while Redis or the database
blips) is temporary: it keeps polling within the code's lifetime, halving its pace for each
failure in a row and waiting at least what Retry-After says, and says "Cannot reach the
server, retrying..." until the server answers again. Meanwhile a background thread
long-polls the server's status channel (`device_status_endpoint`, non-standard) to report
"waiting for scan", "scanned, confirm on your phone", then "signed in", "denied" or "expired"
through `on_status`. The status channel only informs the user: the tokens always come from
the token endpoint.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import fcntl
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from qrlogin_client import __version__
from qrlogin_client.dpop import ALGORITHM as DPOP_ALGORITHM
from qrlogin_client.dpop import DpopKey
from qrlogin_client.files import read_private_json, write_private_json
from qrlogin_client.http import (
    DEFAULT_TIMEOUT,
    ClientError,
    HttpResponse,
    RequestsTransport,
    Transport,
    TransportError,
    require_secure_url,
)
from qrlogin_client.i18n import _

__all__ = [
    "AccessDenied",
    "DeviceAuthorization",
    "DeviceLogin",
    "DeviceLoginError",
    "DiscoveryError",
    "ExpiredToken",
    "NotSignedIn",
    "OAuthError",
    "SavedLogin",
    "ServerMetadata",
    "Status",
    "StatusUpdate",
    "TemporarilyUnavailable",
    "TokenStore",
    "Tokens",
    "TransportError",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
METADATA_PATH = "/.well-known/oauth-authorization-server"
DEFAULT_INTERVAL = 5  # RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: slow_down adds 5 s to this and all subsequent requests
MAX_BACKOFF_INTERVAL = 60  # doubling after connection failures and 5xx stops growing here
STATUS_WAIT = 25.0  # seconds one status long-poll may wait (the server caps it too)
EXPIRY_LEEWAY = 30.0  # an access token this close to its expiry counts as expired


def default_user_agent() -> str:
    """What the phone's approval screen shows as the PC's user agent."""
    python = ".".join(platform.python_version_tuple()[:2])
    return f"qrlogin-pc/{__version__} ({platform.system() or 'unknown OS'}; Python {python})"


# --- errors -------------------------------------------------------------------------------
class DeviceLoginError(ClientError):
    """Base of the PC library's errors (TransportError is a ClientError too)."""


class DiscoveryError(DeviceLoginError):
    """The server's RFC 8414 metadata is missing, unreadable or not this server's."""


class NotSignedIn(DeviceLoginError):
    """The token store holds no tokens."""


class OAuthError(DeviceLoginError):
    """An RFC 6749 §5.2 error answer; `error` is the code, e.g. "invalid_grant"."""

    def __init__(self, error: str, description: str | None = None, status: int | None = None):
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}" if description else error)


class AccessDenied(OAuthError):
    """access_denied: the user (or an admin) declined the request."""


class ExpiredToken(OAuthError):
    """expired_token: the device code expired before it was approved; start a new one."""


class TemporarilyUnavailable(OAuthError):
    """A 5xx answer (usually 503 temporarily_unavailable): try again, after `retry_after`
    seconds if the server said (RFC 9110 §10.2.3)."""

    def __init__(
        self,
        error: str,
        description: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(error, description, status)
        self.retry_after = retry_after


_ERROR_CLASSES: dict[str, type[OAuthError]] = {
    "access_denied": AccessDenied,
    "expired_token": ExpiredToken,
}


def oauth_error(response: HttpResponse, now: float | None = None) -> OAuthError:
    """The typed error an error answer stands for (`now`: the wall clock, for Retry-After)."""
    body = response.json_object()
    code = body.get("error")
    found = body.get("error_description")
    description = found if isinstance(found, str) else None
    if response.status >= 500:
        # Whatever the body says (a proxy's 502 page has no OAuth error): the server, or what
        # it depends on, is failing for now. RFC 6749 §5.2's own code for it is
        # temporarily_unavailable (§4.1.2.1).
        return TemporarilyUnavailable(
            code if isinstance(code, str) and code else "temporarily_unavailable",
            description or f"HTTP {response.status} from the server",
            response.status,
            response.retry_after(time.time() if now is None else now),
        )
    if not isinstance(code, str) or not code:
        return OAuthError(
            "invalid_response", f"HTTP {response.status} without an OAuth error", response.status
        )
    return _ERROR_CLASSES.get(code, OAuthError)(code, description, response.status)


# --- what the server says -----------------------------------------------------------------
@dataclass(frozen=True)
class ServerMetadata:
    """The RFC 8414 metadata the client uses."""

    issuer: str
    device_authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str | None = None
    device_status_endpoint: str | None = None  # this server's non-standard status channel
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def supports_dpop(self) -> bool:
        """RFC 9449 §5.1: the server accepts DPoP proofs of this client's algorithm."""
        algorithms = self.raw.get("dpop_signing_alg_values_supported")
        return isinstance(algorithms, list) and DPOP_ALGORITHM in algorithms

    @classmethod
    def from_document(cls, document: Mapping[str, Any], expected_issuer: str) -> ServerMetadata:
        def text(name: str, required: bool = True) -> str | None:
            value = document.get(name)
            if isinstance(value, str) and value:
                if name.endswith("_endpoint"):
                    try:  # credentials go to these: never in clear text across a network
                        require_secure_url(value, name)
                    except ClientError as exc:
                        raise DiscoveryError(str(exc)) from None
                return value
            if required:
                raise DiscoveryError(f"The server's metadata has no {name!r}.")
            return None

        issuer = text("issuer") or ""
        if issuer.rstrip("/") != expected_issuer.rstrip("/"):
            # RFC 8414 §3.3: the issuer must be the one we asked, or the document is not to be
            # trusted (another server could be answering for it).
            raise DiscoveryError(
                f"The server at {expected_issuer} says its issuer is {issuer}; "
                f"use exactly {issuer} as the server address."
            )
        grants = document.get("grant_types_supported")
        if isinstance(grants, list) and DEVICE_CODE_GRANT not in grants:
            raise DiscoveryError(f"{issuer} does not offer the device flow (RFC 8628).")
        return cls(
            issuer=issuer,
            device_authorization_endpoint=text("device_authorization_endpoint") or "",
            token_endpoint=text("token_endpoint") or "",
            revocation_endpoint=text("revocation_endpoint", required=False),
            device_status_endpoint=text("device_status_endpoint", required=False),
            raw=dict(document),
        )


def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known path goes between the host and the issuer's path."""
    parts = urlsplit(issuer.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DiscoveryError(f"Not an http(s) URL: {issuer!r}")
    try:
        require_secure_url(issuer, "issuer")
    except ClientError as exc:
        raise DiscoveryError(str(exc)) from None
    return f"{parts.scheme}://{parts.netloc}{METADATA_PATH}{parts.path}"


@dataclass(frozen=True)
class DeviceAuthorization:
    """RFC 8628 §3.2: a started sign-in. Show `qr_text` as a QR code, and `user_code` and
    `verification_uri` for people who type the code instead (§3.3)."""

    device_code: str = field(repr=False)  # a secret: never shown, never logged
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    started_at: float  # the client's monotonic clock when the answer arrived
    qr_code_png: str | None = None  # this server's extras: the same QR as images
    qr_code_svg: str | None = None

    @property
    def qr_text(self) -> str:
        """What the QR code should encode: verification_uri_complete (RFC 8628 §3.3.1)."""
        return self.verification_uri_complete or self.verification_uri

    @property
    def expires_at(self) -> float:
        """When the code expires, on the client's monotonic clock."""
        return self.started_at + self.expires_in

    @classmethod
    def from_response(cls, body: Mapping[str, Any], started_at: float) -> DeviceAuthorization:
        try:
            interval = body.get("interval", DEFAULT_INTERVAL)
            return cls(
                device_code=str(body["device_code"]),
                user_code=str(body["user_code"]),
                verification_uri=str(body["verification_uri"]),
                verification_uri_complete=_optional_str(body.get("verification_uri_complete")),
                expires_in=int(body["expires_in"]),
                interval=max(int(interval if interval is not None else DEFAULT_INTERVAL), 1),
                started_at=started_at,
                qr_code_png=_optional_str(body.get("qr_code_png")),
                qr_code_svg=_optional_str(body.get("qr_code_svg")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OAuthError(
                "invalid_response", f"Incomplete device authorization response: {exc}"
            ) from exc


class Status(enum.StrEnum):
    """Where a sign-in stands, as `on_status` reports it."""

    PENDING = "pending"  # waiting for the phone to scan the QR code
    SCANNED = "scanned"  # scanned; the user is looking at the approval screen
    APPROVED = "approved"  # confirmed on the phone; the token poll picks the tokens up
    SIGNED_IN = "signed_in"  # the tokens arrived (reported by the client, never the server)
    DENIED = "denied"
    EXPIRED = "expired"
    UNREACHABLE = "unreachable"  # the client cannot reach the server right now; it retries


FINAL_STATUSES = frozenset({Status.SIGNED_IN, Status.DENIED, Status.EXPIRED})


@dataclass(frozen=True)
class StatusUpdate:
    """One step of a sign-in, for the user to see."""

    status: Status
    scanner_name: str | None = None  # masked by the server, e.g. "D*** U***"
    scanner_platform: str | None = None
    expires_in: int | None = None
    match_number: int | None = None  # number matching: the phone must pick this number
    # A rotating QR code: the link to show as the QR code from now on (about 30 s).
    qr_text: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def message(self) -> str:
        scanner = ", ".join(part for part in (self.scanner_name, self.scanner_platform) if part)
        if self.status is Status.PENDING:
            return _("Waiting for scan...")
        if self.status is Status.SCANNED:
            suffix = f" ({scanner})" if scanner else ""
            if self.match_number is not None:
                return _("Scanned{suffix}: on your phone, pick {number} to confirm...").format(
                    suffix=suffix, number=self.match_number
                )
            return _("Scanned, confirm on your phone{suffix}...").format(suffix=suffix)
        if self.status is Status.APPROVED:
            return _("Approved on your phone, signing in...")
        if self.status is Status.SIGNED_IN:
            return _("Signed in.")
        if self.status is Status.UNREACHABLE:
            return _("Cannot reach the server, retrying...")
        if self.status is Status.DENIED:
            return _("Denied: the sign-in was declined.")
        return _("Expired: the code timed out before it was approved.")


@dataclass(frozen=True)
class Tokens:
    """RFC 6749 §5.1 tokens, with when they were obtained (wall clock, seconds)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int | None
    refresh_token: str | None = field(repr=False)
    scope: str | None
    obtained_at: float

    @property
    def expires_at(self) -> float | None:
        """When the access token expires (wall clock), or None if the server did not say."""
        return None if self.expires_in is None else self.obtained_at + self.expires_in

    def is_expired(self, now: float | None = None, leeway: float = EXPIRY_LEEWAY) -> bool:
        """True if the access token has expired or will within `leeway` seconds."""
        expires_at = self.expires_at
        if expires_at is None:
            return False
        return (time.time() if now is None else now) >= expires_at - leeway

    @classmethod
    def from_response(cls, body: Mapping[str, Any], obtained_at: float) -> Tokens:
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise OAuthError("invalid_response", "The token response has no access_token.")
        expires_in = body.get("expires_in")
        return cls(
            access_token=token,
            token_type=str(body.get("token_type") or "Bearer"),
            expires_in=int(expires_in) if isinstance(expires_in, int | float) else None,
            refresh_token=_optional_str(body.get("refresh_token")),
            scope=_optional_str(body.get("scope")),
            obtained_at=obtained_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
            "obtained_at": self.obtained_at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tokens:
        return cls.from_response(data, float(data.get("obtained_at") or 0.0))


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- the client ---------------------------------------------------------------------------
StatusCallback = Callable[[StatusUpdate], None]


class DeviceLogin:
    """Sign in a PC app through the QR login server.

    `server` is the issuer (its metadata is discovered from RFC 8414's well-known URL, and must
    name the same issuer). A confidential client passes `client_secret` (sent with HTTP Basic);
    a public one does not (RFC 8628 §5.6). `transport`, `clock` (monotonic), `wall_clock` and
    `sleep` can be replaced, e.g. by fakes in tests.

    `dpop`: with True (the default) and a server that supports DPoP (RFC 9449), a fresh key is
    made and the device code and tokens are bound to it, so a copy of them is worthless
    without the key (keep `dpop_key` with the tokens: TokenStore does); a DpopKey uses that
    key; False asks for bearer tokens.
    """

    def __init__(
        self,
        server: str,
        client_id: str,
        client_secret: str | None = None,
        scope: str | Sequence[str] | None = None,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        status_wait: float = STATUS_WAIT,
        metadata: ServerMetadata | None = None,
        dpop: bool | DpopKey = True,
        number_matching: bool = False,
        rotating_qr: bool = False,
    ) -> None:
        self.server = server.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope if scope is None or isinstance(scope, str) else " ".join(scope)
        self._transport = transport or RequestsTransport(user_agent or default_user_agent())
        self._owns_transport = transport is None
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._timeout = timeout
        self._status_wait = status_wait
        self._metadata = metadata
        self._metadata_lock = threading.Lock()
        self._dpop = dpop
        self._dpop_nonce: str | None = None
        # Ask for number matching: this app shows the status channel's number to the user.
        self.number_matching = number_matching
        # Ask for a rotating QR code: the app redraws it from each StatusUpdate.qr_text.
        self.rotating_qr = rotating_qr

    @property
    def dpop_key(self) -> DpopKey | None:
        """The key this login binds its device code and tokens to, if the server takes DPoP."""
        if self._dpop is False:
            return None
        if self._dpop is True:
            if not self.metadata.supports_dpop:
                return None
            self._dpop = DpopKey()
        return self._dpop

    # -- discovery
    @property
    def metadata(self) -> ServerMetadata:
        """The server's metadata, fetched once (RFC 8414)."""
        with self._metadata_lock:
            if self._metadata is None:
                url = metadata_url(self.server)
                response = self._transport.request("GET", url, timeout=self._timeout)
                if response.status != 200 or not isinstance(response.body, dict):
                    raise DiscoveryError(f"GET {url}: HTTP {response.status}, no metadata.")
                self._metadata = ServerMetadata.from_document(response.body, self.server)
            return self._metadata

    @property
    def issuer(self) -> str:
        return self.metadata.issuer

    # -- the device flow
    def start(self) -> DeviceAuthorization:
        """RFC 8628 §3.1: ask for a device code and a user code."""
        form: dict[str, str] = {}
        if self.scope:
            form["scope"] = self.scope
        if self.number_matching:
            form["number_matching"] = "true"
        if self.rotating_qr:
            form["rotating_qr"] = "true"
        response = self._post(self.metadata.device_authorization_endpoint, form, proof=True)
        if response.status != 200:
            raise oauth_error(response)
        return DeviceAuthorization.from_response(response.json_object(), self._clock())

    def wait(
        self,
        authorization: DeviceAuthorization,
        on_status: StatusCallback | None = None,
        *,
        watch_status: bool = True,
    ) -> Tokens:
        """Poll the token endpoint until the user approves; return the tokens.

        Raises AccessDenied, ExpiredToken, OAuthError for any other error code (RFC 8628
        §3.5: the client stops), or DiscoveryError. `on_status` gets a StatusUpdate whenever
        the sign-in moves on; it may be called from a background thread (one call at a time)
        and ends with exactly one final update (signed in, denied or expired) unless `wait`
        raises something else.
        """
        reporter = _Reporter(on_status)

        def unreachable(down: bool) -> None:
            # The token poll's view; the status thread says the same of its own requests.
            if down:
                reporter.report(StatusUpdate(Status.UNREACHABLE))
            else:
                reporter.restore()

        stop = threading.Event()
        endpoint = self.metadata.device_status_endpoint
        if watch_status and endpoint:
            watcher = StatusWatcher(
                self, authorization, reporter.report, pause=stop.wait, stopped=stop.is_set
            )
            threading.Thread(target=watcher.run, name="qrlogin-status", daemon=True).start()
        else:
            reporter.report(StatusUpdate(Status.PENDING, expires_in=authorization.expires_in))
        try:
            tokens = self.poll_until_done(authorization, on_unreachable=unreachable)
        except AccessDenied:
            reporter.report(StatusUpdate(Status.DENIED))
            raise
        except ExpiredToken:
            reporter.report(StatusUpdate(Status.EXPIRED, expires_in=0))
            raise
        except BaseException:
            reporter.close()
            raise
        finally:
            stop.set()
        reporter.report(StatusUpdate(Status.SIGNED_IN))
        return tokens

    def poll_until_done(
        self,
        authorization: DeviceAuthorization,
        on_unreachable: Callable[[bool], None] | None = None,
    ) -> Tokens:
        """The RFC 8628 §3.5 polling loop alone, without the status channel.

        A connection failure or a 5xx is temporary: the loop keeps polling until the code
        expires, `on_unreachable(True)` is called at the first failure in a row and
        `on_unreachable(False)` when the server answers again.
        """
        interval = float(authorization.interval)  # the server's pace, slow_down included
        backoff = interval  # the pace while the server fails: doubles per failure in a row
        pause = interval
        failing = False
        while True:
            # The user cannot have approved already: wait first; never past the code's life.
            self._sleep(max(min(pause, authorization.expires_at - self._clock()), 0.0))
            if self._clock() >= authorization.expires_at:
                raise ExpiredToken("expired_token", "The code expired before it was approved.")
            try:
                response = self._post(
                    self.metadata.token_endpoint,
                    {"grant_type": DEVICE_CODE_GRANT, "device_code": authorization.device_code},
                    proof=True,  # a device code asked for with a key is redeemed with it
                )
                error = (
                    None if response.status == 200 else oauth_error(response, self._wall_clock())
                )
            except TransportError:
                response, error = None, TemporarilyUnavailable("unreachable")
            if isinstance(error, TemporarilyUnavailable):
                # §3.5: after a connection timeout, reduce the polling frequency (doubling);
                # a 5xx the same, and never sooner than its Retry-After (RFC 9110 §10.2.3).
                backoff = min(backoff * 2, max(MAX_BACKOFF_INTERVAL, interval))
                pause = max(backoff, min(error.retry_after or 0.0, MAX_BACKOFF_INTERVAL))
                if not failing and on_unreachable is not None:
                    on_unreachable(True)
                failing = True
                continue
            if failing and on_unreachable is not None:
                on_unreachable(False)
            failing = False
            if response is not None and response.status == 200:
                return Tokens.from_response(response.json_object(), self._wall_clock())
            assert error is not None
            if error.error == "slow_down":
                interval += SLOW_DOWN_STEP  # for this and all later polls
            elif error.error != "authorization_pending":
                raise error  # access_denied, expired_token, and anything else: stop
            # The server answers again: back to its own pace.
            backoff = pause = interval

    def status(
        self, authorization: DeviceAuthorization, known: str | None = None, wait: float = 0
    ) -> HttpResponse:
        """One request to the status channel (`known`: the last status seen, to long-poll)."""
        endpoint = self.metadata.device_status_endpoint
        if not endpoint:
            raise DiscoveryError("The server has no device_status_endpoint.")
        form = {"device_code": authorization.device_code}
        if known:
            form["status"] = known
        if wait > 0:
            form["wait"] = f"{wait:g}"
        return self._post(endpoint, form, timeout=self._timeout + max(wait, 0))

    # -- tokens
    def refresh(self, tokens: Tokens, scope: str | None = None) -> Tokens:
        """RFC 6749 §6: new tokens for the refresh token (which rotates: keep the new one)."""
        if not tokens.refresh_token:
            raise OAuthError("invalid_grant", "There is no refresh token to use.")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        if scope:
            form["scope"] = scope
        response = self._post(self.metadata.token_endpoint, form, proof=True)
        if response.status != 200:
            raise oauth_error(response)
        return Tokens.from_response(response.json_object(), self._wall_clock())

    def revoke(self, tokens: Tokens) -> None:
        """RFC 7009: revoke the refresh token (the server drops its access tokens with it),
        or the access token alone if there is no refresh token."""
        endpoint = self.metadata.revocation_endpoint
        if not endpoint:
            raise DiscoveryError("The server has no revocation_endpoint.")
        if tokens.refresh_token:
            form = {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
        else:
            form = {"token": tokens.access_token, "token_type_hint": "access_token"}
        response = self._post(endpoint, form)
        if response.status != 200:
            raise oauth_error(response)

    def me(self, tokens: Tokens) -> dict[str, Any]:
        """Who the access token speaks for: this server's sample resource `GET /api/v1/me`."""
        url = f"{self.issuer}/api/v1/me"
        key = self.dpop_key if tokens.token_type.lower() == "dpop" else None
        if tokens.token_type.lower() == "dpop" and key is None:
            raise OAuthError("invalid_token", "These tokens are DPoP-bound and the key is lost.")
        for _attempt in range(2):
            headers = {"Authorization": f"{tokens.token_type} {tokens.access_token}"}
            if key is not None:
                headers["DPoP"] = key.proof(
                    "GET", url, access_token=tokens.access_token, nonce=self._dpop_nonce
                )
            response = self._transport.request("GET", url, headers=headers, timeout=self._timeout)
            if not self._asks_for_nonce(response):
                break
        if response.status != 200:
            raise oauth_error(response)
        return response.json_object()

    def close(self) -> None:
        if self._owns_transport and isinstance(self._transport, RequestsTransport):
            self._transport.close()

    def __enter__(self) -> DeviceLogin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing
    def _post(
        self,
        url: str,
        form: Mapping[str, str],
        timeout: float | None = None,
        *,
        proof: bool = False,
    ) -> HttpResponse:
        """A form POST with client authentication: HTTP Basic with a secret (RFC 6749
        §2.3.1, id and secret form-encoded first), else client_id in the body. With `proof`
        and a DPoP key, a fresh DPoP proof goes with it (sent again once with the server's
        nonce if it asks for one, RFC 9449 §8)."""
        body = dict(form)
        headers: dict[str, str] = {}
        if self.client_secret:
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            body["client_id"] = self.client_id
        key = self.dpop_key if proof else None
        for _attempt in range(2):
            if key is not None:
                headers["DPoP"] = key.proof("POST", url, nonce=self._dpop_nonce)
            response = self._transport.request(
                "POST", url, headers=headers, form=body, timeout=timeout or self._timeout
            )
            if key is None or not self._asks_for_nonce(response):
                return response
        return response

    def _asks_for_nonce(self, response: HttpResponse) -> bool:
        """Keep the server's latest DPoP nonce; True if the request must be sent again."""
        nonce = {k.lower(): v for k, v in response.headers.items()}.get("dpop-nonce")
        if nonce:
            self._dpop_nonce = nonce
        error = response.body.get("error") if isinstance(response.body, dict) else None
        if error is None:
            challenge = {k.lower(): v for k, v in response.headers.items()}.get(
                "www-authenticate", ""
            )
            error = "use_dpop_nonce" if 'error="use_dpop_nonce"' in challenge else None
        return error == "use_dpop_nonce" and bool(nonce)


class _Reporter:
    """Serializes status callbacks from two threads, drops repeats and anything after the end."""

    def __init__(self, callback: StatusCallback | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._last: StatusUpdate | None = None
        self._known: StatusUpdate | None = None  # the last update that was not UNREACHABLE
        self._closed = False

    def report(self, update: StatusUpdate) -> None:
        with self._lock:
            if self._closed:
                return
            last = self._last
            if (
                last is not None
                and (last.status, last.scanner_name) == (update.status, update.scanner_name)
                and update.qr_text is None  # a new QR link is news, whatever the status
            ):
                return
            self._last = update
            if update.status is not Status.UNREACHABLE:
                self._known = update
            self._closed = update.final
            if self._callback is not None:
                self._callback(update)

    def restore(self) -> None:
        """After "cannot reach the server": show again where the sign-in stood."""
        with self._lock:
            known = self._known
        if known is not None:
            self.report(known)

    def close(self) -> None:
        with self._lock:
            self._closed = True


class StatusWatcher:
    """Long-polls the status channel and reports each change; runs on a background thread.

    It ends when the flow is approved, denied or expired, when the server stops answering
    for the code, or when `stopped()` says so. `pause(seconds)` waits and returns True if the
    watcher should stop (threading.Event.wait has exactly that contract).
    """

    def __init__(
        self,
        login: DeviceLogin,
        authorization: DeviceAuthorization,
        report: StatusCallback,
        *,
        pause: Callable[[float], bool],
        stopped: Callable[[], bool],
    ) -> None:
        self._login = login
        self._authorization = authorization
        self._report = report
        self._pause = pause
        self._stopped = stopped

    def run(self) -> None:
        # The status line is a nicety: whatever goes wrong here, the token poll decides.
        with contextlib.suppress(Exception):
            self._run()

    def _run(self) -> None:
        clock = self._login._clock
        known: Status | None = None
        failures = 0
        token: str | None = None  # the rotating QR code's scan token, if it has one
        refresh_in = self._login._status_wait
        while not self._stopped():
            sent = clock()
            retry_after: float | None = None
            try:
                # Back in time for the next QR token, if the QR code rotates.
                wait = min(self._login._status_wait, refresh_in) if known else 0
                response = self._login.status(self._authorization, known, wait)
                if response.status >= 500:  # e.g. 503 while Redis blips: temporary
                    retry_after = response.retry_after(self._login._wall_clock())
                    raise TransportError(f"HTTP {response.status}")
            except TransportError:
                failures += 1
                if failures == 1:
                    # Say so, then report whatever the server says once it answers again.
                    self._report(StatusUpdate(Status.UNREACHABLE))
                    known = None
                wait = max(min(2.0**failures, 30.0), min(retry_after or 0.0, 30.0))
                if self._pause(wait):
                    return
                continue
            failures = 0
            body = response.json_object()
            if response.status != 200 or body.get("status") not in _SERVER_STATUSES:
                return  # the code is gone, or this is no status answer: nothing more to tell
            status = Status(body["status"])
            if self._stopped():
                return
            new_token = _optional_str(body.get("qr_token"))
            refresh_in = float(
                _optional_int(body.get("qr_token_expires_in")) or self._login._status_wait
            )
            rotated = new_token is not None and new_token != token
            token = new_token or token
            if status != known or rotated:
                found = body.get("scanner")
                scanner: dict[str, Any] = found if isinstance(found, dict) else {}
                self._report(
                    StatusUpdate(
                        status,
                        scanner_name=_optional_str(scanner.get("name")),
                        scanner_platform=_optional_str(scanner.get("platform")),
                        expires_in=_optional_int(body.get("expires_in")),
                        match_number=_optional_int(body.get("match_number")),
                        qr_text=(
                            f"{self._authorization.qr_text}&t={quote(token)}"
                            if rotated and token
                            else None
                        ),
                    )
                )
            elif clock() - sent < 1.0 and self._pause(float(self._authorization.interval)):
                return  # answered at once with no news (the server is busy): do not spin
            known = status
            if status in (Status.APPROVED, Status.DENIED, Status.EXPIRED):
                return


_SERVER_STATUSES = {"pending", "scanned", "approved", "denied", "expired"}


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


# --- keeping tokens -----------------------------------------------------------------------
@dataclass(frozen=True)
class SavedLogin:
    """What a token file holds: the tokens and which server and client they belong to."""

    issuer: str
    client_id: str
    tokens: Tokens
    dpop_key: DpopKey | None = None  # the key DPoP-bound tokens need (RFC 9449)


class TokenStore:
    """Tokens in a JSON file that only its owner can read (mode 0600, see qrlogin_client.files)."""

    def __init__(self, path: str | Path, wall_clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path).expanduser()
        self._wall_clock = wall_clock

    def save(
        self, tokens: Tokens, *, issuer: str, client_id: str, dpop_key: DpopKey | None = None
    ) -> None:
        """Save the tokens, and the private DPoP key they are bound to (the file is 0600)."""
        data: dict[str, Any] = {
            "issuer": issuer,
            "client_id": client_id,
            "tokens": tokens.to_dict(),
        }
        if dpop_key is not None:
            data["dpop_key"] = dpop_key.to_pem()
        write_private_json(self.path, data)

    def load(self) -> SavedLogin:
        """The saved login; NotSignedIn if there is none, DeviceLoginError if unreadable."""
        try:
            data = read_private_json(self.path)
        except FileNotFoundError:
            raise NotSignedIn(f"Not signed in: no token file at {self.path}.") from None
        except (OSError, ValueError) as exc:
            raise DeviceLoginError(f"Cannot read the token file {self.path}: {exc}") from exc
        try:
            key = data.get("dpop_key")
            return SavedLogin(
                issuer=str(data["issuer"]),
                client_id=str(data["client_id"]),
                tokens=Tokens.from_dict(data["tokens"]),
                dpop_key=DpopKey.from_pem(key) if isinstance(key, str) else None,
            )
        except (KeyError, TypeError, ValueError, OAuthError) as exc:
            raise DeviceLoginError(f"The token file {self.path} is malformed: {exc}") from exc

    def exists(self) -> bool:
        return self.path.exists()

    def delete(self) -> bool:
        """Remove the file; False if there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on this token file (a sibling `.lock` file, mode 0600).

        Refreshing rotates the refresh token, and the server treats a reused one as a replay
        that revokes the whole sign-in (RFC 9700 §4.14.2): two commands refreshing at once
        must take turns, the second one using what the first saved.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def refreshed(self, login: DeviceLogin, *, force: bool = False) -> Tokens:
        """The saved tokens, refreshed (and saved) if the access token expired or `force`.

        Under the file lock, re-read first: another command may have refreshed meanwhile.
        """
        with self.locked():
            saved = self.load()
            expired = saved.tokens.is_expired(self._wall_clock())
            if not force and (not expired or not saved.tokens.refresh_token):
                return saved.tokens
            tokens = login.refresh(saved.tokens)
            self.save(
                tokens, issuer=saved.issuer, client_id=saved.client_id, dpop_key=saved.dpop_key
            )
            return tokens

    def access_token_expired(self, leeway: float = EXPIRY_LEEWAY) -> bool:
        """True if the saved access token has expired (or will within `leeway` seconds)."""
        return self.load().tokens.is_expired(self._wall_clock(), leeway)

    def login(self, client_secret: str | None = None, **options: Any) -> DeviceLogin:
        """A DeviceLogin for the server and client the saved tokens belong to."""
        saved = self.load()
        options.setdefault("dpop", saved.dpop_key or False)
        return DeviceLogin(saved.issuer, saved.client_id, client_secret, **options)
