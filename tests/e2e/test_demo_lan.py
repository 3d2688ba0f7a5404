"""`authserver demo --lan`: a phone on the same Wi-Fi can try it. It listens on this machine's
private LAN address, uses it as the issuer over plain http (demo only, with a loud warning), and
the commands it prints work as pasted: the curl lines (no placeholder left) and the reference
clients with QRLOGIN_INSECURE_LAN=1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from authserver.cli import lan_address
from authserver.config import is_private_literal
from tests.e2e.conftest import _demo_output, _free_port, _server_env, _spawn, _stop, _wait_ready
from tests.e2e.tls_proxy import make_certificates

QRLOGIN_PC = str(Path(sys.executable).with_name("qrlogin-pc"))
TIMEOUT = 20.0


def test_demo_on_the_lan_and_its_printed_commands(tmp_path: Path) -> None:
    address = lan_address()
    assert is_private_literal(address), address  # this machine's kind has a private address
    port = _free_port()
    base = f"http://{address}:{port}"
    process = _spawn(["demo", "--lan", "--port", str(port)], _server_env(tmp_path), tmp_path)
    try:
        _wait_ready(process, base, tmp_path)
        demo = _demo_output(tmp_path)
        assert demo["issuer"] == base and demo["pc_login_page"].startswith(base)
        assert "WARNING: plain http on your local network" in (tmp_path / "server.err").read_text()
        # The QR code sends a phone to the LAN address, not to its own localhost.
        started = requests.post(
            f"{base}/oauth/device_authorization",
            data={"client_id": demo["demo_client_id"]},
            timeout=TIMEOUT,
        ).json()
        assert started["verification_uri_complete"].startswith(f"{base}/device?")

        # The curl lines, pasted into a shell as they are.
        script = "set -e\n" + "\n".join(demo["try_it"]) + "\n"
        # No placeholder to fill in: every capital word is a shell variable the script sets.
        for name in set(re.findall(r"\$([A-Z_]+)", script)):
            assert f"{name}=$(" in script, name
        ran = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        assert ran.returncode == 0, ran.stderr
        tokens = json.loads(ran.stdout.strip().splitlines()[-1])
        assert tokens["token_type"] == "Bearer" and tokens["access_token"]

        # The reference PC client, as printed (it needs QRLOGIN_INSECURE_LAN=1 for plain http).
        command = demo["qrlogin_pc"][0]
        assert command.startswith("QRLOGIN_INSECURE_LAN=1 qrlogin-pc login")
        env = {**os.environ, "HOME": str(tmp_path), "QRLOGIN_INSECURE_LAN": "1"}
        args = [*command.split()[2:], "--token-file", str(tmp_path / "t.json"), "--qr", "none"]
        pc = subprocess.Popen(
            [QRLOGIN_PC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        time.sleep(1.5)
        assert pc.poll() is None, pc.communicate()  # it waits for the phone
        pc.terminate()
        pc.wait(timeout=TIMEOUT)
        # Without the variable the client refuses plain http off this machine.
        refused = subprocess.run(
            [QRLOGIN_PC, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={k: v for k, v in env.items() if k != "QRLOGIN_INSECURE_LAN"},
            check=False,
        )
        assert refused.returncode != 0 and "must be https" in refused.stderr
    finally:
        _stop(process)


def test_lan_mode_refuses_a_public_address(tmp_path: Path) -> None:
    ran = subprocess.run(
        [str(Path(sys.executable).with_name("authserver")), "demo", "--lan", "8.8.8.8"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_server_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )
    assert ran.returncode == 2
    assert "private address" in json.loads(ran.stderr.strip().splitlines()[-1])["error"]


def test_the_tls_recipe(tmp_path: Path) -> None:
    """README "A real phone in five minutes", https: a certificate from a local CA for the
    address, served by the server itself; clients that trust the CA need no insecure flag."""
    certificates = make_certificates(tmp_path)
    port = _free_port()
    base = f"https://127.0.0.1:{port}"
    args = [
        "demo",
        "--port",
        str(port),
        "--server-option",
        f"ssl_cert={certificates.cert}",
        "--server-option",
        f"ssl_key={certificates.key}",
    ]
    process = _spawn(args, _server_env(tmp_path, AUTHSERVER_ISSUER=base), tmp_path)
    try:
        deadline = time.monotonic() + TIMEOUT
        metadata = None
        while metadata is None and time.monotonic() < deadline:
            try:
                metadata = requests.get(
                    f"{base}/.well-known/oauth-authorization-server",
                    verify=str(certificates.ca),
                    timeout=2,
                ).json()
            except requests.RequestException:
                time.sleep(0.1)
        assert metadata is not None and metadata["issuer"] == base
        assert metadata["device_authorization_endpoint"].startswith("https://")
        env = {**os.environ, "HOME": str(tmp_path), "REQUESTS_CA_BUNDLE": str(certificates.ca)}
        env.pop("QRLOGIN_INSECURE_LAN", None)
        signin = subprocess.run(
            [
                str(Path(sys.executable).with_name("qrlogin-phone")),
                "signin",
                "--server",
                base,
                "--username",
                "demo",
                "--password-stdin",
                "--state",
                str(tmp_path / "phone.json"),
            ],
            input="demo-password\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
            check=False,
        )
        assert signin.returncode == 0, signin.stderr
    finally:
        _stop(process)
