"""The verification URI (RFC 8628 §3.3): approve or deny a sign-in from a web browser.

`/device` is the `verification_uri`: type the user code (any case, dashes and spaces optional),
sign in with username and password, see what asks (the client, the scopes, the PC's IP, user
agent and request time, the user code to match) and approve or deny. `/device?user_code=...` is
`verification_uri_complete`, what the QR code encodes: a phone whose camera opens it in a
browser instead of the app gets the same page with the code filled in, straight to sign-in.

A browser signs in as a signed-in device of the user, exactly like the app
(AccountService.sign_in, platform "web", a random per-browser device id), so Approvals.scan
and decide treat it like a phone: user-code entry is rate-limited per account and per IP, one
device per flow, and the approval stands only while that session does. Cookies (Path=/device,
HttpOnly, SameSite=Strict, Secure behind https): `authserver_web`, the device token, for
AUTHSERVER_WEB_SESSION_TTL; `authserver_web_device`, the browser's device id; and
`authserver_web_form`, the double-submit value of the sign-in form.

Request forgery (web/browser.py): a signed-in form carries an HMAC of a fixed label keyed with
the device token; the sign-in form a double-submit cookie; a POST from another site is refused
whatever its token, and a refused POST changes nothing. No page here runs a script.
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime

from flask import Blueprint, Response, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from authserver.domain import errors
from authserver.domain.codes import format_user_code, normalize_user_code
from authserver.domain.oidc import WEB_PLATFORM
from authserver.domain.text import N_, plain_text, printable
from authserver.services.accounts import DeviceCredentials, SignedInDevice
from authserver.services.approvals import ApprovalScreen
from authserver.web import browser
from authserver.web.common import client_ip, services, string_field
from authserver.web.context import device_words, place_name, warnings_of
from authserver.web.i18n import describe
from authserver.web.pages import (
    PLAIN_CSP,
    client_logo_url,
    error_page,
    install_html_errors,
    render_page,
)

bp = Blueprint("verification", __name__, template_folder="templates")
install_html_errors(bp)

SESSION_COOKIE = "authserver_web"
DEVICE_COOKIE = "authserver_web_device"
KNOWN_DEVICE_COOKIE = "authserver_web_known"  # services/limits.py: this browser signed in before
FORM_COOKIE = "authserver_web_form"
DEVICE_ID_MAX_AGE = 400 * 24 * 3600  # the longest a browser keeps a cookie
_CSRF_LABEL = b"authserver verification page csrf v1"

# Fixed texts picked by a code in the URL, so nothing in a URL is ever shown as a message.
NOTICES = {"signed_out": _l("You are signed out.")}

# What each scope lets the application see, in words.
SCOPE_TEXT = {
    "openid": _l("Who you are: your account's identifier"),
    "profile": _l("Your name and username"),
    "email": _l("Your email address"),
    "offline_access": _l("Stay signed in: keep access after you leave"),
}

REFUSED = _l(
    "This form was sent without a valid security token, or from another site, so nothing was "
    "changed. Go back, reload the page and try again. (This page needs cookies.)"
)
SESSION_ENDED = _l("Your sign-in on this page has ended. Sign in again to continue.")


# --- The browser's session -----------------------------------------------------------------
def _cookie_path() -> str:
    """/device (under the app's mount point, if any): the cookies go nowhere else."""
    return f"{request.script_root}/device"


def _well_formed(value: str, low: int, high: int) -> bool:
    return low <= len(value) <= high and value.replace("-", "").replace("_", "").isalnum()


@bp.before_request
def _load_session() -> None:
    """g.web: the signed-in browser (a SignedInDevice) or None; g.web_token: its token."""
    g.web, g.web_token, g.web_device_id, g.cookie_changes = None, "", "", []
    token = request.cookies.get(SESSION_COOKIE, "")
    device_id = request.cookies.get(DEVICE_COOKIE, "")
    if not token:
        return
    if _well_formed(token, 20, 100) and _well_formed(device_id, 16, 64):
        try:
            g.web = services().accounts.authenticate(DeviceCredentials(token, device_id))
            g.web_token, g.web_device_id = token, device_id
            return
        except errors.InvalidDeviceToken:
            pass
    g.cookie_changes.append((SESSION_COOKIE, None, None))  # expired or revoked: drop it


@bp.after_request
def _finish(response: Response) -> Response:
    for name, value, max_age in g.get("cookie_changes", []):
        if value is None:
            browser.clear_cookie(response, name, path=_cookie_path())
        else:
            browser.set_cookie(response, name, value, path=_cookie_path(), max_age=max_age)
    return browser.page_headers(response, PLAIN_CSP)


def _session() -> SignedInDevice | None:
    web: SignedInDevice | None = g.web
    return web


def _credentials() -> DeviceCredentials:
    """The signed-in browser's credentials, checked again by the step that uses them."""
    return DeviceCredentials(g.web_token, g.web_device_id)


def _device_id() -> str:
    """This browser's device id: from its cookie, or a new random one (then stored)."""
    device_id = request.cookies.get(DEVICE_COOKIE, "")
    if not _well_formed(device_id, 16, 64):
        device_id = secrets.token_urlsafe(18)
        g.cookie_changes.append((DEVICE_COOKIE, device_id, DEVICE_ID_MAX_AGE))
    return device_id


def _sign_in(username: str, password: str) -> None:
    """Sign this browser in; raises InvalidCredentials or RateLimited."""
    user_agent = printable(request.user_agent.string or "", 150)
    device_id = _device_id()
    ttl = services().config.web_session_ttl
    signed_in = services().accounts.sign_in(
        username,
        password,
        device_id=device_id,
        device_name=f"Web browser: {user_agent}" if user_agent else "Web browser",
        platform=WEB_PLATFORM,
        ip=client_ip(),
        device_cookie=browser.known_device_cookie(KNOWN_DEVICE_COOKIE),
        ttl=ttl,
    )
    token = signed_in.token
    g.cookie_changes.append(
        (KNOWN_DEVICE_COOKIE, signed_in.device_cookie, services().config.device_cookie_ttl)
    )
    g.web = services().accounts.authenticate(DeviceCredentials(token, device_id))
    g.web_token, g.web_device_id = token, device_id
    # A session cookie (no Max-Age): it dies with the browser; the server ends it after `ttl`.
    g.cookie_changes += [(SESSION_COOKIE, token, None), (FORM_COOKIE, None, None)]


# --- Pages ---------------------------------------------------------------------------------
def _entry_page(
    status: int = 200,
    *,
    user_code: str = "",
    error: str | None = None,
    notice: str | None = None,
    username: str = "",
    from_link: bool = False,
) -> Response:
    """The code form: signed in, just the code; signed out, the code with username and password."""
    web = _session()
    if web is not None:
        csrf = browser.csrf_token_for(g.web_token, _CSRF_LABEL)
    else:
        csrf = browser.double_submit_value(FORM_COOKIE)
        g.cookie_changes.append((FORM_COOKIE, csrf, browser.DOUBLE_SUBMIT_MAX_AGE))
    return render_page(
        "pages/device.html",
        status,
        web=web,
        csrf_token=csrf,
        user_code=user_code,
        error=error,
        notice=notice,
        username=username,
        from_link=from_link,
    )


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(ts: float) -> str:
    seconds = max(int(time.time() - ts), 0)
    if seconds < 5:
        return str(_("just now"))
    if seconds < 60:
        return str(ngettext("%(num)d second ago", "%(num)d seconds ago", seconds))
    minutes = seconds // 60
    return str(ngettext("%(num)d minute ago", "%(num)d minutes ago", minutes))


def _approval_page(screen: ApprovalScreen) -> Response:
    """The same facts the app shows, with Approve and an equally prominent Deny."""
    web = _session()
    assert web is not None
    return render_page(
        "pages/approve.html",
        web=web,
        logo_url=client_logo_url(screen.client.client_id),
        csrf_token=browser.csrf_token_for(g.web_token, _CSRF_LABEL),
        screen=screen,
        # Only what the sign-in would release for this user: no email line without an email.
        scopes=[
            (s, str(SCOPE_TEXT.get(s, s)))
            for s in screen.scope.split()
            if s != "email" or web.user.email
        ],
        requested_at=_when(screen.requested_at),
        requested_at_iso=datetime.fromtimestamp(screen.requested_at, UTC).isoformat("T", "seconds"),
        requested_ago=_ago(screen.requested_at),
        minutes=max(1, screen.expires_in // 60),
        context=screen.context,
        place=place_name(screen.context.place) if screen.context else "",
        device_says=device_words(screen.requester_user_agent),
        warnings=[str(w) for w in warnings_of(screen.context)],
    )


def _refused() -> Response:
    return error_page(
        403, _("Request refused"), str(REFUSED), (url_for(".device"), _("Start again"))
    )


def _try_again_in(seconds: int, message: str) -> str:
    """ "Too many ... Try again in 5 minutes." in the page's language: `message` has %(minutes)s."""
    minutes = math.ceil(seconds / 60)
    return message % {
        "minutes": _("a minute")
        if minutes <= 1
        else ngettext("%(num)d minute", "%(num)d minutes", minutes)
    }


def _flow_error(error: errors.DomainError) -> tuple[int, str]:
    """What a person reads when a code or an approval does not work, and the status."""
    if isinstance(error, errors.FlowNotFound):
        return 404, _(
            "No sign-in request has this code. Check the code on your device: it may have "
            "changed since, if the device showed a new one."
        )
    if isinstance(error, errors.FlowExpired):
        return 410, _("This code has expired. Your device shows a new one: enter that one.")
    if isinstance(error, errors.FlowAlreadyScanned):
        return 409, _(
            "This code was already scanned by another device. Approve or deny it there, or get "
            "a new code on the device you are signing in to."
        )
    if isinstance(error, errors.FlowNotActionable):
        return 409, _("%(why)s Get a new code on your device.", why=describe(error))
    if isinstance(error, errors.InvalidConfirmToken):
        return 409, _(
            "This request was already answered, or you took too long to answer it. Enter the "
            "code again to see it once more."
        )
    if isinstance(error, errors.RateLimited):
        return 429, _try_again_in(
            error.retry_after, _("Too many wrong attempts. Try again in %(minutes)s.")
        )
    if isinstance(error, errors.NumberMismatch | errors.NumberRequired):
        return 403, describe(error)
    raise error


def _with_retry_after(response: Response, error: errors.DomainError) -> Response:
    if isinstance(error, errors.RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _form_text(name: str, max_len: int) -> str:
    value = request.form.get(name, "").strip()
    if not plain_text(value, max_len):
        raise errors.MalformedRequest(f"The field {name!r} is too long or has invalid characters.")
    return value


@bp.get("/device")
def device() -> Response:
    """The code form; ?user_code= (verification_uri_complete) fills the code in."""
    raw = request.args.get("user_code", "")
    normalized = normalize_user_code(raw) if plain_text(raw, 50) else None
    error = None
    if raw and normalized is None:
        error = _("The code in this link is not a valid code. Type the code your device shows.")
    return _entry_page(
        user_code=format_user_code(normalized) if normalized else "",
        error=error,
        notice=str(NOTICES.get(request.args.get("notice", ""), "")) or None,
        from_link=normalized is not None,
    )


@bp.post("/device")
def enter_code() -> Response:
    """Sign in if needed, look the code up (rate-limited) and show what is asking."""
    signing_in = "username" in request.form or "password" in request.form
    if not signing_in and _session() is None:
        return _entry_page(401, error=str(SESSION_ENDED))
    if signing_in:
        allowed = browser.double_submit_ok(FORM_COOKIE)
    else:
        allowed = browser.session_form_ok(g.web_token, _CSRF_LABEL)
    if not allowed:
        return _refused()

    typed = _form_text("user_code", 50)
    username = _form_text("username", 150) if signing_in else ""
    normalized = normalize_user_code(typed)
    if normalized is None:
        return _entry_page(
            400,
            user_code=typed,
            username=username,
            error=_("That is not a valid code. A code has 8 letters, like WDJB-MJHT."),
        )
    user_code = format_user_code(normalized)
    if signing_in:
        password = request.form.get("password", "")
        if not username or not password:
            message = _("Enter your username and password.")
            return _entry_page(400, user_code=user_code, username=username, error=message)
        try:  # the mobile API's rules for a password: bounded, valid Unicode (never stored)
            string_field({"password": password}, "password", max_len=1024, controls=True)
        except errors.MalformedRequest:
            message = _("That password is too long or has characters it cannot have.")
            return _entry_page(400, user_code=user_code, username=username, error=message)
        try:
            _sign_in(username, password)
        except errors.InvalidCredentials:
            message = _("Unknown username or wrong password.")
            return _entry_page(401, user_code=user_code, username=username, error=message)
        except errors.RateLimited as limited:
            message = _try_again_in(
                limited.retry_after, _("Too many failed sign-ins. Try again in %(minutes)s.")
            )
            page = _entry_page(429, user_code=user_code, username=username, error=message)
            return _with_retry_after(page, limited)
    web = _session()
    assert web is not None
    try:
        screen = services().approvals.scan(
            _credentials(), qr=None, user_code=normalized, ip=client_ip()
        )
    except errors.DomainError as error:
        status, message = _flow_error(error)
        return _with_retry_after(_entry_page(status, user_code=user_code, error=message), error)
    return _approval_page(screen)


@bp.post("/device/decision")
def decide() -> Response:
    """Approve or deny with the one-time confirm token of the approval page."""
    web = _session()
    if web is None:
        return _entry_page(401, error=str(SESSION_ENDED))
    if not browser.session_form_ok(g.web_token, _CSRF_LABEL):
        return _refused()
    # "approve", "deny", or with number matching "approve:<the number tapped>".
    decision, _, picked = request.form.get("decision", "").partition(":")
    if decision not in ("approve", "deny") or (picked and not picked.isdigit()):
        raise errors.MalformedRequest(N_("Choose Approve or Deny."))
    number = int(picked[:3]) if picked else None
    confirm_token = _form_text("confirm_token", 200)
    typed = _form_text("user_code", 50)
    normalized = normalize_user_code(typed)
    user_code = format_user_code(normalized) if normalized else ""
    approve = decision == "approve"
    try:
        services().approvals.decide(
            _credentials(), confirm_token, approve=approve, ip=client_ip(), number=number
        )
    except errors.DomainError as error:
        status, message = _flow_error(error)
        return _entry_page(status, user_code=user_code, error=message)
    # One sign-in, one decision: the browser forgets its token, so on a shared computer the
    # next person cannot approve their own sign-in as this user. The server keeps the session
    # until it expires, so an approval stands until the PC has redeemed it.
    g.cookie_changes.append((SESSION_COOKIE, None, None))
    return render_page("pages/done.html", approved=approve, web=web)


@bp.post("/device/sign-out")
def sign_out() -> Response:
    web = _session()
    if web is None:
        return redirect(url_for(".device"), 303)  # type: ignore[return-value]
    if not browser.session_form_ok(g.web_token, _CSRF_LABEL):
        return _refused()
    services().accounts.sign_out(_credentials(), client_ip())
    g.cookie_changes.append((SESSION_COOKIE, None, None))
    return redirect(url_for(".device", notice="signed_out"), 303)  # type: ignore[return-value]
