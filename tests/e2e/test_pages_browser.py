"""The people's pages in a real headless Chromium against a real `authserver demo` process.

- The PC login page shows a QR code; the test reads the image off the page, decodes it with
  zxing-cpp, approves as the phone over the mobile API, and sees the page turn signed in.
- The typed-code path: a second browser types the code the login page shows into the
  verification page, signs in, sees the approval facts and approves.
- A phone's browser opens the QR link (375 px wide), signs in and denies; the login page says
  so and "Try again" brings a new code.
- Expiry, on a server whose codes live a few seconds: the code counts down, then the page says
  it expired and gets a new one when asked; a hidden tab neither long-polls nor asks.
- Dark mode keeps the QR code dark on white.
- A browser that prefers zh-CN reads the page, and its changing states, in Chinese; the
  language switch turns it to English and back.

Playwright drives the system Chromium (/usr/bin/chromium); nothing is downloaded.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import LiveServer, _demo_output, demo_server

TIMEOUT = 10  # seconds, for every single HTTP request
BROWSER_TIMEOUT_MS = 10_000
SHORT_TTL = 4  # seconds a device code lives on the expiry test's server
USER_CODE = re.compile(r"^[B-Z]{4}-[B-Z]{4}$")

# Flip the Page Visibility API as a browser does when its tab goes to the background
# (headless Chromium keeps every page visible, whatever is in front or minimized).
SET_VISIBILITY = """(hidden) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    Object.defineProperty(document, "visibilityState", {
        configurable: true, get: () => (hidden ? "hidden" : "visible"),
    });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


class Phone:
    """The mobile app, over plain HTTP: signed in to the demo user with its own device id."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.device_id = f"phone-{uuid.uuid4().hex[:8]}"
        signed_in = requests.post(
            f"{server.base_url}/mobile/v1/sessions",
            json={
                "username": server.username,
                "password": server.password,
                "device": {"id": self.device_id, "name": "Pages E2E phone", "platform": "ios"},
            },
            timeout=TIMEOUT,
        )
        assert signed_in.status_code == 201, signed_in.text
        self.headers = {
            "Authorization": f"Bearer {signed_in.json()['device_token']}",
            "X-Device-Id": self.device_id,
        }

    def call(self, path: str, body: dict[str, str]) -> dict[str, Any]:
        response = requests.post(
            f"{self.server.base_url}/mobile/v1/{path}",
            json=body,
            headers=self.headers,
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def short_lived_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`authserver demo` whose device codes (and confirm tokens) live SHORT_TTL seconds."""
    ttl = str(SHORT_TTL)
    with demo_server(
        tmp_path_factory.mktemp("short"),
        AUTHSERVER_DEVICE_CODE_TTL=ttl,
        AUTHSERVER_CONFIRM_TOKEN_TTL=ttl,
    ) as server:
        yield server


class Pages:
    """Opens pages, each in a browser context of its own; any console or page error fails the
    test, but for the HTTP statuses a test says it expects (a page answering 401)."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.problems: list[str] = []
        self.expected_statuses: set[int] = set()
        self.on_response: Any = None  # a test's listener for every page's responses

    def __call__(self, **options: Any) -> Any:
        context = self.browser.new_context(**options)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on("response", lambda r: self.on_response(r) if self.on_response else None)
        return page

    def unexpected(self) -> list[str]:
        expected = [f"status of {status} " for status in self.expected_statuses]
        return [p for p in self.problems if not any(e in p for e in expected)]


@pytest.fixture
def watched(browser: Any) -> Iterator[Pages]:
    pages = Pages(browser)
    yield pages
    for context in pages.contexts:
        context.close()
    assert not pages.unexpected(), pages.problems


def open_login_page(new_page: Pages, server: LiveServer) -> Any:
    from playwright.sync_api import expect

    page = new_page(viewport={"width": 900, "height": 700})
    # The address `authserver demo` prints for people to open.
    page.goto(_demo_output(server.workdir)["pc_login_page"])
    expect(page.get_by_role("heading", name="Sign in to Demo PC client")).to_be_visible()
    expect(page.locator("#status-title")).to_have_text("Scan the QR code with the app")
    return page


def shown_code(page: Any) -> str:
    code = str(page.locator("#user-code").text_content())
    assert USER_CODE.match(code), code
    return code


def decode_qr(page: Any) -> str:
    """Read the QR image off the page as a camera would: pixels in, text out."""
    import zxingcpp
    from PIL import Image

    image = page.get_by_role("img", name=re.compile("^QR code of the sign-in code"))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.screenshot())))
    assert len(found) == 1, found
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(found[0].text)


def end_flow(server: LiveServer, page: Any) -> None:
    """Deny the code the page shows, from a phone: the page stops long-polling, so the server
    holds no request open for it and stops at once when the module ends."""
    from playwright.sync_api import expect

    phone = Phone(server)
    screen = phone.call("scan", {"user_code": shown_code(page)})
    phone.call("deny", {"confirm_token": screen["confirm_token"]})
    expect(page.get_by_role("status")).to_contain_text("Sign-in denied")


def shown_number(page: Any) -> int:
    """Number matching: the number the login page shows once its code is scanned."""
    from playwright.sync_api import expect

    number = page.locator("#match-number")
    expect(number).to_have_text(re.compile(r"^\d\d$"))
    return int(str(number.text_content()))


def assert_no_tokens_stored(page: Any) -> None:
    """Tokens live in the script's memory only: no web storage, no cookies."""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.context.cookies() == []


