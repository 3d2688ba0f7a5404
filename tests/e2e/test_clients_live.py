"""The reference clients' console scripts against a real server, as a person would run them.

`qrlogin-pc login` runs in the background with its output in a file; the test reads the user
code it prints, downloads the QR image the server makes of it, and has `qrlogin-phone` sign in,
decode that PNG and approve (or deny). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from PIL import Image

from qrlogin_client.dpop import DpopKey
from tests.e2e.conftest import LiveServer

# The console scripts of the venv running the tests: what pip installed is what is tested.
QRLOGIN_PC = str(Path(sys.executable).with_name("qrlogin-pc"))
QRLOGIN_PHONE = str(Path(sys.executable).with_name("qrlogin-phone"))
TIMEOUT = 20.0  # seconds, for any one command or wait
# RFC 8628 §3.3's "visit ... and enter code ...", in English or Chinese.
USER_CODE = re.compile(r"(?:enter code|输入验证码) ([A-Z0-9]{4}-[A-Z0-9]{4})")
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def client_env(home: Path, language: str = "C.UTF-8") -> dict[str, str]:
    """The clients' environment: their own HOME, so nothing is read or written in the real one,
    and their language (English unless told, whatever this machine's locale)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUTHSERVER_", "QRLOGIN_")) and k not in LOCALE_VARIABLES
    }
    env.update(
        HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PYTHONUNBUFFERED="1", LANG=language
    )
    return env


def run(
    command: str, args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


@dataclass
class PcLogin:
    """A `qrlogin-pc login` running in the background."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def user_code(self) -> str:
        """The user code it printed (RFC 8628 §3.3: "visit ... and enter code ...")."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found = USER_CODE.search(self.output())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(
            f"qrlogin-pc printed no user code:\n{self.output()}\n{self.err.read_text()}",
            pytrace=False,
        )

    def finish(self) -> tuple[int, str, str]:
        """Its exit status, stdout and stderr, once it is done (bounded)."""
        returncode = self.process.wait(timeout=TIMEOUT)
        return returncode, self.output(), self.err.read_text(errors="replace")


@contextmanager
def pc_login(
    server: LiveServer,
    workdir: Path,
    token_file: Path,
    *extra: str,
    command: str = QRLOGIN_PC,
    language: str = "C.UTF-8",
) -> Iterator[PcLogin]:
    """`command` (this venv's qrlogin-pc unless told) logging in, in the background."""
    out, err = workdir / "pc.out", workdir / "pc.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [
                command,
                "login",
                "--server",
                server.base_url,
                "--client-id",
                server.client_id,
                "--token-file",
                str(token_file),
                *extra,
            ],
            stdin=subprocess.DEVNULL,  # no terminal: nothing is asked
            stdout=stdout,
            stderr=stderr,
            env=client_env(workdir, language),
        )
    try:
        yield PcLogin(process, out, err)
    finally:
        if process.poll() is None:  # a failed test: stop the process this test started
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def phone_signin(
    server: LiveServer, state: Path, env: dict[str, str], command: str = QRLOGIN_PHONE
) -> None:
    signed_in = run(
        command,
        [
            "signin",
            "--state",
            str(state),
            "--server",
            server.base_url,
            "--username",
            server.username,
            "--password-stdin",
        ],
        env,
        stdin=server.password + "\n",
    )
    assert signed_in.returncode == 0, signed_in.stderr
    assert oct(state.stat().st_mode & 0o777) == oct(0o600)


def download_qr(server: LiveServer, user_code: str, path: Path) -> Path:
    response = requests.get(f"{server.base_url}/qr/{user_code}.png", timeout=TIMEOUT)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    path.write_bytes(response.content)
    return path


