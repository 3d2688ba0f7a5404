"""The one configuration reader: a frozen Config from AUTHSERVER_* variables, checked at start."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from authserver.domain.flow import DEFAULT_REDEMPTION_LEASE
from authserver.storage.key_encryption import parse_keys

# A DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port.
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?)(:[0-9]{1,5})?")


def is_private_literal(host: str) -> bool:
    """A private IP address literal (RFC 1918, RFC 4193, link-local): a LAN, not the internet."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_private and not address.is_loopback and not address.is_unspecified


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it."""


PREFIX = "AUTHSERVER_"  # every setting's variable, and no other variable, starts with it


def _refuse_unknown(environ: Mapping[str, str], known: set[str]) -> None:
    """ConfigError naming every AUTHSERVER_* variable that is no setting, with the likeliest."""
    unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in known)
    if not unknown:
        return
    # Compared without the shared prefix, which would make every name look close.
    settings = {name.removeprefix(PREFIX): name for name in known}
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name.removeprefix(PREFIX).upper(), settings, n=1)
        hints.append(f"{name} (did you mean {settings[close[0]]}?)" if close else name)
    raise ConfigError(
        f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: every "
        f"{PREFIX}* variable must be a setting (README 'Settings'); correct or unset it"
    )


# Settings where 0 means "none" or "off".
_MAY_BE_ZERO = ("trusted_proxies", "refresh_grace", "sql_pool_overflow")


# RFC 7518 §3.1 asymmetric signature algorithms (and RFC 8037's EdDSA) an external identity
# provider's tokens may use. Never "none", never HS*: a public JWKS key must not become an HMAC
# secret (RFC 8725 §2.1, §3.1).
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """An identity provider whose tokens the token exchange grant accepts (RFC 8693)."""

    issuer: str  # the `iss` its tokens carry, compared exactly
    jwks_uri: str  # where its public keys are (RFC 7517)
    audiences: tuple[str, ...]  # a token's `aud` must name one of these
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS


class AccessLog(StrEnum):
    """What the server writes per request (AUTHSERVER_ACCESS_LOG)."""

    JSON = "json"  # one JSON line per request on stdout, with its request id
    OFF = "off"


class DpopNonce(StrEnum):
    """Whether DPoP proofs must carry a nonce this server issued (AUTHSERVER_DPOP_NONCE)."""

    OFF = "off"  # proofs are fresh by iat and jti alone (RFC 9449 §11.1)
    REQUIRED = "required"  # RFC 9449 §8 and §9: proofs made in advance are useless


class PhoneKeys(StrEnum):
    """Whether the mobile app must bind its device token to a key (AUTHSERVER_PHONE_KEYS)."""

    OPTIONAL = "optional"  # an app that registers a key must prove it; others stay bearer
    REQUIRED = "required"  # every sign-in registers a key and every call proves it (RFC 9449)


@dataclass(frozen=True)
class Config:
    """Every setting of the server. Field `foo_bar` is read from AUTHSERVER_FOO_BAR."""

    database_url: str = "sqlite:///authserver.db"
    redis_url: str | None = None  # unset: the embedded, single-process flow store
    issuer: str = "http://127.0.0.1:8000"
    device_code_ttl: int = 600  # RFC 8628 §3.2 expires_in
    poll_interval: int = 5  # RFC 8628 §3.2 interval
    confirm_token_ttl: int = 120
    access_token_ttl: int = 600
    refresh_token_ttl: int = 30 * 24 * 3600
    # Seconds after a rotation in which the replaced refresh token may rotate once more (its
    # response was lost on the network) instead of revoking the family. Off by default, as in
    # Hydra, django-oauth-toolkit and Auth0: a replay inside the window is not caught.
    refresh_grace: int = 0
    # Seconds a token poll's claim on an approved flow lasts; a claim that never issued lapses
    # then and the next poll claims again (keep it above every bounded SQL wait of one step).
    redemption_lease: int = DEFAULT_REDEMPTION_LEASE
    mobile_token_ttl: int = 90 * 24 * 3600
    admin_session_ttl: int = 8 * 3600  # admin API token and console cookie
    web_session_ttl: int = 3600  # a browser signed in on the verification page (/device)
    # The code flow: how long a code may wait for its exchange (RFC 6749 §4.1.2 "maximum
    # lifetime of 10 minutes ... RECOMMENDED"; a browser redirect takes a second), and how long
    # a browser signed in by a QR login stays signed in for prompt=none and other websites.
    authorization_code_ttl: int = 60
    browser_session_ttl: int = 8 * 3600
    access_token_audience: str = ""  # empty: the issuer
    # What clients may be allowed; the default is what OpenID Connect clients such as MSAL send
    # (`openid profile offline_access`) plus email. domain/oidc.py says what each one means.
    scopes: str = "openid profile email offline_access"
    status_max_wait: int = 25  # longest long-poll of the status channel, seconds
    status_max_waiters: int = 16  # long-polls held at once per process (keep < threads)
    device_authorizations_per_minute: int = 60  # per client and IP
    user_code_attempts: int = 10  # failed user-code entries per account per window
    user_code_attempts_per_ip: int = 30
    login_attempts: int = 10  # failed password sign-ins per account and IP per window
    rate_limit_window: int = 900
    login_max_delay: int = 60  # the longest per-account delay between sign-in attempts, s
    device_cookie_ttl: int = 180 * 86400  # a known-device cookie vouches for this long
    trusted_proxies: int = 0  # X-Forwarded-For hops to trust for the client IP
    # Host headers served besides the issuer's: "host" (any port) or "host:port", comma-separated.
    allowed_hosts: str = ""
    scrypt_p: int = 3  # scrypt parallelism for new password hashes (N=2^15, r=8)
    redis_prefix: str = "authserver:"
    access_log: AccessLog = AccessLog.JSON
    # Every wait on a dependency is bounded (seconds; fractions allowed). storage/sql/guard.py
    # and storage/redis_store/client.py apply them.
    sql_connect_timeout: float = 3.0  # libpq counts whole seconds, at least 2
    sql_statement_timeout: float = 5.0  # server-side; a hung server is cut off a moment later
    sql_lock_timeout: float = 2.0
    sql_pool_timeout: float = 2.0  # waiting for a free connection of the pool
    sql_pool_size: int = 5  # connections kept open per process
    sql_pool_overflow: int = 5  # more connections opened under load, closed when returned
    sql_max_threads: int = 12  # threads per process using or waiting for SQL; beyond: 503
    redis_timeout: float = 2.0  # connect and every command
    # Identity providers whose tokens the mobile app may exchange for a device token (RFC 8693),
    # a JSON list of {"issuer", "jwks_uri", "audience", "algorithms"?}; empty: the grant is off.
    trusted_issuers: str = ""
    jwks_timeout: float = 3.0  # fetching an identity provider's JWKS, connect and read
    # RFC 9449: how long a DPoP proof is accepted after its iat (seconds; its jti is remembered
    # that long), and whether proofs must carry a server nonce.
    dpop_proof_lifetime: int = 60
    dpop_nonce: DpopNonce = DpopNonce.OFF
    phone_keys: PhoneKeys = PhoneKeys.OPTIONAL
    # Private signing keys are encrypted in SQL (storage/key_encryption.py) with these Fernet
    # keys, comma-separated (the first encrypts); unset: with the key in this file, made once.
    key_encryption_keys: str = ""
    # /metrics: with a token, for `Authorization: Bearer <token>` only; unset, loopback only.
    metrics_token: str = ""
    key_encryption_key_file: str = "authserver.kek"

    def __post_init__(self) -> None:
        # Heroku-style `postgres://` and a bare `postgresql://` name SQLAlchemy's psycopg2
        # driver, which is not installed: both mean psycopg 3 here.
        object.__setattr__(self, "database_url", _normalised_database_url(self.database_url))

    @property
    def audience(self) -> str:
        return self.access_token_audience or self.issuer

    @property
    def scope_list(self) -> tuple[str, ...]:
        return tuple(self.scopes.split())

    @property
    def verification_uri(self) -> str:
        return f"{self.issuer}/device"

    @property
    def allowed_host_list(self) -> tuple[str, ...]:
        """AUTHSERVER_ALLOWED_HOSTS as lower-case entries (web/hosts.py matches them)."""
        return tuple(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())

    @property
    def trusted_issuer_list(self) -> tuple[TrustedIssuer, ...]:
        """AUTHSERVER_TRUSTED_ISSUERS parsed; validate() has checked it."""
        return _trusted_issuers(self.trusted_issuers)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        defaults: Mapping[str, object] | None = None,
        lan_demo: bool = False,
        **overrides: object,
    ) -> Config:
        """Read AUTHSERVER_* variables, convert and validate them.

        Precedence: `overrides`, then the environment, then `defaults`, then the field defaults.
        An AUTHSERVER_* variable that is no setting is refused: a misspelt one would be ignored.
        """
        environ = os.environ if environ is None else environ
        _refuse_unknown(environ, {f"{PREFIX}{f.name.upper()}" for f in dataclasses.fields(cls)})
        values: dict[str, object] = dict(defaults or {})
        for field in dataclasses.fields(cls):
            raw = environ.get(f"AUTHSERVER_{field.name.upper()}")
            if raw is None or raw == "":
                continue
            if field.type in ("int", int):
                try:
                    values[field.name] = int(raw)
                except ValueError:
                    raise ConfigError(
                        f"AUTHSERVER_{field.name.upper()} must be a whole number, got {raw!r}"
                    ) from None
            elif isinstance(field.default, StrEnum):
                vocabulary = type(field.default)
                try:
                    values[field.name] = vocabulary(raw.strip().lower())
                except ValueError:
                    choices = "|".join(vocabulary)
                    raise ConfigError(
                        f"AUTHSERVER_{field.name.upper()} must be one of {choices}, got {raw!r}"
                    ) from None
            elif field.type in ("float", float):
                try:
                    values[field.name] = float(raw)
                except ValueError:
                    raise ConfigError(
                        f"AUTHSERVER_{field.name.upper()} must be a number, got {raw!r}"
                    ) from None
            else:
                values[field.name] = raw
        values.update(overrides)
        config = cls(**values)  # type: ignore[arg-type]
        config.validate(lan_demo=lan_demo)
        return config

    def validate(self, *, lan_demo: bool = False) -> None:
        """Fail at start-up, naming the setting, rather than at the first request.

        `lan_demo` (`authserver demo --lan` only, never a setting): plain http is allowed for
        an issuer on a private address too, so a phone on the same Wi-Fi can try it."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", int) and field.name not in _MAY_BE_ZERO and value <= 0:
                raise ConfigError(f"AUTHSERVER_{field.name.upper()} must be positive")
            if field.type in ("float", float) and not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"AUTHSERVER_{field.name.upper()} must be a positive number of seconds"
                )
        for name in _MAY_BE_ZERO:
            if getattr(self, name) < 0:
                raise ConfigError(f"AUTHSERVER_{name.upper()} must be 0 or more")
        _check_database_url(self.database_url)
        if self.redis_url is not None:
            _check_redis_url(self.redis_url)
        issuer = urlsplit(self.issuer)
        # RFC 8414 §2: https, no query or fragment; plain http only for a local machine.
        local = issuer.hostname in ("localhost", "127.0.0.1", "::1") or (
            lan_demo and is_private_literal(issuer.hostname or "")
        )
        if issuer.scheme not in ("https", "http") or (issuer.scheme == "http" and not local):
            raise ConfigError("AUTHSERVER_ISSUER must be an https URL (http only for localhost)")
        if issuer.query or issuer.fragment or self.issuer.endswith("/"):
            raise ConfigError("AUTHSERVER_ISSUER must have no query, fragment or trailing slash")
        if self.key_encryption_keys:
            try:
                parse_keys(self.key_encryption_keys)
            except ValueError:
                raise ConfigError(
                    "AUTHSERVER_KEY_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64 bytes"
                    " each, comma-separated); make one with `authserver keys new-kek`"
                ) from None
        if not self.scope_list:
            raise ConfigError("AUTHSERVER_SCOPES must name at least one scope")
        for host in self.allowed_host_list:
            parts = urlsplit(f"//{host}")
            try:
                port = parts.port
            except ValueError:
                port = -1
            if not _HOST.fullmatch(host) or not parts.hostname or port == -1:
                raise ConfigError(
                    f"AUTHSERVER_ALLOWED_HOSTS: {host!r} is not a host name or host:port"
                )
        # A live claim must never be taken over: one redemption's slowest bounded path is a pool
        # wait, a connect and a statement.
        slowest_step = self.sql_pool_timeout + self.sql_connect_timeout + self.sql_statement_timeout
        if self.redemption_lease < slowest_step:
            raise ConfigError(
                "AUTHSERVER_REDEMPTION_LEASE must be at least AUTHSERVER_SQL_POOL_TIMEOUT + "
                "AUTHSERVER_SQL_CONNECT_TIMEOUT + AUTHSERVER_SQL_STATEMENT_TIMEOUT "
                f"({slowest_step:g})"
            )
        if self.confirm_token_ttl > self.device_code_ttl:
            raise ConfigError("AUTHSERVER_CONFIRM_TOKEN_TTL must not exceed the device code TTL")
        self.trusted_issuer_list  # noqa: B018 - parsing it is the check