# --- (a) QR code, decoded, approved by the phone -------------------------------------------
def test_login_page_qr_is_approved_by_the_phone(watched: Pages, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    exchanges: list[Any] = []  # the page's calls of the device and token endpoints
    watched.on_response = lambda response: (
        exchanges.append(response) if "/oauth/" in response.url else None
    )
    page = open_login_page(watched, live_server)
    code = shown_code(page)
    expect(page.get_by_role("img")).to_have_attribute("alt", f"QR code of the sign-in code {code}")
    # The QR code holds verification_uri_complete: the user code the page shows, and nothing else.
    qr_text = decode_qr(page)
    # verification_uri_complete and a scan token: a rotating QR code (about 30 s each).
    assert re.fullmatch(
        rf"{re.escape(live_server.base_url)}/device\?user_code={code}&t=[\w-]+", qr_text
    )
    expect(page.get_by_role("link", name=f"{live_server.base_url}/device")).to_be_visible()

    phone = Phone(live_server)
    screen = phone.call("scan", {"qr": qr_text})
    assert screen["user_code"] == code
    assert screen["client"]["name"] == "Demo PC client"
    # The browser is the requesting device the phone is shown.
    assert "Chrome" in screen["requesting_device"]["device_says"]
    status = page.get_by_role("status")
    expect(status).to_contain_text("Confirm on your phone")
    expect(status).to_contain_text("Scanned by D*** U***")  # masked: never the full name
    expect(page.locator("#qr-frame")).to_have_class(re.compile("scanned"))  # dimmed
    expect(status).not_to_contain_text("Demo User")
    # Number matching: the phone picks, from three, the number the page shows.
    number = shown_number(page)
    assert number in screen["number_choices"] and len(set(screen["number_choices"])) == 3

    assert phone.call("confirm", {"confirm_token": screen["confirm_token"], "number": number}) == {
        "status": "approved"
    }
    expect(status).to_contain_text("Signed in as Demo User")
    expect(page.locator("#qr-frame")).to_be_hidden()
    assert_no_tokens_stored(page)
    # RFC 9449: the device code was asked for with a WebCrypto key and the tokens are bound
    # to it; "Signed in as" above came from /api/v1/me, which took them only with a proof.
    started = next(r for r in exchanges if r.url.endswith("/oauth/device_authorization"))
    redeemed = [r for r in exchanges if r.url.endswith("/oauth/token") and r.ok]
    assert started.request.header_value("dpop") and redeemed[0].request.header_value("dpop")
    assert redeemed[0].json()["token_type"] == "DPoP"
    stolen = requests.post(
        f"{live_server.base_url}/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": started.json()["device_code"],
            "client_id": live_server.client_id,
        },
        timeout=TIMEOUT,
    )
    assert stolen.json()["error"] == "invalid_dpop_proof"  # worthless without the page's key

    # Signing out revokes the session (RFC 7009) and offers a new sign-in.
    page.get_by_role("button", name="Sign out").click()
    expect(status).to_contain_text("Signed out")
    page.get_by_role("button", name="Sign in again").click()
    expect(page.locator("#status-title")).to_have_text("Scan the QR code with the app")
    assert shown_code(page) != code
    end_flow(live_server, page)


