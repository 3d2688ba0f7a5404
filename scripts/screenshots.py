"""Screenshots of the people's pages for the README, taken from a real run.

Starts `authserver demo` in a temporary directory, opens the PC login page in the system
Chromium (headless, through Playwright) and saves it once the QR code shows; then a second
browser types that page's code on the verification page, signs in as the demo user and saves
the approval facts it is shown, then denies. The server is stopped afterwards.

    .venv/bin/python scripts/screenshots.py               # docs/login-page.png, approval-page.png
    .venv/bin/python scripts/screenshots.py --out /tmp/shots
"""

from __future__ import annotations

import argparse
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

import requests

ROOT = Path(__file__).resolve().parent.parent
AUTHSERVER = str(Path(sys.executable).with_name("authserver"))
CHROMIUM = os.environ.get("AUTHSERVER_TEST_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000


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
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit((workdir / "server.err").read_text(errors="replace"))
        try:
            if requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=1).ok:
                text = (workdir / "server.out").read_text()
                demo, _ = json.JSONDecoder().raw_decode(text.lstrip())
                return process, dict(demo)
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    process.terminate()
    sys.exit("authserver demo did not start within 20 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def shoot(base: str, demo: dict[str, Any], out: Path) -> tuple[Path, Path]:
    from playwright.sync_api import expect, sync_playwright

    login_png, approval_png = out / "login-page.png", out / "approval-page.png"
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
            code = pc.locator("#user-code").text_content() or ""

            other = browser.new_context(viewport={"width": 720, "height": 900}).new_page()
            other.set_default_timeout(TIMEOUT_MS)
            other.goto(f"{base}/device")
            other.get_by_label("Code shown on your device").fill(code)
            other.get_by_label("Username").fill(demo["demo_user"]["username"])
            other.get_by_label("Password").fill(demo["demo_user"]["password"])
            other.get_by_role("button", name="Sign in and continue").click()
            expect(other.get_by_role("button", name="Approve")).to_be_visible()
            expect(pc.locator("#status-title")).to_have_text("Confirm in your browser")
            other.screenshot(path=str(approval_png), full_page=True)
            # Deny, so the login page holds no long-poll open and the server stops at once.
            other.get_by_role("button", name="Deny").click()
            expect(pc.locator("#status-title")).to_have_text("Sign-in denied")
        finally:
            browser.close()
    return login_png, approval_png


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
