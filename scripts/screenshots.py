"""Screenshots of the people's pages for the README, taken from a real run.

Starts `authserver demo` in a temporary directory, opens the PC login page in the system
Chromium (headless, through Playwright) and saves it once the QR code shows, also in dark
mode and in Chinese for a browser that prefers zh-CN (Chinese text needs a CJK font, such as
Debian's fonts-noto-cjk); then a second browser types that page's code on the verification
page, signs in as the demo user and saves the approval facts it is shown, then denies. Then
it registers a website through the admin API and follows that website's OIDC authorization
request (code flow with PKCE) to /authorize, and saves the QR sign-in page it lands on; an
admin cancels that sign-in. The server is stopped afterwards.

    .venv/bin/python scripts/screenshots.py   # docs/login-page.png, approval-page.png,
                                              # docs/website-sign-in.png, login-page-zh.png
    .venv/bin/python scripts/screenshots.py --out /tmp/shots
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

ROOT = Path(__file__).resolve().parent.parent
AUTHSERVER = str(Path(sys.executable).with_name("authserver"))
CHROMIUM = os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000
WEBSITE_REDIRECT = "http://127.0.0.1:8999/callback"  # requested once, never answered


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_demo(workdir: Path, port: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """`authserver demo` on `port`; returns the process and the JSON it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update(XDG_RUNTIME_DIR=str(workdir), PYTHONUNBUFFERED="1")
    out = (workdir / "server.out").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own console script, fixed arguments
        [AUTHSERVER, "demo", "--port", str(port)],
        stdout=out,
        stderr=(workdir / "server.err").open("wb"),
        env=env,
        cwd=workdir,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit((workdir / "server.err").read_text(errors="replace"))
        try:
            answer = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=5)
        except requests.RequestException as error:  # refused, or a slow first answer
            last = type(error).__name__
        else:
            if answer.status_code == 200:
                text = (workdir / "server.out").read_text()
                demo, _ = json.JSONDecoder().raw_decode(text.lstrip())
                return process, dict(demo)
            last = f"HTTP {answer.status_code}"
        time.sleep(0.1)
    process.terminate()
    sys.exit(f"authserver demo did not answer 200 within 60 s (last: {last})")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def admin_api(base: str, demo: dict[str, Any]) -> requests.Session:
    """A requests session signed in to the admin API as the demo's admin."""
    console = demo["admin_console"]
    signed_in = requests.post(
        f"{base}/admin/v1/auth/token",
        json={"username": console["username"], "password": console["password"]},
        timeout=10,
    )
    signed_in.raise_for_status()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {signed_in.json()['admin_token']}"
    return session


def website_authorize_url(base: str, admin: requests.Session) -> str:
    """Register a public website client; the authorization request its "Sign in" link sends
    the browser to (OIDC Core §3.1.2.1, PKCE S256 per RFC 7636 §4.2)."""
    created = admin.post(
        f"{base}/admin/v1/clients",
        json={
            "name": "Example website",
            "scope": "openid profile email",
            "redirect_uris": [WEBSITE_REDIRECT],
            "grant_types": ["authorization_code"],
        },
        timeout=10,
    )
    created.raise_for_status()
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
    query = {
        "response_type": "code",
        "client_id": created.json()["client_id"],
        "redirect_uri": WEBSITE_REDIRECT,
        "scope": "openid profile email",
        "state": base64.urlsafe_b64encode(os.urandom(12)).decode(),
        "nonce": base64.urlsafe_b64encode(os.urandom(12)).decode(),
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
    }
    return f"{base}/authorize?{urlencode(query)}"


def shoot(base: str, demo: dict[str, Any], out: Path) -> tuple[Path, Path, Path]:
    from playwright.sync_api import expect, sync_playwright

    login_png, approval_png = out / "login-page.png", out / "approval-page.png"
    website_png = out / "website-sign-in.png"
    admin = admin_api(base, demo)
    authorize_url = website_authorize_url(base, admin)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            pc = browser.new_context(viewport={"width": 900, "height": 700}).new_page()
            pc.set_default_timeout(TIMEOUT_MS)
            pc.goto(f"{base}/login?client_id={demo['demo_client_id']}")
            expect(pc.locator("#status-title")).to_have_text("Scan the QR code with the app")
            qr = pc.locator("#qr").element_handle()
            pc.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr)
            pc.screenshot(path=str(login_png))
            # The same page in dark mode, and for a browser that prefers Simplified Chinese.
            for options, title, name in (
                ({"color_scheme": "dark"}, "Scan the QR code with the app", "login-page-dark.png"),
                ({"locale": "zh-CN"}, "请使用手机 App 扫码登录", "login-page-zh.png"),
            ):
                other = browser.new_context(viewport={"width": 900, "height": 700}, **options)
                page = other.new_page()
                page.goto(f"{base}/login?client_id={demo['demo_client_id']}")
                expect(page.locator("#status-title")).to_have_text(title)
                page.wait_for_function(
                    "img => img.complete && img.naturalWidth > 0",
                    arg=page.locator("#qr").element_handle(),
                )
                page.screenshot(path=str(login_png.with_name(name)))
                other.close()
            code = pc.locator("#user-code").text_content() or ""

            other = browser.new_context(viewport={"width": 720, "height": 900}).new_page()
            other.set_default_timeout(TIMEOUT_MS)
            other.goto(f"{base}/device")
            other.get_by_label("Code shown on your device").fill(code)
            other.get_by_label("Username").fill(demo["demo_user"]["username"])
            other.get_by_label("Password").fill(demo["demo_user"]["password"])
            other.get_by_role("button", name="Sign in and continue").click()
            # Number matching: the approve buttons are three numbers, one of them the PC's.
            expect(other.get_by_role("button", name="Deny")).to_be_visible()
            expect(pc.locator("#status-title")).to_have_text("Confirm in your browser")
            expect(pc.locator("#match-number")).to_be_visible()
            other.screenshot(path=str(approval_png), full_page=True)
            pc.screenshot(path=str(approval_png.with_name("login-page-number.png")))
            # Deny, so the login page holds no long-poll open and the server stops at once.
            other.get_by_role("button", name="Deny").click()
            expect(pc.locator("#status-title")).to_have_text("Sign-in denied")

            site = browser.new_context(viewport={"width": 900, "height": 470}).new_page()
            site.set_default_timeout(TIMEOUT_MS)
            site.goto(authorize_url)
            expect(site.locator("#status-title")).to_have_text("Scan the QR code with the app")
            qr = site.locator("#qr").element_handle()
            site.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr)
            site.screenshot(path=str(website_png))
            # Cancel it, so the page holds no long-poll open and the server stops at once.
            user_code = site.locator("#user-code").text_content() or ""
            # The page then sends the browser back to the website (which is not running).
            denied = f"{WEBSITE_REDIRECT}?error=access_denied"
            with site.expect_request(lambda sent: sent.url.startswith(denied)):
                cancelled = admin.post(
                    f"{base}/admin/v1/flows/cancel", json={"user_code": user_code}, timeout=10
                )
                cancelled.raise_for_status()
        finally:
            browser.close()
    return login_png, approval_png, website_png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="directory for the PNGs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="authserver-shots-") as tmp:
        port = free_port()
        process, demo = start_demo(Path(tmp), port)
        try:
            paths = shoot(f"http://127.0.0.1:{port}", demo, args.out)
        finally:
            stop(process)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
