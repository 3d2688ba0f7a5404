"""The admin web console (/admin): server-rendered pages over the same services as /admin/v1.

A person signs in with the admin credentials, finds a user, sees their sessions (client, phone,
requester IP and user agent, times), revokes them, signs phones out, disables clients, cancels
a pending QR login and reads the audit trail. No JavaScript; every page is plain HTML.

Sign-in: the cookie holds an admin session token from AdminAuth.sign_in (HttpOnly,
SameSite=Strict, Path=/admin, Secure when the issuer is https), so the console and the JSON API
share one kind of session, its expiry and its audit events.

Request forgery: every POST carries a hidden csrf_token. Signed in, it is an HMAC-SHA256 of a
fixed label keyed with the session token, so it needs no server state and dies with the session;
the login form uses a double-submit cookie instead. A POST whose Origin (or Sec-Fetch-Site)
says it came from another site is refused whatever its token. A refused POST changes nothing.
These rules, the cookies' attributes and the security headers live in web/browser.py, shared
with the pages for people (/login, /device).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from authserver.domain import errors
from authserver.domain.models import Admin, AuditFilter, FamilyFilter
from authserver.domain.text import N_, plain_text
from authserver.logs import route_of
from authserver.oauth.errors import to_wire
from authserver.services.context import place_of
from authserver.web import browser
from authserver.web.admin_api import iso
from authserver.web.common import (
    as_unavailable,
    client_ip,
    int_arg,
    path_ids_are_plain,
    services,
    string_field,
)
from authserver.web.context import device_words, place_name
from authserver.web.i18n import describe, people_text
from authserver.web.pages import (
    DID_NOT_WORK,
    SERVER_ERROR_TEXT,
    SERVER_ERROR_TITLE,
    UNAVAILABLE_TEXT,
    UNAVAILABLE_TITLE,
)

log = logging.getLogger(__name__)

bp = Blueprint("admin_console", __name__, url_prefix="/admin", template_folder="templates")

SESSION_COOKIE = "authserver_admin"
LOGIN_CSRF_COOKIE = "authserver_admin_login"
KNOWN_DEVICE_COOKIE = "authserver_admin_known"  # services/limits.py: signed in here before
_CSRF_LABEL = b"authserver admin console csrf v1"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Endpoints that need no admin session.
_PUBLIC = {"admin_console.login", "admin_console.stylesheet", "admin_console.script"}

# What a redirect after an action says on the next page: fixed texts picked by a code, so
# nothing in a URL is ever shown as a message.
NOTICES = {
    "signed_out": _l("You are signed out."),
    "expired": _l("Your console session has ended. Sign in again."),
    "signed_in_required": _l("Sign in to use the admin console."),
    "session_revoked": _l("The session was revoked."),
    "session_already_revoked": _l("That session was already revoked."),
    "user_sessions_revoked": _l("Sessions revoked: %(n)s."),
    "device_unbound": _l("The phone was signed out."),
    "device_sessions_revoked": _l("The phone was signed out; sessions revoked: %(n)s."),
    "client_disabled": _l("The client was disabled; its sessions were revoked."),
    "client_enabled": _l("The client was enabled."),
    "client_sessions_revoked": _l("Sessions revoked: %(n)s."),
    "flow_cancelled": _l("The pending login request was cancelled."),
    "browser_session_revoked": _l("The browser was signed out."),
    "browser_session_already_ended": _l("That browser session had already ended."),
    "browser_sessions_revoked": _l("Browsers signed out: %(n)s."),
}

USER_SEARCH_LIMIT = 50
SESSION_LIMIT = 200
HOME_EVENTS = 20
USER_EVENTS = 50
AUDIT_PAGE = 100


# --- Helpers -------------------------------------------------------------------------------
def csrf_token_for(session_token: str) -> str:
    """The CSRF token of a console session: HMAC-SHA256(key=session token, fixed label)."""
    return browser.csrf_token_for(session_token, _CSRF_LABEL)


def _cookie_path() -> str:
    """/admin (under the app's mount point, if any): the cookie goes nowhere else."""
    return f"{request.script_root}{bp.url_prefix}"


def _admin() -> Admin:
    admin: Admin = g.console_admin
    return admin


def _when(ts: float | None) -> str:
    """A Unix time for people: UTC, to the second."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _text(value: str | None, name: str, max_len: int = 200) -> str:
    """A form or query value: stripped, bounded, printable; '' when absent."""
    value = (value or "").strip()
    if not plain_text(value, max_len):
        raise errors.MalformedRequest(f"{name!r} is too long or has invalid characters.")
    return value


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status, mimetype="text/html")


def _to(endpoint: str, notice: str | None = None, n: int | None = None, **values: Any) -> Response:
    """A 303 (see other) to a console page, optionally with a notice code."""
    if notice:
        values["notice"] = notice
    if n is not None:
        values["n"] = n
    return redirect(url_for(endpoint, **values), 303)  # type: ignore[return-value]


def _clear_session_cookie(response: Response) -> Response:
    browser.clear_cookie(response, SESSION_COOKIE, path=_cookie_path())
    return response


def _to_login(notice: str) -> Response:
    return _clear_session_cookie(_to(".login", notice))


def _csrf_refused() -> Response:
    return _page(
        "admin/error.html",
        403,
        title=_("Request refused"),
        message=_(
            "This form was sent without a valid security token, or from another site, so "
            "nothing was changed. Go back, reload the page and try again."
        ),
    )


def _user_label(user_id: str) -> str:
    labels: dict[str, str] = g.setdefault("user_labels", {})
    if user_id not in labels:
        user = services().accounts.user(user_id)
        labels[user_id] = f"{user.display_name} ({user.username})" if user else user_id
    return labels[user_id]


def _client_label(client_id: str) -> str:
    client = services().clients.get(client_id)  # cached by the client service
    return client.name if client else client_id


@bp.context_processor
def _context() -> dict[str, Any]:
    notice = NOTICES.get(request.args.get("notice", ""))
    if notice:
        n = request.args.get("n", "")
        notice = str(notice) % {"n": n if n.isascii() and n.isdigit() else "?"}
    token = g.get("console_token")
    return {
        "when": _when,
        "iso": lambda ts: iso(ts) or "",
        # The requester as the approval screens show it: parsed and placed, never raw text.
        "device_words": device_words,
        # Names instead of ids in the audit tables (looked up once per page and id).
        "user_label": _user_label,
        "client_label": _client_label,
        "place_of": place_of,
        "place_name": place_name,
        "notice": notice,
        "admin": g.get("console_admin"),
        "csrf_token": csrf_token_for(token) if token else "",
    }


# --- Every request -------------------------------------------------------------------------
# What a destructive action asks before it acts; the form on that page confirms it.
CONFIRM = {
    "admin_console.revoke_session": _l(
        "Revoke this session? The computer it signed in is signed out."
    ),
    "admin_console.revoke_user_sessions": _l(
        "Revoke all of this user's sessions? Every computer they signed in is signed out."
    ),
    "admin_console.revoke_device_sessions": _l(
        "Revoke everything approved from this phone, and sign the phone out?"
    ),
    "admin_console.revoke_browser_session": _l("Sign this browser out of the server?"),
    "admin_console.revoke_user_browser_sessions": _l("Sign every browser of this user out?"),
    "admin_console.disable_client": _l(
        "Disable this client? It gets no new codes and every token it holds stops working."
    ),
    "admin_console.revoke_client_sessions": _l(
        "Revoke all of this client's sessions? Every user signed in with it is signed out."
    ),
}


@bp.before_request
def _require_admin() -> Response | None:
    """Every page but login needs a live admin session; every POST a valid CSRF token."""
    if not path_ids_are_plain():
        raise errors.NotFound()
    if request.endpoint in _PUBLIC:
        return None
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return _to(".login", "signed_in_required")
    try:
        admin = services().admin_auth.authenticate(token)
    except errors.AdminAuthenticationFailed:
        return _to_login("expired")
    g.console_admin, g.console_token = admin, token
    if request.method == "POST" and not browser.session_form_ok(token, _CSRF_LABEL):
        return _csrf_refused()
    question = CONFIRM.get(request.endpoint or "")
    if request.method == "POST" and question and request.form.get("confirmed") != "yes":
        # A destructive action is asked once more on a page of its own (no script needed).
        return _page("admin/confirm.html", question=str(question), action=request.path)
    return None


@bp.after_request
def _security_headers(response: Response) -> Response:
    browser.page_headers(response, CONTENT_SECURITY_POLICY)
    static = ("admin_console.stylesheet", "admin_console.script")
    if request.endpoint in static and response.status_code == 200:
        response.headers["Cache-Control"] = "max-age=3600"
        del response.headers["Pragma"]
    return response


def _unavailable_page(error: errors.TemporarilyUnavailable) -> Response:
    """The 503 page, with the same Retry-After as the API's answer (RFC 9110 §10.2.3)."""
    response = _page(
        "admin/error.html", 503, title=str(UNAVAILABLE_TITLE), message=str(UNAVAILABLE_TEXT)
    )
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@bp.errorhandler(errors.DomainError)
def _domain_error(error: errors.DomainError) -> Response:
    if isinstance(error, errors.AdminAuthenticationFailed):
        return _to_login("expired")
    if isinstance(error, errors.TemporarilyUnavailable):
        return _unavailable_page(error)
    status, _body, _headers = to_wire(error)
    response = _page("admin/error.html", status, title=str(DID_NOT_WORK), message=describe(error))
    if isinstance(error, errors.RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    response = _page(
        "admin/error.html",
        status,
        title=people_text(error.name),
        message=people_text(error.description or ""),
    )
    if status == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return response


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    unavailable = as_unavailable(error)
    if unavailable is not None:
        return _unavailable_page(unavailable)
    log.exception("unhandled error on %s %s", request.method, route_of(request))
    return _page(
        "admin/error.html",
        500,
        title=str(SERVER_ERROR_TITLE),
        message=str(SERVER_ERROR_TEXT),
    )


@cache
def _stylesheet_text() -> str:
    return (
        resources.files("authserver.web")
        .joinpath("templates/admin/console.css")
        .read_text(encoding="utf-8")
    )


@bp.get("/console.css")
def stylesheet() -> Response:
    """The console's only style sheet (the CSP allows styles from this origin only)."""
    return Response(_stylesheet_text(), mimetype="text/css")


@cache
def _script_text() -> str:
    return (
        resources.files("authserver.web")
        .joinpath("templates/admin/console.js")
        .read_text(encoding="utf-8")
    )


@bp.get("/console.js")
def script() -> Response:
    """The console's only script: times in the viewer's zone (the console works without it)."""
    return Response(_script_text(), mimetype="text/javascript")


# --- Signing in and out --------------------------------------------------------------------
def _login_page(status: int = 200, error: str | None = None, username: str = "") -> Response:
    """The login form with a double-submit token: the same random value in a cookie."""
    value = browser.double_submit_value(LOGIN_CSRF_COOKIE)
    response = _page("admin/login.html", status, login_csrf=value, error=error, username=username)
    browser.set_cookie(
        response,
        LOGIN_CSRF_COOKIE,
        value,
        path=url_for(".login"),
        max_age=browser.DOUBLE_SUBMIT_MAX_AGE,
    )
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        token = request.cookies.get(SESSION_COOKIE, "")
        if token:
            try:
                services().admin_auth.authenticate(token)
                return _to(".home")
            except errors.AdminAuthenticationFailed:
                return _clear_session_cookie(_login_page())
        return _login_page()

    if not browser.double_submit_ok(LOGIN_CSRF_COOKIE):
        return _csrf_refused()
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        return _login_page(400, _("Enter your admin username and password."), username[:150])
    try:
        # The admin API's rules, checked before any lookup: bounded, valid Unicode, and no
        # control character in the username (PostgreSQL text cannot even hold NUL).
        string_field({"username": username}, "username", max_len=150)
        string_field({"password": password}, "password", max_len=1024, controls=True)
    except errors.MalformedRequest:
        message = _("That username or password is too long or has characters it cannot have.")
        return _login_page(400, message)
    try:
        signed_in = services().admin_auth.sign_in(
            username, password, client_ip(), browser.known_device_cookie(KNOWN_DEVICE_COOKIE)
        )
    except errors.AdminAuthenticationFailed:
        return _login_page(401, _("Unknown admin or wrong password."), username)
    except errors.RateLimited as limited:
        response = _login_page(429, describe(limited), username)
        response.headers["Retry-After"] = str(limited.retry_after)
        return response
    response = _to(".home")
    browser.set_cookie(
        response,
        SESSION_COOKIE,
        signed_in.token,
        path=_cookie_path(),
        max_age=services().config.admin_session_ttl,
    )
    browser.set_cookie(
        response,
        KNOWN_DEVICE_COOKIE,
        signed_in.device_cookie,
        path=_cookie_path(),
        max_age=services().config.device_cookie_ttl,
    )
    browser.clear_cookie(response, LOGIN_CSRF_COOKIE, path=url_for(".login"))
    return response


@bp.post("/logout")
def logout() -> Response:
    services().admin_auth.sign_out(g.console_token, _admin(), client_ip())
    return _to_login("signed_out")


# --- Looking -------------------------------------------------------------------------------
@bp.get("/")
def home() -> Response:
    """Find a user; cancel a pending QR login; the latest audit events."""
    administration = services().administration
    query = _text(request.args.get("q"), "q")
    return _page(
        "admin/home.html",
        query=query,
        users=administration.find_users(query, USER_SEARCH_LIMIT) if query else [],
        events=administration.audit(AuditFilter(limit=HOME_EVENTS)),
    )


@bp.get("/users/<user_id>")
def user_page(user_id: str) -> Response:
    """A user: their sessions, their phones and what happened to them."""
    administration = services().administration
    user = administration.user(user_id)
    sessions = administration.sessions(FamilyFilter(user_id=user.user_id), SESSION_LIMIT)
    return _page(
        "admin/user.html",
        user=user,
        sessions=sessions,
        truncated=len(sessions) == SESSION_LIMIT,
        active_sessions=sum(1 for v in sessions if v.family.revoked_at is None),
        devices=administration.devices(user.user_id),
        browser_sessions=administration.browser_sessions(user.user_id, limit=SESSION_LIMIT),
        events=administration.audit(AuditFilter(user_id=user.user_id, limit=USER_EVENTS)),
    )


@bp.get("/clients")
def clients() -> Response:
    return _page("admin/clients.html", clients=services().administration.clients())


AUDIT_FILTERS = ("user_id", "client_id", "session_id", "mobile_device_id", "event", "actor_id")


@bp.get("/audit")
def audit() -> Response:
    """The audit trail, newest first, filtered; 'Older events' pages with ?before=<id>."""
    filters = {name: _text(request.args.get(name), name) for name in AUDIT_FILTERS}
    before = int_arg("before", 0, 2**62)
    events = services().administration.audit(
        AuditFilter(
            user_id=filters["user_id"] or None,
            client_id=filters["client_id"] or None,
            family_id=filters["session_id"] or None,
            mobile_device_id=filters["mobile_device_id"] or None,
            event=filters["event"] or None,
            actor_id=filters["actor_id"] or None,
            before_id=before or None,
            limit=AUDIT_PAGE,
        )
    )
    older = None
    if len(events) == AUDIT_PAGE and events[-1].id is not None:
        query: dict[str, Any] = {k: v for k, v in filters.items() if v}
        older = url_for(".audit", **query, before=events[-1].id)
    return _page("admin/audit.html", filters=filters, events=events, older=older)


# --- Acting (each as the signed-in admin, from the caller's IP) ----------------------------
@bp.post("/sessions/<session_id>/revoke")
def revoke_session(session_id: str) -> Response:
    administration = services().administration
    user_id = administration.session(session_id).family.user_id
    revoked = administration.revoke_session(session_id, _admin(), client_ip())
    notice = "session_revoked" if revoked else "session_already_revoked"
    return _to(".user_page", notice, user_id=user_id, _anchor="sessions")


@bp.post("/users/<user_id>/sessions/revoke")
def revoke_user_sessions(user_id: str) -> Response:
    administration = services().administration
    families = administration.revoke_user_sessions(user_id, _admin(), client_ip())
    return _to(".user_page", "user_sessions_revoked", len(families), user_id=user_id)


@bp.post("/users/<user_id>/devices/<mobile_device_id>/unbind")
def unbind_device(user_id: str, mobile_device_id: str) -> Response:
    administration = services().administration
    administration.unbind_device(user_id, mobile_device_id, _admin(), client_ip())
    return _to(".user_page", "device_unbound", user_id=user_id, _anchor="devices")


@bp.post("/users/<user_id>/devices/<mobile_device_id>/revoke")
def revoke_device_sessions(user_id: str, mobile_device_id: str) -> Response:
    """Revoke everything approved from this phone, and sign the phone out."""
    administration = services().administration
    if not any(d.id == mobile_device_id for d in administration.devices(user_id)):
        raise errors.NotFound(N_("This user has no such mobile device."))
    families = administration.revoke_device_sessions(mobile_device_id, _admin(), client_ip())
    return _to(".user_page", "device_sessions_revoked", len(families), user_id=user_id)


@bp.post("/users/<user_id>/browser-sessions/<session_id>/revoke")
def revoke_browser_session(user_id: str, session_id: str) -> Response:
    """Sign one of the user's browsers out of this server (code flow sign-ins)."""
    administration = services().administration
    if administration.browser_session(session_id).session.user_id != user_id:
        raise errors.NotFound(N_("This user has no such browser session."))
    revoked = administration.revoke_browser_session(session_id, _admin(), client_ip())
    notice = "browser_session_revoked" if revoked else "browser_session_already_ended"
    return _to(".user_page", notice, user_id=user_id, _anchor="browser-sessions")


@bp.post("/users/<user_id>/browser-sessions/revoke")
def revoke_user_browser_sessions(user_id: str) -> Response:
    administration = services().administration
    ended = administration.revoke_user_browser_sessions(user_id, _admin(), client_ip())
    return _to(
        ".user_page",
        "browser_sessions_revoked",
        len(ended),
        user_id=user_id,
        _anchor="browser-sessions",
    )


@bp.post("/clients/<client_id>/disable")
def disable_client(client_id: str) -> Response:
    services().administration.set_client_enabled(client_id, False, _admin(), client_ip())
    return _to(".clients", "client_disabled")


@bp.post("/clients/<client_id>/enable")
def enable_client(client_id: str) -> Response:
    services().administration.set_client_enabled(client_id, True, _admin(), client_ip())
    return _to(".clients", "client_enabled")


@bp.post("/clients/<client_id>/sessions/revoke")
def revoke_client_sessions(client_id: str) -> Response:
    administration = services().administration
    families = administration.revoke_client_sessions(client_id, _admin(), client_ip())
    return _to(".clients", "client_sessions_revoked", len(families))


@bp.post("/flows/cancel")
def cancel_flow() -> Response:
    """Cancel a pending QR login by the user code the PC shows: the PC gets access_denied."""
    user_code = _text(request.form.get("user_code"), "user_code", max_len=50)
    if not user_code:
        raise errors.MalformedRequest(N_("Enter the user code the PC shows."))
    services().administration.cancel_flow(user_code, _admin(), client_ip())
    return _to(".home", "flow_cancelled")