def test_login_by_scanning_the_qr_png_then_whoami_refresh_logout(
    any_live_server: LiveServer, tmp_path: Path
) -> None:
    server, env = any_live_server, client_env(tmp_path)
    token_file, state = tmp_path / "tokens.json", tmp_path / "phone.json"

    with pc_login(server, tmp_path, token_file) as pc:
        user_code = pc.user_code()
        image = download_qr(server, user_code, tmp_path / "qr.png")
        phone_signin(server, state, env)
        scanned = run(
            QRLOGIN_PHONE, ["scan", "--state", str(state), "--image", str(image), "--approve"], env
        )
        assert scanned.returncode == 0, scanned.stderr
        # The approval screen: the code to match, the PC's address, what it says it is (parsed
        # and labelled: never its raw user agent).
        for fact in (user_code, "127.0.0.1", "its own claim", "Only approve if you started"):
            assert fact in scanned.stdout, scanned.stdout
        assert "Approved" in scanned.stdout
        returncode, out, err = pc.finish()

    assert returncode == 0, out + err
    assert "Status: Waiting for scan..." in out
    assert "Status: Scanned, confirm on your phone (" in out  # the masked scanner follows
    assert "Status: Signed in." in out
    assert f"({server.username})." in out  # "Signed in as <name> (<username>)."
    assert token_file.stat().st_mode & 0o777 == 0o600
    saved = json.loads(token_file.read_text())
    assert saved["issuer"] == server.base_url and saved["client_id"] == server.client_id

    whoami = run(QRLOGIN_PC, ["whoami", "--token-file", str(token_file)], env)
    assert whoami.returncode == 0, whoami.stderr
    assert "Signed in as" in whoami.stdout and server.username in whoami.stdout
    as_json = run(QRLOGIN_PC, ["whoami", "--json", "--token-file", str(token_file)], env)
    assert json.loads(as_json.stdout)["username"] == server.username

    refreshed = run(QRLOGIN_PC, ["refresh", "--token-file", str(token_file)], env)
    assert refreshed.returncode == 0, refreshed.stderr
    rotated = json.loads(token_file.read_text())["tokens"]
    assert rotated["refresh_token"] != saved["tokens"]["refresh_token"]
    assert token_file.stat().st_mode & 0o777 == 0o600

    # RFC 9449: the tokens are bound to the PC's key, which the token file keeps (0600).
    assert saved["tokens"]["token_type"] == "DPoP" and "PRIVATE KEY" in saved["dpop_key"]
    key = DpopKey.from_pem(saved["dpop_key"])
    logout = run(QRLOGIN_PC, ["logout", "--token-file", str(token_file)], env)
    assert logout.returncode == 0, logout.stderr
    assert not token_file.exists()
    after = run(QRLOGIN_PC, ["whoami", "--token-file", str(token_file)], env)
    assert after.returncode == 1 and "Not signed in" in after.stderr
    # Revoked for real, not just forgotten: the server refuses the last access token.
    me_url = f"{server.base_url}/api/v1/me"
    me = requests.get(
        me_url,
        headers={
            "Authorization": f"DPoP {rotated['access_token']}",
            "DPoP": key.proof("GET", me_url, access_token=rotated["access_token"]),
        },
        timeout=TIMEOUT,
    )
    assert me.status_code == 401 and "revoked" in me.json()["error_description"]


def test_denied_on_the_phone_exits_1_and_saves_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    server, env = live_server, client_env(tmp_path)
    token_file, state = tmp_path / "tokens.json", tmp_path / "phone.json"

    with pc_login(server, tmp_path, token_file) as pc:
        user_code = pc.user_code()
        phone_signin(server, state, env)
        denied = run(
            QRLOGIN_PHONE, ["scan", "--state", str(state), "--code", user_code, "--deny"], env
        )
        assert denied.returncode == 0, denied.stderr
        assert "Declined" in denied.stdout
        returncode, out, err = pc.finish()

    assert returncode == 1, out + err
    assert "Status: Denied" in out and "denied" in err
    assert not token_file.exists()

    # The phone keeps its device id across sign-out and sign-in; signed out, it cannot scan.
    device_id = json.loads(state.read_text())["device_id"]
    assert run(QRLOGIN_PHONE, ["signout", "--state", str(state)], env).returncode == 0
    refused = run(QRLOGIN_PHONE, ["scan", "--state", str(state), "--code", user_code], env)
    assert refused.returncode == 1 and "Not signed in" in refused.stderr
    phone_signin(server, state, env)
    assert json.loads(state.read_text())["device_id"] == device_id


