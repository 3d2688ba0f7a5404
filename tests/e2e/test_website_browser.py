"""A website signs people in by QR scan through the authorization code flow, in a real Chromium.

examples/website.py (Flask and Authlib's OIDC client, as the README shows) runs on localhost;
`authserver demo` on 127.0.0.1 (another site). The browser clicks "Sign in with a QR scan",
lands on the server's sign-in page, the phone simulator (qrlogin_client.phone) reads the QR code off
the page and approves, and the browser comes back signed in. Then: prompt=none with and without
the browser session, a denial, a replayed code, a wrong PKCE verifier, an unregistered redirect
URI, and logout.

Playwright drives the system Chromium (/usr/bin/chromium); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import re
import secrets
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from qrlogin_client.phone import MobileApp
from tests.e2e.conftest import LiveServer, _cli, _free_port, _server_env, demo_server
from tests.e2e.test_pages_browser import Pages, decode_qr

TIMEOUT = 10
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "website.py"


class Website:
    """examples/website.py, served by werkzeug in a thread on localhost."""

    def __init__(self, server: LiveServer) -> None:
        port = _free_port()
        self.base_url = f"http://localhost:{port}"
        self.callback = f"{self.base_url}/callback"
        env = _server_env(server.workdir)
        created = _cli(
            [
                "clients",
                "create",
                "--name",
                "Example website",
                "--grant",
                "authorization_code",
                "--redirect-uri",
                self.callback,
                "--post-logout-redirect-uri",
                f"{self.base_url}/",
            ],
            env,
            server.workdir,
        )
        self.client_id = str(created["client_id"])
        spec = importlib.util.spec_from_file_location("example_website", EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        from werkzeug.serving import make_server

        app = module.create_app(server.base_url, self.client_id)
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with demo_server(tmp_path_factory.mktemp("website")) as live:
        yield live


@pytest.fixture(scope="module")
def website(server: LiveServer) -> Iterator[Website]:
    site = Website(server)
    yield site
    site.stop()


@pytest.fixture
def watched(browser: Any) -> Iterator[Pages]:
    pages = Pages(browser)
    yield pages
    for context in pages.contexts:
        context.close()
    assert not pages.unexpected(), pages.problems


def phone(server: LiveServer) -> MobileApp:
    app = MobileApp(server.base_url, f"phone-{uuid.uuid4().hex[:8]}")
    app.sign_in(server.username, server.password, "Website E2E phone", "ios")
    return app


def on_sign_in_page(page: Any, name: str = "Example website") -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name=f"Sign in to {name}")).to_be_visible()
    expect(page.locator("#status-title")).to_have_text("Scan the QR code with the app")


def scan_and_decide(server: LiveServer, page: Any, approve: bool = True) -> None:
    """The phone reads the QR code off the page, sees the approval screen and decides."""
    from playwright.sync_api import expect

    mobile = phone(server)
    screen = mobile.scan(qr=decode_qr(page))
    assert screen.client_name == "Example website"
    expect(page.get_by_role("status")).to_contain_text("Confirm on your phone")
    assert (mobile.confirm(screen) if approve else mobile.deny(screen)) == (
        "approved" if approve else "denied"
    )


def sign_in_by_qr(server: LiveServer, website: Website, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(website.base_url + "/")
    page.get_by_role("link", name="Sign in with a QR scan").click()
    on_sign_in_page(page)
    scan_and_decide(server, page)
    expect(page.locator("#hello")).to_have_text("Hello, Demo User")
    assert page.url == website.base_url + "/"


def codes_seen(page: Any, website: Website) -> list[dict[str, str]]:
    """The query of every navigation to the website's callback (the code, state and iss)."""
    seen: list[dict[str, str]] = []

    def record(request: Any) -> None:
        if request.url.startswith(website.callback + "?"):
            query = parse_qs(urlsplit(request.url).query)
            seen.append({k: v[0] for k, v in query.items()})

    page.on("request", record)
    return seen


# --- Signing in -------------------------------------------------------------------------------
def test_a_website_signs_a_user_in_by_qr_scan(
    watched: Pages, server: LiveServer, website: Website
) -> None:
    page = watched()
    seen = codes_seen(page, website)
    sign_in_by_qr(server, website, page)
    assert len(seen) == 1 and seen[0]["iss"] == server.base_url and "code" in seen[0]
    # The browser session: HttpOnly, SameSite=Lax, on the server's host only.
    cookie = next(c for c in page.context.cookies() if c["name"] == "authserver_sso")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["domain"] == "127.0.0.1"

    # The code was exchanged by the website; presented again, it is refused (and what the
    # first exchange issued is revoked).
    replay = requests.post(
        f"{server.base_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": seen[0]["code"],
            "redirect_uri": website.callback,
            "client_id": website.client_id,
        },
        timeout=TIMEOUT,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

    # prompt=none with the browser session: signed in again at once, no QR code.
    page.context.clear_cookies(domain="localhost")  # the website forgot; the server did not
    page.goto(website.base_url + "/")
    page.get_by_role("link", name="Sign in with a QR scan").wait_for()
    page.goto(website.base_url + "/login?prompt=none")
    page.locator("#hello").wait_for()
    assert page.locator("#hello").text_content() == "Hello, Demo User"
    assert len(seen) == 2

    # Logout at the server (RP-initiated, with the ID token as hint) ends the browser session.
    page.get_by_role("link", name="Sign out").click()
    page.get_by_role("link", name="Sign in with a QR scan").wait_for()
    assert page.url == website.base_url + "/"
    page.goto(website.base_url + "/login?prompt=none")
    assert page.locator("#error").text_content() == "login_required"


