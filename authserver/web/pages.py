"""Pages for people: the PC login page, and what every people's page shares.

`GET /login?client_id=<public client>[&scope=...]` is the web client of the QR login: a plain
HTML page and one small script (static/login.js, no build step) that asks for a device code,
shows its QR code and user code, follows the status channel (long-poll), redeems the approval
at the token endpoint as RFC 8628 §3.4-3.5 demands and shows who signed in. Tokens stay in the
page's memory. A tab that is hidden (Page Visibility API) stops long-polling and never starts a
new flow, so forgotten tabs do not pile up device codes.

A browser cannot keep a secret, so only public clients (RFC 8628 §5.6) get a login page.

The verification pages (/device) are in web/verification.py; both use the templates under
templates/pages/, the assets below and the HTML error pages of install_html_errors.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from authserver.domain import errors
from authserver.domain.models import ClientKind
from authserver.domain.text import N_, plain_text
from authserver.logs import route_of
from authserver.oauth.errors import to_wire
from authserver.web import browser
from authserver.web.common import as_unavailable, services
from authserver.web.i18n import describe, people_text

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__, template_folder="templates")

# The login page runs its own script and fetches from this origin only; nothing may frame it.
LOGIN_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "require-trusted-types-for 'script'"
)
# Pages without a script (errors; the verification pages use their own, equally strict one).
PLAIN_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

# The static files of the people's pages: name -> media type.
ASSETS = {
    "login.js": "text/javascript",
    "authorize.js": "text/javascript",
    "pages.css": "text/css",
    "icon.svg": "image/svg+xml",
}
ASSET_MAX_AGE = 365 * 24 * 3600  # a versioned URL (?v=<hash of the content>) never changes


@cache
def _asset(name: str) -> tuple[bytes, str]:
    """(content, version) of a static file; the version is a prefix of its SHA-256."""
    body = resources.files("authserver.web").joinpath(f"static/{name}").read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:16]


@bp.app_template_global()
def asset_url(name: str) -> str:
    """The versioned URL of a static file, cacheable for a year."""
    return url_for("pages.asset", name=name, v=_asset(name)[1])


# The words of the pages' scripts (static/login.js, authorize.js), handed to them in a JSON
# block of the page (the CSP runs no inline script; a data block is not run). `%(name)s` is
# filled in by the script.
SCRIPT_TEXT = {
    "getting_code": _l("Getting a sign-in code…"),
    "unreachable": _l("Cannot reach the server, retrying…"),
    "keeps_trying": _l("This page keeps trying by itself."),
    "cannot_reach": _l("The server cannot be reached. Check your connection."),
    "no_code": _l("The server refused to give a code."),
    "refused": _l("The server refused the request."),
    "failed": _l("The sign-in failed."),
    "qr_alt": _l("QR code of the sign-in code %(code)s"),
    "expired": _l("This code has expired."),
    "expired_new": _l("Get a new code to sign in."),
    "expired_retry": _l("Get a new one to sign in."),
    "expired_back": _l("Go back and sign in again."),
    "new_code": _l("Get a new code"),
    "expires_in": _l("Expires in %(time)s"),
    "scan": _l("Scan the QR code with the app"),
    "scan_detail": _l("Open the app on your phone and scan this code."),
    "confirm_browser": _l("Confirm in your browser"),
    "confirm_phone": _l("Confirm on your phone"),
    # Who scanned and what to do next, as whole sentences (a translation may reorder them).
    "entered_by_pick": _l("The code was entered by %(name)s. Tap this number there to approve:"),
    "entered_by": _l("The code was entered by %(name)s. Approve it there."),
    "entered_pick": _l("The code was entered. Tap this number there to approve:"),
    "entered": _l("The code was entered. Approve it there."),
    "scanned_by_pick": _l("Scanned by %(name)s. Pick this number in the app:"),
    "scanned_by": _l("Scanned by %(name)s. Approve the sign-in in the app."),
    "scanned_pick": _l("Scanned. Pick this number in the app:"),
    "scanned": _l("Scanned. Approve the sign-in in the app."),
    "approved": _l("Approved"),
    "signing_in": _l("Signing you in…"),
    "taking_back": _l("Taking you back…"),
    "denied": _l("Sign-in denied"),
    "declined": _l("The sign-in was declined."),
    "signed_in_as": _l("Signed in as %(name)s"),
    "signed_in": _l("Signed in"),
    "signed_in_here": _l("You are signed in on this computer."),
    "went_wrong": _l("Something went wrong"),
    "try_again": _l("Try again"),
    "signed_out": _l("Signed out"),
    "sign_in_again": _l("Sign in again"),
}


def _domain_errors() -> list[type[errors.DomainError]]:
    found, todo = [], [errors.DomainError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


@bp.app_template_global()
def script_text() -> dict[str, Any]:
    """The scripts' words in the page's language, and the server's error descriptions (the
    wire's English) with their translations, for the scripts to show a person."""
    wire = {kind.description: people_text(kind.description) for kind in _domain_errors()}
    return {
        **{key: str(text) for key, text in SCRIPT_TEXT.items()},
        "errors": {english: text for english, text in wire.items() if text != english},
    }


def render_page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status, mimetype="text/html")


def error_page(
    status: int, title: str, message: str, back: tuple[str, str] | None = None
) -> Response:
    """An HTML error page; `back` is an optional (URL, label) link."""
    return render_page("pages/error.html", status, title=title, message=message, back=back)


