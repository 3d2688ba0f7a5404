"""The code flow's pages: /authorize (OIDC Core §3.1.2), its QR sign-in, and /logout.

- `GET|POST /authorize`: a redirect (a code from this browser's session, or an RFC 6749
  §4.1.2.1 error at the registered redirect URI), or the QR sign-in page. What cannot be
  redirected (unknown client, unregistered redirect URI) is an HTML page.
- The sign-in page holds no secret: the flow's device code is in an HttpOnly cookie for
  /authorize only, named after the request, so two tabs sign in independently. Its script
  (static/authorize.js) follows `POST /authorize/status` (the status channel's long-poll) and,
  once the phone decided, submits the page's form to `POST /authorize/complete`, which redeems
  the sign-in once, sets the browser session cookie and redirects back with the code.
- `GET|POST /logout`: OpenID Connect RP-Initiated Logout 1.0.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, request
from flask_babel import gettext as _

from authserver.domain import errors
from authserver.oauth.errors import to_wire
from authserver.services.authorization import BadAuthorizationRequest, Redirect
from authserver.web import browser
from authserver.web.common import client_ip, json_response, no_store, services
from authserver.web.i18n import people_text
from authserver.web.pages import error_page, install_html_errors, render_page

bp = Blueprint("authorize", __name__, template_folder="templates")

# The browser session (SameSite=Lax: a website's top-level redirect to /authorize carries it).
SESSION_COOKIE = "authserver_sso"
LOGOUT_FORM_COOKIE = "authserver_logout_form"
# One per sign-in page: qa_<authorization id>, holding the flow's device code.
_PENDING_PREFIX = "qa_"
_AUTHORIZATION_ID = re.compile(r"[0-9a-f]{32}")
_PENDING_PATH = "/authorize"


def _csp(form_targets: str) -> str:
    """The sign-in page runs its own script, fetches from this origin only, and its form may
    go to this origin and on (by redirect) to the registered redirect URI's origin."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self'; form-action 'self' {form_targets}; frame-ancestors 'none'; "
        "base-uri 'none'; require-trusted-types-for 'script'"
    ).replace("  ", " ")


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


install_html_errors(bp)


@bp.errorhandler(BadAuthorizationRequest)
def _bad_request(error: BadAuthorizationRequest) -> Response:
    # In the page's language; the values (a client's name) are not translated.
    description = people_text(error.template, type(error).description) % error.values
    return error_page(error.status, people_text(error.title), description)


@bp.after_request
def _headers(response: Response) -> Response:
    return browser.page_headers(response, _csp(g.get("form_targets", "")))


def _params() -> tuple[dict[str, str], frozenset[str]]:
    """The request's parameters (query for GET, form for POST, OIDC Core §3.1.2.1) and the
    names sent more than once."""
    source = request.form if request.method == "POST" else request.args
    params = {name: source.get(name, "") for name in source}
    return params, frozenset(name for name in source if len(source.getlist(name)) > 1)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    """The authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2)."""
    params, repeated = _params()
    outcome = services().authorizations.authorize(
        params,
        repeated,
        request.cookies.get(SESSION_COOKIE),
        client_ip(),
        request.user_agent.string or "",
    )
    if isinstance(outcome, Redirect):
        return _redirect(outcome)
    config = services().config
    g.form_targets = _origin(outcome.redirect_uri)
    response = render_page(
        "pages/authorize.html",
        client=outcome.client,
        scopes=outcome.scope.split(),
        authorization_id=outcome.authorization_id,
        user_code=outcome.started.user_code,
        expires_in=outcome.started.expires_in,
        interval=outcome.started.interval,
        verification_uri=config.verification_uri,
        retry_url=request.url if request.method == "GET" else "",
    )
    browser.set_cookie(
        response,
        _PENDING_PREFIX + outcome.authorization_id,
        outcome.device_code,
        path=_PENDING_PATH,
        max_age=outcome.started.expires_in,
    )
    return response


