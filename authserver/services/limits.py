"""Rate limits that protect accounts without locking their owners out.

Which counters an attempt counts on (the policy, documented in the README's "Rate limits"),
the guard that counts it, and the device cookies that vouch for a phone or browser that signed
in before (OWASP's "Slow Down Online Guessing Attacks with Device Cookies").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.codes import hash_secret, new_token
from authserver.domain.limits import Limit, LimitKind, retry_after
from authserver.domain.models import AccountKind, DeviceCookie
from authserver.domain.ports import DeviceCookieRepository, RateLimiter

_PREFIX = {AccountKind.USER: "login", AccountKind.ADMIN: "admin"}


def password_limits(
    config: Config, kind: AccountKind, username: str, ip: str, known_device: str = ""
) -> tuple[Limit, ...]:
    """The counters of one password sign-in.

    A known device (the hash of a device cookie this account gave it) counts only on its own
    counter: no failure elsewhere can refuse it. Any other device counts per address (a
    ceiling on spraying), per account and address (the tight limit, which only the attacker's
    own address reaches), and per account from everywhere, which past its limit only slows
    attempts down (a doubling delay, at most AUTHSERVER_LOGIN_MAX_DELAY) instead of locking.
    """
    n, window, prefix = config.login_attempts, config.rate_limit_window, _PREFIX[kind]
    if known_device:
        return (Limit(f"{prefix}:device:{known_device}", n, window),)
    name = username.lower()
    return (
        Limit(f"{prefix}:ip:{ip}", n * 3, window),
        Limit(f"{prefix}:user-ip:{name}:{ip}", n, window),
        Limit(
            f"{prefix}:user:{name}",
            n * 3,
            window,
            LimitKind.DELAY,
            max_delay=config.login_max_delay,
        ),
    )


def user_code_limits(config: Config, user_id: str, ip: str) -> tuple[Limit, ...]:
    """The counters of one user-code entry by a signed-in phone or browser (RFC 8628 §5.1).

    Per account, as before. The address's budget refuses only accounts that failed themselves:
    colleagues mistyping behind one NAT cannot block another's genuine scan, while a guesser
    still gets AUTHSERVER_USER_CODE_ATTEMPTS_PER_IP per address, plus one per extra account
    (each a signed-in phone, itself limited per account).
    """
    window = config.rate_limit_window
    account = Limit(f"uc:user:{user_id}", config.user_code_attempts, window)
    address = Limit(
        f"uc:ip:{ip}",
        config.user_code_attempts_per_ip,
        window,
        LimitKind.CAP_IF_FAILED,
        own=account.key,
    )
    return (address, account)


class AttemptGuard:
    """Counts one attempt on `limits` for the duration of a `with` block.

    Entering counts it, or raises RateLimited having stored nothing. Only a failure the caller
    could have caused (an exception of `counts`) stays counted; a success (succeeded()) and a
    failure of the server's own (an outage, a bug) are given back, so they never count against
    the user, and a success never resets a window.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        limits: Sequence[Limit],
        now: float,
        counts: tuple[type[errors.DomainError], ...],
    ) -> None:
        self._limiter = limiter
        self._limits = limits
        self._now = now
        self._counts = counts
        self._success = False

    def __enter__(self) -> AttemptGuard:
        wait = self._limiter.attempt(self._limits, self._now)
        if wait > 0:
            raise errors.RateLimited(retry_after(wait))
        return self

    def succeeded(self) -> None:
        self._success = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._success or not isinstance(exc, self._counts):
            self._limiter.release(self._limits, self._now)


@dataclass(frozen=True)
class PasswordCheck:
    """One password sign-in's guard, and the device cookie it was presented with."""

    guard: AttemptGuard
    known_cookie: str  # the presented cookie if it vouches for this account, else ""


class SignInThrottle:
    """Password sign-ins' limits, lifted for devices that signed in to the account before."""

    def __init__(
        self, config: Config, limiter: RateLimiter, cookies: DeviceCookieRepository
    ) -> None:
        self._config = config
        self._limiter = limiter
        self._cookies = cookies

    def check(
        self,
        kind: AccountKind,
        username: str,
        ip: str,
        device_cookie: str,
        now: float,
        counts: tuple[type[errors.DomainError], ...],
    ) -> PasswordCheck:
        """The guard for one sign-in (enter it around the password check)."""
        found = self._cookies.get(hash_secret(device_cookie)) if device_cookie else None
        known = found is not None and found.proves(kind, username, now)
        limits = password_limits(
            self._config, kind, username, ip, found.cookie_hash if found and known else ""
        )
        guard = AttemptGuard(self._limiter, limits, now, counts)
        return PasswordCheck(guard, device_cookie if known else "")

    def remember(self, check: PasswordCheck, kind: AccountKind, username: str, now: float) -> str:
        """The device cookie to hand out after a successful sign-in (a new one if needed).

        Call it inside the sign-in's unit of work, so the cookie is stored with the session.
        """
        if check.known_cookie:
            return check.known_cookie
        cookie = new_token()
        self._cookies.add(
            DeviceCookie(
                hash_secret(cookie),
                kind,
                username.lower(),
                now,
                now + self._config.device_cookie_ttl,
            )
        )
        return cookie