def test_the_phone_refuses_an_image_without_a_qr_code(
    live_server: LiveServer, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    state = tmp_path / "phone.json"
    phone_signin(live_server, state, env)
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    scanned = run(QRLOGIN_PHONE, ["scan", "--state", str(state), "--image", str(blank)], env)
    assert scanned.returncode == 1
    assert "No QR code found" in scanned.stderr


def test_number_matching_then_this_wasnt_me_from_the_phone(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """qrlogin-pc shows a number after the scan; qrlogin-phone must be given it; then the
    phone lists that login, reports it, and the PC's tokens stop working."""
    server, env = live_server, client_env(tmp_path)
    token_file, state = tmp_path / "tokens.json", tmp_path / "phone.json"
    with pc_login(server, tmp_path, token_file, "--number-matching") as pc:
        user_code = pc.user_code()
        phone_signin(server, state, env)
        phone = subprocess.Popen(
            [QRLOGIN_PHONE, "scan", "--state", str(state), "--code", user_code, "--approve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline, number = time.monotonic() + TIMEOUT, None
        while number is None and time.monotonic() < deadline:
            found = re.search(r"pick (\d\d) to confirm", pc.output())
            number = found.group(1) if found else None
            time.sleep(0.05)
        assert number is not None, pc.output()
        out, err = phone.communicate(f"{number}\n", timeout=TIMEOUT)
        assert phone.returncode == 0, out + err
        assert "Which number does the PC show?" in out and "Approved" in out
        assert f"{number}" in out.split("Pick:")[1].splitlines()[0]  # one of the choices
        returncode, pc_out, pc_err = pc.finish()
    assert returncode == 0, pc_out + pc_err

    listed = run(QRLOGIN_PHONE, ["logins", "--state", str(state)], env)
    assert listed.returncode == 0, listed.stderr
    assert "approved on this phone" in listed.stdout
    login_id = listed.stdout.split()[0]
    reported = run(QRLOGIN_PHONE, ["logins", "--state", str(state), "--report", login_id], env)
    assert reported.returncode == 0 and "Reported" in reported.stdout, reported.stderr
    whoami = run(QRLOGIN_PC, ["whoami", "--token-file", str(token_file)], env)
    assert whoami.returncode != 0, whoami.stdout
    listed = run(QRLOGIN_PHONE, ["logins", "--state", str(state)], env)
    assert "No computer is signed in" in listed.stdout


def test_a_whole_login_in_chinese(live_server: LiveServer, tmp_path: Path) -> None:
    """Both terminal clients in Simplified Chinese (LANG=zh_CN.UTF-8), the phone answering 是."""
    server, env = live_server, client_env(tmp_path, "zh_CN.UTF-8")
    token_file, state = tmp_path / "tokens.json", tmp_path / "phone.json"

    with pc_login(server, tmp_path, token_file, language="zh_CN.UTF-8") as pc:
        user_code = pc.user_code()
        phone_signin(server, state, env)
        scanned = run(
            QRLOGIN_PHONE, ["scan", "--state", str(state), "--code", user_code], env, "是\n"
        )
        assert scanned.returncode == 0, scanned.stderr
        for shown in (
            "在其他设备上登录？",
            user_code,
            "电脑上显示的验证码必须与此相同",
            "已确认登录",
        ):
            assert shown in scanned.stdout, scanned.stdout
        returncode, out, err = pc.finish()

    assert returncode == 0, out + err
    for shown in ("请用手机上的应用扫描此二维码", "状态：等待扫码……", "状态：已登录。"):
        assert shown in out, out
    assert "Waiting for scan" not in out and "Approved" not in scanned.stdout