def _pending() -> tuple[str, str]:
    """(authorization id, device code from its cookie) of a sign-in page's request."""
    authorization_id = request.form.get("authorization", "")
    if not _AUTHORIZATION_ID.fullmatch(authorization_id):
        return "", ""
    return authorization_id, request.cookies.get(_PENDING_PREFIX + authorization_id, "")


@bp.post("/authorize/status")
def status() -> Response:
    """The sign-in page's status channel: `authorization`, `status` (last seen), `wait`."""
    if not browser.same_origin():
        return json_response(*to_wire(errors.MalformedRequest("Cross-site request.")))
    authorization_id, device_code = _pending()
    try:
        wait = float(request.form.get("wait", "0") or 0)
    except ValueError:
        wait = 0.0
    try:
        view = services().authorizations.status(
            authorization_id, device_code, request.form.get("status"), wait, client_ip()
        )
    except (BadAuthorizationRequest, errors.InvalidGrant):
        # The sign-in left the store (expired long ago) or is not this browser's.
        return json_response(*to_wire(errors.InvalidGrant("Unknown sign-in.")))
    body: dict[str, Any] = {"status": view.status.value, "expires_in": view.expires_in}
    if view.scanner:
        body["scanner"] = view.scanner
    if view.match_number is not None:
        body["match_number"] = view.match_number  # the page shows it; the phone must pick it
    return no_store(body)


@bp.post("/authorize/complete")
def complete() -> Response:
    """After the phone decided: redeem the sign-in once and go back to the website."""
    if not browser.same_origin():
        return error_page(403, _("Request refused"), _("This form was sent from another site."))
    authorization_id, device_code = _pending()
    outcome = services().authorizations.complete(authorization_id, device_code, client_ip())
    response = _redirect(outcome)
    browser.clear_cookie(response, _PENDING_PREFIX + authorization_id, path=_PENDING_PATH)
    return response


def _redirect(outcome: Redirect) -> Response:
    """303 to a registered URI (after a POST the browser must GET it, RFC 9110 §15.4.4);
    with a new session, its cookie."""
    response: Response = redirect(outcome.url, 303 if request.method == "POST" else 302)  # type: ignore[assignment]
    if outcome.session_secret is not None:
        browser.set_cookie(
            response,
            SESSION_COOKIE,
            outcome.session_secret,
            path="/",
            max_age=services().config.browser_session_ttl,
            samesite="Lax",
        )
    return response


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    """OpenID Connect RP-Initiated Logout 1.0 §2: id_token_hint, client_id,
    post_logout_redirect_uri (registered), state. Without a hint naming this browser's user,
    the person confirms with a form (double-submit CSRF token) first."""
    params, _ = _params()
    confirmed = (
        request.method == "POST"
        and browser.CSRF_FIELD in request.form
        and browser.double_submit_ok(LOGOUT_FORM_COOKIE)
    )
    params.pop(browser.CSRF_FIELD, None)
    outcome = services().authorizations.logout(
        params, request.cookies.get(SESSION_COOKIE), confirmed, client_ip()
    )
    if outcome.redirect is not None:
        g.form_targets = _origin(outcome.redirect)
    if outcome.needs_confirmation:
        csrf = browser.double_submit_value(LOGOUT_FORM_COOKIE)
        response = render_page(
            "pages/logout.html", params=params, csrf_token=csrf, client_name=outcome.client_name
        )
        browser.set_cookie(
            response,
            LOGOUT_FORM_COOKIE,
            csrf,
            path="/logout",
            max_age=browser.DOUBLE_SUBMIT_MAX_AGE,
        )
        return response
    if outcome.redirect is not None:
        response = redirect(outcome.redirect, 303 if request.method == "POST" else 302)  # type: ignore[assignment]
    else:
        response = render_page("pages/signed_out.html", client_name=outcome.client_name)
    browser.clear_cookie(response, SESSION_COOKIE, path="/", samesite="Lax")
    browser.clear_cookie(response, LOGOUT_FORM_COOKIE, path="/logout")
    return response
