"""qrlogin-pc's own behaviour, on a scripted server and a fake clock (no real waiting)."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qrlogin_client import pc_cli
from qrlogin_client.files import file_mode
from qrlogin_client.http import HttpResponse
from qrlogin_client.pc import DeviceLogin, Status, StatusUpdate
from tests.clients.fakes import (
    CLIENT_ID,
    ISSUER,
    PENDING,
    FakeClock,
    FakeServer,
    Sent,
    connection_refused,
    device_authorization,
    error,
    tokens_answer,
)

CODES = ["AAAA-AAAA", "BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """qrlogin-pc talks to this fake; each new code lives 10 s and polls every 5 s."""
    clock = FakeClock()
    fake = FakeServer(clock)
    fake.script(
        "/oauth/device_authorization",
        *(device_authorization(code, expires_in=10, interval=5) for code in CODES),
    )
    fake.script("/oauth/token", PENDING)

    def factory(
        server: str, client_id: str, secret: str | None, scope: str | None, **options: Any
    ) -> DeviceLogin:
        return DeviceLogin(
            server,
            client_id,
            secret,
            scope,
            **options,
            transport=fake,
            clock=clock,
            wall_clock=clock,
            sleep=clock.sleep,
        )

    monkeypatch.setattr(pc_cli, "DeviceLogin", factory)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal unless a test says so
    return fake


def approve_code(user_code: str) -> Callable[[Sent], HttpResponse]:
    """A token endpoint that is pending except for the flow of `user_code`."""

    def answer(sent: Sent) -> HttpResponse:
        if sent.form["device_code"].endswith(user_code):
            return tokens_answer()
        return PENDING

    return answer


def login(tmp_path: Path, *extra: str) -> int:
    return pc_cli.main(
        [
            "login",
            "--server",
            ISSUER,
            "--client-id",
            CLIENT_ID,
            "--token-file",
            str(tmp_path / "tokens.json"),
            *extra,
        ]
    )


def test_expired_codes_are_renewed_up_to_the_limit_then_exit_1(
    server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert login(tmp_path, "--renew", "2") == 1
    out, err = capsys.readouterr()
    assert [code for code in CODES if f"enter code {code}" in out] == CODES[:3]
    assert "Getting a new code (1 of 2)" in out and "Getting a new code (2 of 2)" in out
    assert out.count("Status: Expired") == 3
    assert "expired" in err and not (tmp_path / "tokens.json").exists()
    assert len(server.requests_to("/oauth/device_authorization")) == 3  # 1 + 2 renewals


def test_a_renewed_code_can_sign_in(
    server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script("/oauth/token", approve_code(CODES[1]))
    assert login(tmp_path, "--yes") == 0
    out, _ = capsys.readouterr()
    assert "Getting a new code (1 of 2)" in out
    assert "Status: Signed in." in out and "Signed in as Demo User (demo)." in out
    path = tmp_path / "tokens.json"
    assert file_mode(path) == 0o600
    assert f"Tokens saved to {path} (mode 600)" in out


def test_no_renewal_with_renew_0(server: FakeServer, tmp_path: Path) -> None:
    assert login(tmp_path, "--renew", "0") == 1
    assert len(server.requests_to("/oauth/device_authorization")) == 1


@pytest.mark.parametrize(("answers", "status"), [(["n"], 1), (["", "y", "n"], 1)])
def test_on_a_terminal_it_asks_before_each_new_code(
    server: FakeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: list[str],
    status: int,
) -> None:
    prompts: list[str] = []
    replies = iter(answers)

    def fake_input(prompt: str) -> str:
        prompts.append(prompt)
        return next(replies)

    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.setattr("builtins.input", fake_input)
    assert login(tmp_path, "--renew", "0") == status  # --renew is for the unattended case
    assert prompts == ["Get a new code? [Y/n] "] * len(answers)
    assert len(server.requests_to("/oauth/device_authorization")) == len(answers)


def test_denied_exits_1(
    server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script("/oauth/token", PENDING, error("access_denied"))
    assert login(tmp_path) == 1
    out, err = capsys.readouterr()
    assert "Status: Denied" in out and "denied" in err
    assert not (tmp_path / "tokens.json").exists()


def test_a_server_blip_is_waited_out_and_said_so(
    server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Redis blip (503 + Retry-After) or a refused connection does not end the login."""
    down = HttpResponse(
        503, {"error": "temporarily_unavailable"}, {"Retry-After": "1", "Cache-Control": "no-store"}
    )
    server.script("/oauth/device_authorization", device_authorization(CODES[0], expires_in=600))
    server.script("/oauth/token", PENDING, down, connection_refused(), PENDING, tokens_answer())
    assert login(tmp_path) == 0
    out, _ = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("Status: ")]
    assert lines == [
        "Status: Waiting for scan...",
        "Status: Cannot reach the server, retrying...",
        "Status: Waiting for scan...",
        "Status: Signed in.",
    ]
    assert (tmp_path / "tokens.json").exists()


def test_the_instructions_follow_rfc_8628(
    server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script("/oauth/token", tokens_answer())
    assert login(tmp_path) == 0
    out, _ = capsys.readouterr()
    assert "Scan this QR code" in out and "\u2588" in out  # a QR code, drawn with blocks
    assert f"Or visit {ISSUER}/device and enter code {CODES[0]}" in out
    assert "(The code expires in 1 minute.)" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        pc_cli.main(["login", "--client-id", "x"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:
        pc_cli.main(["frobnicate"])
    assert usage.value.code == 2


def test_whoami_without_tokens_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pc_cli.main(["whoami", "--token-file", str(tmp_path / "none.json")]) == 1
    assert "Not signed in" in capsys.readouterr().err


def test_status_line_is_rewritten_in_place_on_a_terminal() -> None:
    out = _Terminal()
    line = pc_cli.StatusLine(out)
    line.update(StatusUpdate(Status.PENDING))
    line.update(StatusUpdate(Status.SCANNED, scanner_name="D*** U***"))
    line.update(StatusUpdate(Status.SIGNED_IN))
    line.end()
    assert out.getvalue() == (
        "\r\x1b[2KWaiting for scan..."
        "\r\x1b[2KScanned, confirm on your phone (D*** U***)..."
        "\r\x1b[2KSigned in.\n"
    )


def test_status_lines_are_plain_lines_elsewhere() -> None:
    out = io.StringIO()
    line = pc_cli.StatusLine(out)
    line.update(StatusUpdate(Status.PENDING))
    line.update(StatusUpdate(Status.EXPIRED))
    assert out.getvalue() == (
        "Status: Waiting for scan...\nStatus: Expired: the code timed out before it was approved.\n"
    )