# --- (b) The typed code on the verification page -------------------------------------------
def test_typed_code_on_the_verification_page(watched: Pages, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    pc = open_login_page(watched, live_server)
    code = shown_code(pc)
    pc_user_agent = pc.evaluate("navigator.userAgent")

    other = watched(viewport={"width": 1000, "height": 800})  # another browser, no session
    other.goto(f"{live_server.base_url}/device")
    expect(other.get_by_role("heading", name="Sign in on another device")).to_be_visible()
    # RFC 8628 §6.1: any case, with spaces instead of the dash.
    other.get_by_label("Code shown on your device").fill(code.lower().replace("-", " "))
    other.get_by_label("Username").fill(live_server.username)
    other.get_by_label("Password").fill("not the password")
    watched.expected_statuses.add(401)  # the page that says so is a 401
    other.get_by_role("button", name="Sign in and continue").click()
    expect(other.get_by_role("alert")).to_have_text("Unknown username or wrong password.")
    other.get_by_label("Password").fill(live_server.password)
    other.get_by_role("button", name="Sign in and continue").click()

    # The same facts the phone sees.
    expect(other.get_by_role("heading", name="Sign in to Demo PC client?")).to_be_visible()
    facts = other.locator("dl.facts")
    expect(facts).to_contain_text("Demo PC client")
    expect(facts).to_contain_text("Your name and username")
    expect(facts).to_contain_text("127.0.0.1")
    expect(facts).to_contain_text("Chrome")  # parsed, and labelled as its own claim
    expect(facts).to_contain_text("its own claim")
    expect(facts).not_to_contain_text(pc_user_agent)  # never the raw text
    expect(other.locator(".match .user-code")).to_have_text(code)
    expect(other.get_by_text("Deny unless you started this sign-in yourself")).to_be_visible()
    deny = other.get_by_role("button", name="Deny")
    # Number matching: three numbers to tap, one of them the number the PC shows.
    expect(pc.get_by_role("status")).to_contain_text("Confirm in your browser")
    numbers = other.get_by_role("button", name=re.compile(r"^\d\d$"))
    expect(numbers).to_have_count(3)
    approve = other.get_by_role("button", name=str(shown_number(pc)), exact=True)
    assert deny.bounding_box()["height"] <= approve.bounding_box()["height"]
    approve.click()
    expect(other.get_by_role("heading", name="Approved")).to_be_visible()
    expect(pc.get_by_role("status")).to_contain_text("Signed in as Demo User")
    assert_no_tokens_stored(pc)

    # One sign-in, one decision: the browser forgot its sign-in (only its device id and its
    # known-device cookie are left, strict, HttpOnly cookies on /device), so the next code
    # asks for the password again.
    cookies = {c["name"]: c for c in other.context.cookies()}
    assert set(cookies) == {"authserver_web_device", "authserver_web_known"}
    for cookie in cookies.values():
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/device"
    other.get_by_role("link", name="Enter another code").click()
    expect(other.get_by_label("Password")).to_be_visible()
    expect(other.get_by_text("Signed in as Demo User (demo)")).to_have_count(0)


# --- A phone's browser opens the QR link, and denies ---------------------------------------
def test_phone_browser_opens_the_qr_link_and_denies(
    watched: Pages, live_server: LiveServer
) -> None:
    from playwright.sync_api import expect

    pc = open_login_page(watched, live_server)
    code = shown_code(pc)
    link = decode_qr(pc)

    phone = watched(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    phone.goto(link)
    expect(phone.get_by_label("Code shown on your device")).to_have_value(code)
    expect(phone.get_by_label("Username")).to_be_focused()  # straight to sign-in
    phone.get_by_label("Username").fill(live_server.username)
    phone.get_by_label("Password").fill(live_server.password)
    phone.get_by_role("button", name="Sign in and continue").click()
    expect(phone.get_by_role("heading", name="Sign in to Demo PC client?")).to_be_visible()
    expect(phone.locator(".match .user-code")).to_have_text(code)
    # Nothing sticks out sideways at 375 px.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    deny = phone.get_by_role("button", name="Deny")
    approve = phone.get_by_role("button", name=re.compile(r"^\d\d$")).first
    assert deny.bounding_box()["height"] <= approve.bounding_box()["height"]
    deny.click()
    expect(phone.get_by_role("heading", name="Denied")).to_be_visible()

    expect(pc.get_by_role("status")).to_contain_text("Sign-in denied")
    pc.get_by_role("button", name="Try again").click()
    expect(pc.locator("#status-title")).to_have_text("Scan the QR code with the app")
    assert shown_code(pc) != code
    end_flow(live_server, pc)


# --- (c) Expiry: the QR code refreshes, but never for a hidden tab -------------------------
def test_an_expired_code_says_so_and_a_new_one_comes_on_request(
    watched: Pages, short_lived_server: LiveServer
) -> None:
    """The code counts down; once expired the page says so and dims the QR code, and a new
    code comes only when the user asks (as WeChat's QR login); a hidden tab asks for nothing."""
    from playwright.sync_api import expect

    page = watched(viewport={"width": 900, "height": 700})
    calls: list[tuple[float, str]] = []
    aborted: list[str] = []

    def seen(request: Any) -> None:
        if request.url.endswith(("/oauth/device_authorization", "/oauth/device_status")):
            calls.append((time.monotonic(), request.url.rsplit("/", 1)[1]))

    page.on("request", seen)
    page.on("requestfailed", lambda r: aborted.append(r.url.rsplit("/", 1)[1]))

    def authorizations() -> int:
        return sum(1 for _, name in calls if name == "device_authorization")

    page.goto(f"{short_lived_server.base_url}/login?client_id={short_lived_server.client_id}")
    expect(page.locator("#status-title")).to_have_text("Scan the QR code with the app")
    first = shown_code(page)
    countdown = page.locator("#countdown")
    expect(countdown).to_have_text(re.compile(r"^Expires in 0:0[1-4]$"))
    shown = countdown.text_content()
    expect(countdown).not_to_have_text(str(shown))  # it counts down

    # Expired: said so, the QR code dimmed, and no new code until asked for.
    expect(page.locator("#status-title")).to_have_text(
        "This code has expired.", timeout=(SHORT_TTL + 3) * 1000
    )
    expect(page.locator("#qr-frame")).to_have_class(re.compile("stale"))
    expect(countdown).to_be_hidden()
    page.wait_for_timeout(1_500)
    assert authorizations() == 1
    page.get_by_role("button", name="Get a new code").click()
    expect(page.locator("#user-code")).not_to_have_text(first)
    second = shown_code(page)
    assert authorizations() == 2

    # Hidden: the long-poll is dropped at once, and nothing new is asked for.
    page.evaluate(SET_VISIBILITY, True)
    hidden_at = time.monotonic()
    page.wait_for_timeout((SHORT_TTL + 1.5) * 1000)
    assert authorizations() == 2
    assert not [name for at, name in calls if at > hidden_at], calls
    assert "device_status" in aborted
    assert shown_code(page) == second

    # Shown again after it expired: the page says so, and a new code comes on request.
    page.evaluate(SET_VISIBILITY, False)
    expect(page.locator("#status-title")).to_have_text("This code has expired.")
    assert authorizations() == 2
    page.get_by_role("button", name="Get a new code").click()
    expect(page.locator("#status-title")).to_have_text("Scan the QR code with the app")
    assert authorizations() == 3
    end_flow(short_lived_server, page)


def test_dark_mode_keeps_the_qr_code_dark_on_white(watched: Pages, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    page = watched(viewport={"width": 900, "height": 700}, color_scheme="dark")
    page.goto(_demo_output(live_server.workdir)["pc_login_page"])
    expect(page.locator("#status-title")).to_have_text("Scan the QR code with the app")
    body = page.evaluate("getComputedStyle(document.body).backgroundColor")
    frame = page.evaluate("getComputedStyle(document.getElementById('qr-frame')).backgroundColor")
    assert body == "rgb(22, 24, 29)" and frame == "rgb(255, 255, 255)"
    decode_qr(page)  # still scannable
    end_flow(live_server, page)


def test_a_tab_opened_in_the_background_asks_for_no_code_until_shown(
    watched: Pages, live_server: LiveServer
) -> None:
    from playwright.sync_api import expect

    page = watched(viewport={"width": 900, "height": 700})
    page.add_init_script(f"({SET_VISIBILITY})(true)")  # hidden before the page's script runs
    authorizations: list[str] = []
    page.on(
        "request",
        lambda r: authorizations.append(r.url) if "device_authorization" in r.url else None,
    )
    page.goto(f"{live_server.base_url}/login?client_id={live_server.client_id}")
    page.wait_for_timeout(500)
    assert authorizations == []
    expect(page.locator("#qr-frame")).to_be_hidden()

    page.evaluate(SET_VISIBILITY, False)
    expect(page.locator("#status-title")).to_have_text("Scan the QR code with the app")
    assert len(authorizations) == 1
    end_flow(live_server, page)


# --- A server blip: 503 with Retry-After on the status channel and the token endpoint ------
def test_the_login_page_keeps_trying_through_503s(watched: Pages, live_server: LiveServer) -> None:
    """While a dependency blips the server answers 503 + Retry-After: the page says it cannot
    reach the server, keeps trying, and signs in once the server answers again.

    The 503s are played by the browser's network layer (Playwright routes), in the shape the
    server gives them (tests/functional/test_unavailable.py checks the server's own).
    """
    from playwright.sync_api import expect

    blip = {"status_down": False, "token_failures_left": 1, "code_failures_left": 1}
    served: list[str] = []
    unavailable = {
        "status": 503,
        "headers": {"Retry-After": "1", "Cache-Control": "no-store"},
        "content_type": "application/json",
        "body": '{"error": "temporarily_unavailable", "error_description": "Try again shortly."}',
    }

    def status_channel(route: Any) -> None:
        if blip["status_down"]:
            served.append("status 503")
            route.fulfill(**unavailable)
        else:
            route.continue_()

    def fails_first(name: str) -> Any:
        def answer(route: Any) -> None:
            if blip[f"{name}_failures_left"] > 0:
                blip[f"{name}_failures_left"] -= 1
                served.append(f"{name} 503")
                route.fulfill(**unavailable)
            else:
                route.continue_()

        return answer

    watched.expected_statuses.add(503)  # the console notes each 503 the page received
    exchanges: list[Any] = []
    watched.on_response = lambda response: (
        exchanges.append(response) if "/oauth/device_authorization" in response.url else None
    )
    page = watched(viewport={"width": 900, "height": 700})
    page.route("**/oauth/device_status", status_channel)
    page.route("**/oauth/token", fails_first("token"))
    page.route("**/oauth/device_authorization", fails_first("code"))
    page.goto(f"{live_server.base_url}/login?client_id={live_server.client_id}")
    status = page.get_by_role("status")
    # The first request for a code got a 503: the page asked again by itself.
    expect(page.locator("#status-title")).to_have_text("Scan the QR code with the app")
    assert served == ["code 503"]

    blip["status_down"] = True
    phone = Phone(live_server)
    screen = phone.call("scan", {"user_code": shown_code(page)})  # ends the held long-poll
    expect(status).to_contain_text("Cannot reach the server, retrying")
    # The page cannot show the number while its status channel is down; the test reads it
    # from the status channel itself, as the PC's owner.
    device_code = next(
        r.json()["device_code"]
        for r in exchanges
        if r.url.endswith("/oauth/device_authorization") and r.ok
    )
    number = requests.post(
        f"{live_server.base_url}/oauth/device_status",
        data={"device_code": device_code, "client_id": live_server.client_id},
        timeout=TIMEOUT,
    ).json()["match_number"]
    assert phone.call("confirm", {"confirm_token": screen["confirm_token"], "number": number}) == {
        "status": "approved"
    }
    blip["status_down"] = False
    # The status channel answers again (approved); the token endpoint fails once more. Each
    # failure doubles the wait (from the demo's 1 s interval): allow for a few of them.
    expect(status).to_contain_text("Signed in as Demo User", timeout=20_000)
    assert served.count("token 503") == 1 and "status 503" in served
    assert_no_tokens_stored(page)


def test_the_login_page_in_chinese_and_the_language_switch(
    watched: Pages, short_lived_server: LiveServer
) -> None:
    """A browser that prefers zh-CN reads the page in Chinese, the script's changing states
    too (countdown, scanned, expired); the switch turns it to English and back."""
    from playwright.sync_api import expect

    server = short_lived_server
    page = watched(viewport={"width": 900, "height": 700}, locale="zh-CN")
    page.goto(f"{server.base_url}/login?client_id={server.client_id}")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    expect(page.get_by_role("heading", name="登录 Demo PC client")).to_be_visible()
    title = page.locator("#status-title")
    expect(title).to_have_text("请使用手机 App 扫码登录")
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^二维码将在 0:0[1-4] 后失效$"))
    code = shown_code(page)
    expect(page.locator("#qr")).to_have_attribute("alt", f"登录码 {code} 的二维码")

    phone = Phone(server)
    phone.call("scan", {"user_code": code})
    expect(title).to_have_text("请在手机上确认")
    expect(page.locator("#status-detail")).to_have_text(
        "D*** U*** 已扫码。请在 App 中选择这个数字：",
    )
    shown_number(page)

    # Nobody confirms: the code expires, and the page says so in Chinese.
    expect(title).to_have_text("二维码已过期", timeout=(SHORT_TTL + 3) * 1000)
    expect(page.get_by_role("button", name="刷新二维码")).to_be_visible()

    # The switch: English for this browser from now on, back on the same page.
    page.get_by_role("link", name="English").click()
    expect(page).to_have_url(f"{server.base_url}/login?client_id={server.client_id}")
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(title).to_have_text("Scan the QR code with the app")
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^Expires in 0:0[1-4]$"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "lang")
    assert cookie["value"] == "en" and cookie["sameSite"] == "Lax" and cookie["httpOnly"]
    end_flow(server, page)
    page.get_by_role("link", name="中文").click()
    expect(title).to_have_text("请使用手机 App 扫码登录")
    expect(page.get_by_role("link", name="English")).to_be_visible()
