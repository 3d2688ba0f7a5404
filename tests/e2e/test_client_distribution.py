"""The client distribution alone: its wheel built from client/, installed into a fresh venv
with none of the server, signing in against a live server; then its `[phone]` extra.

What a PC app's developer does: `pip install qrlogin-client`. The wheel is built from a copy of
client/ (pip builds in the source tree, which the suite shares), and installed with its
dependencies from the machine's package index (pip's cache makes a rerun quick).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import requests

from tests.e2e.conftest import LiveServer
from tests.e2e.test_clients_live import TIMEOUT, client_env, pc_login, phone_signin, run

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 300.0  # a cold pip cache downloads a few wheels
# What a PC app must never get through the client: the server and its main dependencies.
SERVER_MODULES = (
    "authserver",
    "flask",
    "sqlalchemy",
    "alembic",
    "granian",
    "psycopg",
    "redis",
    "authlib",
)
# The server's requirements the client needs too (DPoP proofs, QR codes); no other may come.
SHARED = {"pyjwt", "qrcode"}
PHONE_MODULES = ("zxingcpp", "PIL")  # the [phone] extra's QR decoder


def _requirements(pyproject: Path) -> tuple[str, set[str]]:
    """A pyproject's version and the canonical names of its dependencies (PEP 503: lower
    case, runs of `-_.` as one `-`)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert name, requirement
        names.add(re.sub(r"[-_.]+", "-", name.group()).lower())
    return project.get("version", ""), names


def _clean_env() -> dict[str, str]:
    """This environment without what would let the venv see the suite's own packages."""
    hidden = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in hidden}


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def build_wheel(workdir: Path) -> Path:
    """The client's wheel, built from a copy of client/ (its LICENSE link followed)."""
    source = workdir / "client-source"
    shutil.copytree(
        ROOT / "client", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    _pip("wheel", "--no-deps", "--wheel-dir", str(workdir / "dist"), str(source))
    (wheel,) = (workdir / "dist").glob("qrlogin_client-*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A venv with nothing in it, not even pip (this pip installs into it): its Python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)],
        env=_clean_env(),
        timeout=INSTALL_TIMEOUT,
        check=True,
    )
    return path / "bin" / "python"


def installed(python: Path, workdir: Path) -> tuple[set[str], set[str]]:
    """The distributions installed in the venv of `python` (canonical names), and which of
    SERVER_MODULES and PHONE_MODULES it can import. Isolated mode (-I): no PYTHON* variables,
    no current directory on sys.path, so only the venv answers."""
    script = (
        "import importlib.metadata as m, importlib.util as u, json, sys\n"
        "print(json.dumps([[d.metadata['Name'] for d in m.distributions()],"
        " [n for n in sys.argv[1:] if u.find_spec(n)]]))"
    )
    done = subprocess.run(
        [str(python), "-I", "-c", script, *SERVER_MODULES, *PHONE_MODULES],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=_clean_env(),
        timeout=TIMEOUT,
        check=True,
    )
    names, importable = json.loads(done.stdout)
    return {re.sub(r"[-_.]+", "-", name).lower() for name in names}, set(importable)


def test_the_client_alone_in_a_fresh_venv_signs_in_then_its_phone_extra_decodes_a_qr(
    live_server: LiveServer, tmp_path: Path
) -> None:
    server_version, server_requirements = _requirements(ROOT / "pyproject.toml")
    wheel = build_wheel(tmp_path)
    # One version for both distributions: the wheel's name carries the client's.
    assert wheel.name.startswith(f"qrlogin_client-{server_version}-"), wheel.name

    python = fresh_venv(tmp_path / "venv")
    _pip("--python", str(python), "install", str(wheel))
    dists, importable = installed(python, tmp_path)
    assert {"qrlogin-client", "requests", "pyjwt", "qrcode"} <= dists
    assert dists & (server_requirements - SHARED) == set()
    assert "authserver" not in dists and importable == set()  # not even Pillow (qrcode's [pil])

    bin_dir, env = python.parent, client_env(tmp_path)
    pc, phone = str(bin_dir / "qrlogin-pc"), str(bin_dir / "qrlogin-phone")
    token_file, state = tmp_path / "tokens.json", tmp_path / "phone.json"
    phone_signin(live_server, state, env, command=phone)
    with pc_login(live_server, tmp_path, token_file, command=pc) as login:
        user_code = login.user_code()
        # Without the extra the simulator still approves by code; an image asks for the extra.
        image = tmp_path / "qr.png"
        qr = requests.get(f"{live_server.base_url}/qr/{user_code}.png", timeout=TIMEOUT)
        image.write_bytes(qr.content)
        no_decoder = run(phone, ["scan", "--state", str(state), "--image", str(image)], env)
        assert no_decoder.returncode == 1
        assert "pip install 'qrlogin-client[phone]'" in no_decoder.stderr, no_decoder.stderr
        approved = run(
            phone, ["scan", "--state", str(state), "--code", user_code, "--approve"], env
        )
        assert approved.returncode == 0 and "Approved" in approved.stdout, approved.stderr
        returncode, out, err = login.finish()
    assert returncode == 0 and "Status: Signed in." in out, out + err
    whoami = run(pc, ["whoami", "--json", "--token-file", str(token_file)], env)
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["username"] == live_server.username

    # The [phone] extra brings the decoder (and still nothing of the server's).
    _pip("--python", str(python), "install", f"{wheel}[phone]")
    dists, importable = installed(python, tmp_path)
    assert importable == set(PHONE_MODULES)
    assert {"zxing-cpp", "pillow"} <= dists
    assert dists & (server_requirements - SHARED) == set()
    second = tmp_path / "second"
    second.mkdir()
    with pc_login(live_server, second, second / "tokens.json", command=pc) as login:
        user_code = login.user_code()
        qr = requests.get(f"{live_server.base_url}/qr/{user_code}.png", timeout=TIMEOUT)
        image.write_bytes(qr.content)
        scanned = run(
            phone, ["scan", "--state", str(state), "--image", str(image), "--approve"], env
        )
        assert scanned.returncode == 0 and user_code in scanned.stdout, scanned.stderr
        returncode, out, err = login.finish()
    assert returncode == 0 and "Status: Signed in." in out, out + err