# What a person reads while a dependency is down (the JSON API says temporarily_unavailable).
UNAVAILABLE_TITLE = _l("Try again in a moment")
UNAVAILABLE_TEXT = _l(
    "This service is briefly unavailable. Wait a few seconds, then reload the page or send "
    "the form again."
)
SERVER_ERROR_TITLE = _l("Server error")
SERVER_ERROR_TEXT = _l("The server hit an unexpected condition. Try again later.")
DID_NOT_WORK = _l("That did not work")

# Werkzeug's words for the HTTP errors a page can meet, for the catalogue (people_text finds
# them there; a page in English shows them as Werkzeug wrote them).
HTTP_WORDS = (
    N_("Bad Request"),
    N_("The browser (or proxy) sent a request that this server could not understand."),
    N_("Not Found"),
    N_(
        "The requested URL was not found on the server. If you entered the URL manually "
        "please check your spelling and try again."
    ),
    N_("Method Not Allowed"),
    N_("The method is not allowed for the requested URL."),
    N_("Request Entity Too Large"),
    N_("The data value transmitted exceeds the capacity limit."),
)


def unavailable_page(error: errors.TemporarilyUnavailable) -> Response:
    """The 503 page, with the same Retry-After as the API's answer (RFC 9110 §10.2.3)."""
    response = error_page(503, str(UNAVAILABLE_TITLE), str(UNAVAILABLE_TEXT))
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def install_html_errors(blueprint: Blueprint) -> None:
    """Every error of `blueprint` becomes an HTML page (never JSON, never a bare 500)."""

    @blueprint.errorhandler(errors.DomainError)
    def _domain_error(error: errors.DomainError) -> Response:
        if isinstance(error, errors.TemporarilyUnavailable):
            return unavailable_page(error)
        status, _body, _headers = to_wire(error)
        response = error_page(status, str(DID_NOT_WORK), describe(error))
        if isinstance(error, errors.RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @blueprint.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_page(status, people_text(error.name), people_text(error.description or ""))
        if status == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @blueprint.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        unavailable = as_unavailable(error)
        if unavailable is not None:
            return unavailable_page(unavailable)
        log.exception("unhandled error on %s %s", request.method, route_of(request))
        return error_page(500, str(SERVER_ERROR_TITLE), str(SERVER_ERROR_TEXT))


install_html_errors(bp)


@bp.after_request
def _headers(response: Response) -> Response:
    if request.endpoint in ("pages.asset", "pages.client_logo") and response.status_code == 200:
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
    return browser.page_headers(
        response, LOGIN_CSP if request.endpoint == "pages.login" else PLAIN_CSP
    )


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    """A static file of the people's pages (the CSP allows scripts and styles from here only)."""
    if name not in ASSETS:
        abort(404)
    body, version = _asset(name)
    response = Response(body, mimetype=ASSETS[name])
    if request.args.get("v") == version:
        response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}, immutable"
    else:
        response.headers["Cache-Control"] = "no-cache"
    return response


def client_logo_url(client_id: str) -> str | None:
    """Where the page finds the client's logo (versioned by its content), if it has one."""
    png = services().clients.logo(client_id)
    if png is None:
        return None
    return url_for("pages.client_logo", client_id=client_id, v=_logo_version(png))


def _logo_version(png: bytes) -> str:
    return hashlib.sha256(png).hexdigest()[:16]


@bp.get("/clients/<client_id>/logo.png")
def client_logo(client_id: str) -> Response:
    """A client's logo: a PNG the server re-encoded itself (services/logos.py)."""
    client = services().clients.get(client_id) if plain_text(client_id) else None
    png = None if client is None or client.deleted_at else services().clients.logo(client_id)
    if png is None:
        abort(404)
    response = Response(png, mimetype="image/png")
    # Cached long only under the URL of these very bytes: another process may still hold the
    # old logo for a few seconds, and must not have it cached under the new one's URL.
    if request.args.get("v") == _logo_version(png):
        response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    else:
        response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
def home() -> Response:
    return redirect(url_for("verification.device"))  # type: ignore[return-value]


@bp.get("/login")
def login() -> Response:
    """The PC login page of a public client: QR code, user code, live status, then signed in."""
    client_id = request.args.get("client_id", "")
    scope = request.args.get("scope")
    if not client_id:
        return error_page(
            400,
            _("No application given"),
            _("This page needs a client_id: %(example)s", example="/login?client_id=..."),
        )
    client = services().clients.get(client_id) if plain_text(client_id) else None
    if client is None or client.deleted_at is not None:
        return error_page(404, _("Unknown application"), _("No application has this client_id."))
    if client.secret_hash is not None or client.kind is not ClientKind.DEVICE:
        return error_page(
            400,
            _("This application cannot sign in here"),
            _(
                "It is a confidential client: it has a secret, and a web page cannot keep one. "
                "Sign in from the application itself, or use a public client (RFC 8628 §5.6)."
            ),
        )
    if client.disabled_at is not None:
        return error_page(403, _("Application disabled"), _("This application is disabled."))
    if scope is not None and not plain_text(scope, 500):
        raise errors.InvalidScope()
    granted = services().clients.resolve_scope(client, scope)
    return render_page(
        "pages/login.html",
        client=client,
        logo_url=client_logo_url(client.client_id),
        scope=granted if scope else "",
        verification_uri=services().config.verification_uri,
        issuer=services().config.issuer,  # DPoP proofs name the issuer's URIs (RFC 9449 htu)
    )