# SQLAlchemy URL schemes (dialect+driver) the code supports; storage/sql/guard.py bounds psycopg.
_DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")
_POSTGRES_ALIASES = ("postgres", "postgresql")
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,30}", re.IGNORECASE)  # RFC 3986 §3.1


def _scheme(url: str) -> str:
    """The URL's scheme in lower case; "" if there is none (so an error may show it: no secret)."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and _SCHEME.fullmatch(scheme) else ""


def _normalised_database_url(url: str) -> str:
    """`postgres://` and `postgresql://` as `postgresql+psycopg://`; anything else as given."""
    if _scheme(url) in _POSTGRES_ALIASES:
        return "postgresql+psycopg://" + url.partition("://")[2]
    return url


def _check_database_url(url: str) -> None:
    """Only what the code runs on; the message shows the scheme, never the URL's password."""
    scheme = _scheme(url)
    if scheme not in _DATABASE_SCHEMES:
        got = f"{scheme}://..." if scheme else "no URL scheme"
        raise ConfigError(
            "AUTHSERVER_DATABASE_URL: only SQLite (sqlite:///path/to/file.db) and PostgreSQL "
            f"through psycopg 3 (postgresql://user@host/dbname) are supported, got {got}"
        )


def _check_redis_url(url: str) -> None:
    """What redis-py's from_url accepts, checked at start (it would raise a bare ValueError)."""
    name = "AUTHSERVER_REDIS_URL"
    scheme = _scheme(url)
    if scheme not in _REDIS_SCHEMES:
        got = f"{scheme}://..." if scheme else "no URL scheme"
        raise ConfigError(
            f"{name} must be a redis://, rediss:// (TLS) or unix:// URL, e.g. "
            f"redis://127.0.0.1:6379/0, got {got}"
        )
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ConfigError(f"{name}: the port must be a number from 0 to 65535") from None
    if scheme == "unix":
        if not parts.path:
            raise ConfigError(f"{name}: a unix:// URL needs a socket path, unix:///path/to.sock")
        return
    if not parts.hostname:
        raise ConfigError(
            f"{name}: a {scheme}:// URL needs a host, e.g. {scheme}://127.0.0.1:6379/0"
        )
    if parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise ConfigError(f"{name}: the path is the database number, e.g. /0")


