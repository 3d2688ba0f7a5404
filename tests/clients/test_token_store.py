"""Tokens on disk: mode 0600 from the first byte, and knowing when the access token expired."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import qrlogin_client.files
from qrlogin_client.files import file_mode, write_private_json
from qrlogin_client.pc import DeviceLoginError, NotSignedIn, Tokens, TokenStore

ISSUER, CLIENT_ID = "https://login.example.test", "pc-client"


def tokens(obtained_at: float = 1000.0, expires_in: int | None = 600) -> Tokens:
    return Tokens("at", "Bearer", expires_in, "rt", "profile", obtained_at)


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=["umask000", "umask022", "umask077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Whatever the umask, the file ends up exactly 0600 (a umask can only take bits away)."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_new_file_is_0600(tmp_path: Path, umask: int) -> None:
    store = TokenStore(tmp_path / "sub" / "tokens.json")
    store.save(tokens(), issuer=ISSUER, client_id=CLIENT_ID)
    assert file_mode(store.path) == 0o600
    assert file_mode(store.path.parent) & 0o077 == 0  # a directory it made is private too
    saved = store.load()
    assert (saved.issuer, saved.client_id, saved.tokens) == (ISSUER, CLIENT_ID, tokens())


def test_existing_world_readable_file_becomes_0600(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"old": true}')
    path.chmod(0o644)
    store = TokenStore(path)
    store.save(tokens(), issuer=ISSUER, client_id=CLIENT_ID)
    assert file_mode(path) == 0o600
    assert "old" not in path.read_text()


def test_the_secret_is_never_in_a_readable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the moment the new file takes the name, it is already 0600 and complete."""
    path = tmp_path / "tokens.json"
    path.write_text("{}")
    path.chmod(0o644)
    real_replace = os.replace
    seen: list[tuple[int, str]] = []

    def replace(source: str, target: Path) -> None:
        seen.append((file_mode(Path(source)), Path(source).read_text()))
        real_replace(source, target)

    monkeypatch.setattr(qrlogin_client.files.os, "replace", replace)
    TokenStore(path).save(tokens(), issuer=ISSUER, client_id=CLIENT_ID)
    ((mode, text),) = seen
    assert mode == 0o600 and json.loads(text)["tokens"]["access_token"] == "at"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]  # no temp file left


def test_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    write_private_json(path, {"v": 1})

    def broken_replace(source: str, target: Path) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(qrlogin_client.files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_private_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_loading_a_loose_file_tightens_it(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    store.save(tokens(), issuer=ISSUER, client_id=CLIENT_ID)
    store.path.chmod(0o644)  # someone loosened it
    store.load()
    assert file_mode(store.path) == 0o600


def test_expiry_detection() -> None:
    token = tokens(obtained_at=1000.0, expires_in=600)
    assert token.expires_at == 1600.0
    assert not token.is_expired(now=1569.0)  # default leeway 30 s
    assert token.is_expired(now=1570.0)
    assert not token.is_expired(now=1599.0, leeway=0)
    assert token.is_expired(now=1600.0, leeway=0)
    never = tokens(expires_in=None)
    assert never.expires_at is None and not never.is_expired(now=1e12)


def test_store_knows_when_the_saved_access_token_expired(tmp_path: Path) -> None:
    now = [1000.0]
    store = TokenStore(tmp_path / "tokens.json", wall_clock=lambda: now[0])
    store.save(tokens(obtained_at=1000.0), issuer=ISSUER, client_id=CLIENT_ID)
    assert not store.access_token_expired()
    now[0] = 1599.0
    assert store.access_token_expired()  # within the leeway
    assert not store.access_token_expired(leeway=0)
    now[0] = 1600.0
    assert store.access_token_expired(leeway=0)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with pytest.raises(NotSignedIn):
        store.load()
    assert not store.delete()
    store.path.write_text("not json")
    with pytest.raises(DeviceLoginError, match="Cannot read"):
        store.load()
    store.path.write_text('{"issuer": "x"}')
    with pytest.raises(DeviceLoginError, match="malformed"):
        store.load()
    assert store.delete() and not store.exists()


def test_secrets_stay_out_of_reprs() -> None:
    text = repr(tokens())
    assert "'at'" not in text and "'rt'" not in text


def test_every_directory_level_it_creates_is_private(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        store = TokenStore(tmp_path / "a" / "b" / "tokens.json")
        store.save(tokens(), issuer=ISSUER, client_id=CLIENT_ID)
    finally:
        os.umask(previous)
    assert file_mode(tmp_path / "a") == 0o700
    assert file_mode(tmp_path / "a" / "b") == 0o700


def test_a_symlink_planted_at_the_token_path_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"issuer": ISSUER, "client_id": CLIENT_ID}))
    target.chmod(0o644)
    link = tmp_path / "tokens.json"
    link.symlink_to(target)
    with pytest.raises(DeviceLoginError):
        TokenStore(link).load()
    assert file_mode(target) == 0o644  # its target was not chmod'ed either


class CountingLogin:
    """Stands in for DeviceLogin.refresh: rotates, and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def refresh(self, old: Tokens) -> Tokens:
        self.calls += 1
        return Tokens(f"at-{self.calls}", "Bearer", 600, f"rt-{self.calls}", "profile", 5000.0)


def test_refreshes_take_turns_and_reuse_what_the_other_saved(tmp_path: Path) -> None:
    """Two commands find the access token expired: one refreshes, the other uses its result.

    Without the lock and the re-read, both would send the same refresh token, and the server
    would revoke the sign-in as a replay.
    """
    import threading

    path = tmp_path / "tokens.json"
    TokenStore(path).save(tokens(obtained_at=0.0), issuer=ISSUER, client_id=CLIENT_ID)
    login = CountingLogin()
    results: list[Tokens] = []
    barrier = threading.Barrier(4)

    def whoami() -> None:
        store = TokenStore(path, wall_clock=lambda: 5001.0)
        barrier.wait()
        results.append(store.refreshed(login))  # type: ignore[arg-type]

    threads = [threading.Thread(target=whoami) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert login.calls == 1
    assert {t.refresh_token for t in results} == {"rt-1"}
    assert TokenStore(path).load().tokens.refresh_token == "rt-1"


def test_a_forced_refresh_uses_the_newest_saved_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    TokenStore(path).save(tokens(obtained_at=5000.0), issuer=ISSUER, client_id=CLIENT_ID)
    login = CountingLogin()
    store = TokenStore(path, wall_clock=lambda: 5001.0)
    assert store.refreshed(login).refresh_token == "rt"  # type: ignore[arg-type]  # still fresh
    assert store.refreshed(login, force=True).refresh_token == "rt-1"  # type: ignore[arg-type]
    assert store.refreshed(login, force=True).refresh_token == "rt-2"  # type: ignore[arg-type]
    assert login.calls == 2