def test_a_client_that_requires_number_matching_shows_the_number_on_its_sign_in_page(
    watched: Pages, server: LiveServer
) -> None:
    from playwright.sync_api import expect

    site = Website(server)  # its own client: the module's website confirms without a number
    try:
        _cli(
            ["clients", "update", site.client_id, "--number-matching"],
            _server_env(server.workdir),
            server.workdir,
        )
        page = watched()
        page.goto(site.base_url + "/")
        page.get_by_role("link", name="Sign in with a QR scan").click()
        on_sign_in_page(page)
        expect(page.locator("#match-number")).to_be_hidden()  # nothing to pick before the scan
        mobile = phone(server)
        screen = mobile.scan(qr=decode_qr(page))
        expect(page.get_by_role("status")).to_contain_text("Pick this number in the app")
        shown = page.locator("#match-number")
        expect(shown).to_have_text(re.compile(r"^\d\d$"))
        number = int(shown.text_content() or "")
        assert number in screen.number_choices and len(screen.number_choices) == 3
        assert mobile.confirm(screen, number) == "approved"
        expect(page.locator("#hello")).to_have_text("Hello, Demo User")
    finally:
        site.stop()


def test_prompt_none_without_a_session_is_login_required(watched: Pages, website: Website) -> None:
    page = watched()
    page.goto(website.base_url + "/login?prompt=none")
    assert page.locator("#error").text_content() == "login_required"
    assert page.url.startswith(website.callback)


def test_a_denial_on_the_phone_returns_access_denied(
    watched: Pages, server: LiveServer, website: Website
) -> None:
    page = watched()
    page.goto(website.base_url + "/login")
    on_sign_in_page(page)
    scan_and_decide(server, page, approve=False)
    page.locator("#error").wait_for()
    assert page.locator("#error").text_content() == "access_denied"
    assert all(c["name"] != "authserver_sso" for c in page.context.cookies())


def test_a_wrong_pkce_verifier_gets_no_tokens(
    watched: Pages, server: LiveServer, website: Website
) -> None:
    """A request the test builds itself, so it holds the verifier; the website refuses the
    callback of a request it did not make (its state), so the code is left for the test."""
    from authserver.domain.authorization import s256

    page = watched()
    seen = codes_seen(page, website)
    verifier = secrets.token_urlsafe(48)
    page.goto(
        f"{server.base_url}/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": website.client_id,
                "redirect_uri": website.callback,
                "scope": "openid profile",
                "state": "s-1",
                "nonce": "n-1",
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            }
        )
    )
    on_sign_in_page(page)
    scan_and_decide(server, page)
    # The website did not start this request: it refuses the callback (state) unspent.
    page.locator("#error").wait_for()
    assert len(seen) == 1 and seen[0]["state"] == "s-1"

    def exchange(code_verifier: str) -> requests.Response:
        return requests.post(
            f"{server.base_url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": seen[0]["code"],
                "redirect_uri": website.callback,
                "client_id": website.client_id,
                "code_verifier": code_verifier,
            },
            timeout=TIMEOUT,
        )

    wrong = exchange(secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    right = exchange(verifier)
    assert right.status_code == 200 and right.json()["id_token"]


def test_an_unregistered_redirect_uri_gets_a_page_not_a_redirect(
    watched: Pages, server: LiveServer, website: Website
) -> None:
    from playwright.sync_api import expect

    page = watched()
    watched.expected_statuses.add(400)
    for redirect_uri in ("https://evil.example/callback", website.callback + "?next=/admin"):
        page.goto(
            f"{server.base_url}/authorize?"
            + urlencode(
                {
                    "response_type": "code",
                    "client_id": website.client_id,
                    "redirect_uri": redirect_uri,
                    "code_challenge": s256_of_random(),
                    "code_challenge_method": "S256",
                }
            )
        )
        expect(page.get_by_role("heading", name="Unregistered redirect address")).to_be_visible()
        assert page.url.startswith(server.base_url + "/authorize")


def s256_of_random() -> str:
    from authserver.domain.authorization import s256

    return s256(secrets.token_urlsafe(48))
