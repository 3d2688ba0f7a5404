"""The admin console in a real headless Chromium against a real `authserver demo` process.

A PC (plain `requests`) signs the demo user in with a QR login approved from a phone; then a
person in the browser signs in to /admin, finds the demo user, sees the session (client, phone,
IP, user agent), revokes it and sees it revoked. Over HTTP, the refresh token then gets
invalid_grant and the resource server refuses the access token.

Playwright drives the system Chromium (/usr/bin/chromium); nothing is downloaded and no
screenshot is written.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests

from tests.e2e.conftest import LiveServer, _cli, _server_env

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 10  # seconds, for every single HTTP request
BROWSER_TIMEOUT_MS = 10_000
ADMIN_PASSWORD = "console e2e password"
PC_USER_AGENT = f"ConsoleE2E-PC/{uuid.uuid4().hex[:6]}"  # identifies our session's row
PHONE_NAME = "Console E2E phone"


def approved_login(server: LiveServer) -> dict[str, Any]:
    """A QR login of the demo user, approved on a phone and redeemed: the token response."""
    started = requests.post(
        f"{server.base_url}/oauth/device_authorization",
        data={"client_id": server.client_id, "scope": "profile email"},
        headers={"User-Agent": PC_USER_AGENT},
        timeout=TIMEOUT,
    )
    assert started.status_code == 200, started.text
    flow = started.json()

    device_id = f"phone-{uuid.uuid4().hex[:8]}"
    signed_in = requests.post(
        f"{server.base_url}/mobile/v1/sessions",
        json={
            "username": server.username,
            "password": server.password,
            "device": {"id": device_id, "name": PHONE_NAME, "platform": "android"},
        },
        timeout=TIMEOUT,
    )
    assert signed_in.status_code == 201, signed_in.text
    phone = {
        "Authorization": f"Bearer {signed_in.json()['device_token']}",
        "X-Device-Id": device_id,
    }
    scanned = requests.post(
        f"{server.base_url}/mobile/v1/scan",
        json={"qr": flow["verification_uri_complete"]},
        headers=phone,
        timeout=TIMEOUT,
    )
    assert scanned.status_code == 200, scanned.text
    confirmed = requests.post(
        f"{server.base_url}/mobile/v1/confirm",
        json={"confirm_token": scanned.json()["confirm_token"]},
        headers=phone,
        timeout=TIMEOUT,
    )
    assert confirmed.status_code == 200, confirmed.text

    tokens = requests.post(  # approved before the first poll, so no interval to wait out
        f"{server.base_url}/oauth/token",
        data={
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": flow["device_code"],
            "client_id": server.client_id,
        },
        headers={"User-Agent": PC_USER_AGENT},
        timeout=TIMEOUT,
    )
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def me(server: LiveServer, tokens: dict[str, Any]) -> requests.Response:
    return requests.get(
        f"{server.base_url}/api/v1/me",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=TIMEOUT,
    )


def refresh(server: LiveServer, tokens: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{server.base_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": server.client_id,
        },
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def admin(live_server: LiveServer) -> str:
    """An admin created the README way: `authserver admins create NAME --password-stdin`."""
    name = f"ops-{uuid.uuid4().hex[:6]}"
    created = _cli(
        ["admins", "create", name, "--password-stdin"],
        _server_env(live_server.workdir),
        live_server.workdir,
        stdin=ADMIN_PASSWORD + "\n",
    )
    assert created["username"] == name
    return name


def test_admin_revokes_a_session_in_the_browser(
    browser: Any, live_server: LiveServer, admin: str
) -> None:
    from playwright.sync_api import expect

    tokens = approved_login(live_server)
    assert me(live_server, tokens).status_code == 200

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    problems: list[str] = []  # CSP violations and failed loads show up as console errors
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        # No session: the console sends the browser to its sign-in page.
        page.goto(f"{live_server.base_url}/admin/")
        expect(page).to_have_url(re.compile(r"/admin/login\?notice=signed_in_required$"))
        expect(page.get_by_text("Sign in to use the admin console.")).to_be_visible()

        # A wrong password is refused on the page itself.
        page.get_by_label("Admin username", exact=True).fill(admin)
        page.get_by_label("Password", exact=True).fill("not the password")
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.get_by_role("alert")).to_have_text("Unknown admin or wrong password.")

        page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page).to_have_url(f"{live_server.base_url}/admin/")
        expect(page.get_by_text(f"Signed in as {admin}")).to_be_visible()
        [cookie] = [c for c in context.cookies() if c["name"] == "authserver_admin"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/admin"
        # The style sheet loaded under the CSP (style-src 'self'): the header is styled.
        background = page.locator("header.top").evaluate(
            "el => getComputedStyle(el).backgroundColor"
        )
        assert background == "rgb(31, 45, 61)"

        # Find the demo user and open their page.
        page.get_by_label("Username or name", exact=True).fill("demo")
        page.get_by_role("button", name="Search", exact=True).click()
        page.get_by_role("link", name=live_server.username, exact=True).click()
        expect(page.get_by_role("heading", name=f"User {live_server.username}")).to_be_visible()

        # The session: client name, phone, requester IP and user agent, active.
        # (The raw user agent is only in the cell's title: the page shows it parsed.)
        ours = page.locator(f'td[title="{PC_USER_AGENT}"]')
        row = page.locator("table.sessions.active tbody tr", has=ours)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Demo PC client")
        expect(row).to_contain_text(f"{PHONE_NAME} (android)")
        expect(row).to_contain_text("127.0.0.1")
        expect(row).to_contain_text("Active")

        row.get_by_role("button", name="Revoke", exact=True).click()
        # Asked once more, on a page of its own (the console needs no script for it).
        expect(page.get_by_role("heading", name="Are you sure?")).to_be_visible()
        page.get_by_role("button", name="Yes, do it").click()
        expect(page.get_by_role("status")).to_have_text("The session was revoked.")
        # Gone from the active sessions; listed, revoked, among the ended ones.
        active = page.locator("table.sessions.active tbody tr", has=ours)
        expect(active).to_have_count(0)
        page.get_by_text("Ended sessions").click()
        row = page.locator("table.sessions.ended tbody tr", has=ours)
        expect(row).to_be_visible()
        expect(row).to_contain_text("Revoked")
        expect(row).to_contain_text("(admin)")
        expect(row.get_by_role("button", name="Revoke", exact=True)).to_have_count(0)
        # The audit trail on the same page records it, the admin as actor.
        activity = page.locator("#activity table.events tbody tr", has_text="token.revoked")
        expect(activity.first).to_contain_text("admin")

        page.get_by_role("button", name="Sign out", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("You are signed out.")
        assert not [c for c in context.cookies() if c["name"] == "authserver_admin"]
        page.goto(f"{live_server.base_url}/admin/")
        expect(page).to_have_url(re.compile(r"/admin/login"))
    finally:
        context.close()
    # The only console error allowed is the 401 of the wrong password (the page itself).
    assert all("401" in p for p in problems), problems

    # Revoked for the PC client too: the refresh token is dead, the resource server says 401.
    refreshed = refresh(live_server, tokens)
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert me(live_server, tokens).status_code == 401


def test_times_in_the_viewers_zone_and_names_for_ids(
    live_server: LiveServer, browser: Any, admin: str
) -> None:
    """The console's one script shows times in the viewer's zone (UTC without it); the audit
    table names users and clients instead of their ids."""
    from playwright.sync_api import expect

    approved_login(live_server)
    context = browser.new_context(timezone_id="Asia/Shanghai", locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{live_server.base_url}/admin/login")
        page.get_by_label("Admin username", exact=True).fill(admin)
        page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.goto(f"{live_server.base_url}/admin/audit")
        first = page.locator("table.events time").first
        expect(first).to_have_attribute("title", re.compile("UTC"))  # the server's text
        expect(first).to_contain_text(re.compile(r"CST|GMT\+8"))  # the viewer's zone
        issued = page.locator("table.events tbody tr", has_text="token.issued").first
        expect(issued).to_contain_text("Demo User (demo)")
        expect(issued).to_contain_text("Demo PC client")
    finally:
        context.close()


def test_the_console_in_chinese(live_server: LiveServer, browser: Any, admin: str) -> None:
    """A browser that prefers zh-CN gets the console in Chinese, dates written the Chinese
    way; the switch turns it to English."""
    from playwright.sync_api import expect

    approved_login(live_server)
    context = browser.new_context(timezone_id="Asia/Shanghai", locale="zh-CN")
    try:
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        page.goto(f"{live_server.base_url}/admin/login")
        expect(page.get_by_role("heading", name="登录管理控制台")).to_be_visible()
        page.get_by_label("管理员用户名", exact=True).fill(admin)
        page.get_by_label("密码", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="登录", exact=True).click()
        expect(page.get_by_role("heading", name="查找用户")).to_be_visible()
        page.get_by_role("link", name="审计日志", exact=True).click()
        expect(page.get_by_role("heading", name="审计日志")).to_be_visible()
        first = page.locator("table.events time").first
        expect(first).to_contain_text(re.compile(r"^\d{4}/\d{2}/\d{2} "))  # zh-CN's dates
        page.get_by_role("link", name="English").click()
        expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
        assert page.evaluate("document.documentElement.lang") == "en"
    finally:
        context.close()