_ISSUER_KEYS = {"issuer", "jwks_uri", "audience", "algorithms"}


def _trusted_issuers(raw: str) -> tuple[TrustedIssuer, ...]:
    """Parse and check AUTHSERVER_TRUSTED_ISSUERS; ConfigError names what is wrong."""
    name = "AUTHSERVER_TRUSTED_ISSUERS"
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"{name} must be JSON: {e}") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{name} must be a JSON list of objects")
    parsed: list[TrustedIssuer] = []
    for n, entry in enumerate(entries):
        where = f"{name}[{n}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object")
        unknown = set(entry) - _ISSUER_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("issuer", "jwks_uri", "audience"):
            if key not in entry:
                raise ConfigError(f"{where}: {key!r} is required")
        issuer, jwks_uri = entry["issuer"], entry["jwks_uri"]
        for key, value in (("issuer", issuer), ("jwks_uri", jwks_uri)):
            if not isinstance(value, str) or not _secure_url(value):
                raise ConfigError(
                    f"{where}: {key!r} must be an https URL (http only for localhost)"
                )
        audience = entry["audience"]
        audiences = (audience,) if isinstance(audience, str) else audience
        if (
            not isinstance(audiences, list | tuple)
            or not audiences
            or not all(isinstance(a, str) and a for a in audiences)
        ):
            raise ConfigError(f"{where}: 'audience' must be a string or a list of strings")
        algorithms = entry.get("algorithms", list(ASYMMETRIC_ALGORITHMS))
        if (
            not isinstance(algorithms, list)
            or not algorithms
            or not all(a in ASYMMETRIC_ALGORITHMS for a in algorithms)
        ):
            raise ConfigError(
                f"{where}: 'algorithms' must list some of {', '.join(ASYMMETRIC_ALGORITHMS)}"
            )
        if any(issuer == other.issuer for other in parsed):
            raise ConfigError(f"{where}: the issuer {issuer!r} is listed twice")
        parsed.append(TrustedIssuer(issuer, jwks_uri, tuple(audiences), tuple(algorithms)))
    return tuple(parsed)


def _secure_url(url: str) -> bool:
    """An absolute https URL, or http on a loopback host (a test identity provider)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    return bool(parts.netloc) and (parts.scheme == "https" or (parts.scheme == "http" and local))
