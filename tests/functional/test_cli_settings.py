"""What an operator sees first: `--version`, the defaults in every `--help`, and a wrong
setting refused as one JSON line on stderr with exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from authserver.bootstrap import build_services
from authserver.cli import _parser, main
from authserver.config import Config, ConfigError

ROOT = Path(__file__).resolve().parents[2]
# The console script of the venv running the tests: what pip installed, as an operator runs it.
AUTHSERVER = str(Path(sys.executable).with_name("authserver"))


def _subcommand_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _subcommand_parsers(child, (*path, name))
    return found


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert capsys.readouterr().out.strip() == f"authserver {project['version']}"
    assert metadata.version("authserver") == project["version"]


def test_every_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _subcommand_parsers(_parser())
    assert ("users", "create") in [path for path, _ in commands]
    for path, _ in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in text and "(default: False)" not in text, path
        if path in (("serve",), ("demo",)):
            assert "--port PORT port to listen on (default: 8000)" in text, path
            assert "(default: 127.0.0.1)" in text and "(default: 32)" in text, path
    with pytest.raises(SystemExit):
        main(["clients", "create", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: all of AUTHSERVER_SCOPES)" in text
    assert "(default: device_code)" in text


def test_a_wrong_setting_is_one_json_line_from_the_installed_command(tmp_path: Path) -> None:
    """The real console script, a real process: stderr is the JSON error and nothing else."""
    env = {"PATH": "/usr/bin:/bin", "AUTHSERVER_DATABASE_URL": "mysql://ops:s3cret@db/auth"}
    done = subprocess.run(
        [AUTHSERVER, "clients", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    error = json.loads(lines[0])["error"]
    assert "AUTHSERVER_DATABASE_URL" in error and "sqlite" in error and "postgresql" in error
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr


def _run(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase\n"))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _error(err: str) -> str:
    """The one JSON line of stderr: its error message (fails on a traceback or anything else)."""
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return str(json.loads(lines[0])["error"])


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> str:
    for name in [n for n in os.environ if n.startswith("AUTHSERVER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", sqlite_url)
    return sqlite_url


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("AUTHSERVER_REDIS_URL", "http://127.0.0.1:6379/0", "redis://, rediss:// (TLS) or unix://"),
        ("AUTHSERVER_REDIS_URL", "127.0.0.1:6379", "got no URL scheme"),
        ("AUTHSERVER_REDIS_URL", "redis://127.0.0.1:port/0", "the port must be a number"),
        ("AUTHSERVER_REDIS_URL", "redis://127.0.0.1:6379/cache", "the database number"),
        ("AUTHSERVER_REDIS_URL", "redis:///0", "needs a host"),
        ("AUTHSERVER_DATABASE_URL", "mysql://ops:s3cret@db/auth", "got mysql://..."),
        ("AUTHSERVER_DATABASE_URL", "postgresql+psycopg2://ops:s3cret@db/a", "psycopg 3"),
        ("AUTHSERVER_DATABASE_URL", "ops:s3cret@db/auth", "got no URL scheme"),
    ],
)
@pytest.mark.parametrize(
    "argv", [["db", "upgrade"], ["clients", "list"], ["users", "create", "u", "--password-stdin"]]
)
def test_a_wrong_url_is_named_and_changes_nothing(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    setting: str,
    value: str,
    message: str,
    argv: list[str],
) -> None:
    monkeypatch.setenv(setting, value)
    code, out, err = _run(argv, monkeypatch, capsys)
    error = _error(err)
    assert code == 2 and out == ""
    assert setting in error and message in error and "s3cret" not in err
    assert not Path(env.removeprefix("sqlite:///")).exists()  # not even an empty database


def test_serve_refuses_a_wrong_redis_url_before_anything(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHSERVER_REDIS_URL", "http://127.0.0.1:6379/0")
    code, out, err = _run(["serve", "--port", "0", "--workers", "2"], monkeypatch, capsys)
    assert code == 2 and out == "" and "AUTHSERVER_REDIS_URL" in _error(err)


@pytest.mark.parametrize(
    "argv",
    [
        ["clients", "create", "--name", "Desktop app"],
        ["clients", "update", "some-client", "--name", "New"],
        ["clients", "list"],
        ["users", "create", "carol", "--password-stdin"],
        ["admins", "create", "ops", "--password-stdin"],
        ["keys", "rotate"],
    ],
)
def test_commands_on_a_database_without_the_schema_say_to_upgrade(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    code, out, err = _run(argv, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert "run `authserver db upgrade` first" in _error(err)
    assert sys.stdin.read() == "a long passphrase\n"  # checked before the password is read


def test_commands_on_an_empty_postgresql_schema_say_to_upgrade(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    postgres_url: str,
) -> None:
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", postgres_url)
    code, out, err = _run(["clients", "create", "--name", "X"], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert "run `authserver db upgrade` first" in _error(err)  # not UndefinedTable


def test_workers_must_be_at_least_one(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for workers in ("0", "-3"):
        code, out, err = _run(["serve", "--workers", workers], monkeypatch, capsys)
        assert code == 2 and out == ""
        assert _error(err) == "--workers must be at least 1"


def test_heroku_style_postgres_urls_work(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    postgres_url: str,
) -> None:
    """`postgres://` (Heroku, many PaaS) and a bare `postgresql://` mean psycopg 3."""
    rest = postgres_url.partition("://")[2]  # a fresh schema of its own on database `test`
    assert Config.from_env({"AUTHSERVER_DATABASE_URL": f"postgres://{rest}"}).database_url == (
        f"postgresql+psycopg://{rest}"
    )
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", f"postgres://{rest}")
    code, out, err = _run(["db", "upgrade"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["database"].startswith("postgresql+psycopg://")
    code, out, err = _run(["clients", "create", "--name", "Heroku app"], monkeypatch, capsys)
    assert code == 0, err
    client_id = json.loads(out)["client_id"]
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", f"postgresql://{rest}")
    code, out, err = _run(["clients", "list"], monkeypatch, capsys)
    assert code == 0, err
    assert [c["client_id"] for c in json.loads(out)["clients"]] == [client_id]
    # and the same rows through the canonical URL: one database, whichever spelling
    services = build_services(Config.from_env({"AUTHSERVER_DATABASE_URL": postgres_url}))
    try:
        assert [c.client_id for c in services.clients.all()] == [client_id]
    finally:
        services.close()


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("AUTHSERVER_DATBASE_URL", "did you mean AUTHSERVER_DATABASE_URL?"),
        ("AUTHSERVER_REDIS", "did you mean AUTHSERVER_REDIS_URL?"),
        ("AUTHSERVER_POLL_INTERVALL", "did you mean AUTHSERVER_POLL_INTERVAL?"),
        ("AUTHSERVER_issuer", "did you mean AUTHSERVER_ISSUER?"),
        ("AUTHSERVER_TEST_REDIS_URL", "did you mean AUTHSERVER_REDIS_URL?"),
    ],
)
def test_an_unknown_setting_is_refused_with_the_likeliest_one(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    hint: str,
) -> None:
    monkeypatch.setenv(variable, "redis://127.0.0.1:6379/0")
    for argv in (["db", "upgrade"], ["serve", "--port", "0"]):
        code, out, err = _run(argv, monkeypatch, capsys)
        assert code == 2 and out == ""
        error = _error(err)
        assert error.startswith(f"unknown setting {variable} ({hint})"), error
    assert not Path(env.removeprefix("sqlite:///")).exists()  # refused before anything


def test_every_unknown_setting_is_named_and_no_far_fetched_hint(env: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"AUTHSERVER_FOO": "1", "AUTHSERVER_SCOPE": "openid", "OTHER_FOO": "1"})
    message = str(refused.value)
    assert message.startswith(
        "unknown settings AUTHSERVER_FOO, AUTHSERVER_SCOPE (did you mean AUTHSERVER_SCOPES?):"
    )
    assert "OTHER_FOO" not in message


def test_tests_and_scripts_set_only_real_settings() -> None:
    """Each AUTHSERVER_* name in the tests, scripts, benchmarks and CI is a setting."""
    known = {f"AUTHSERVER_{field.name.upper()}" for field in dataclasses.fields(Config)}
    # Not environment variables: the config docstring's pattern and a Flask app.config key.
    known |= {"AUTHSERVER_FOO_BAR", "AUTHSERVER_METADATA"}
    used: dict[str, str] = {}
    for folder in ("tests", "scripts", "bench", ".ci", "client", "examples", "docs"):
        for path in (ROOT / folder).rglob("*"):
            wanted = path.suffix in ("", ".py", ".sh", ".md", ".toml", ".yml")
            # This file sets wrong names on purpose, to see them refused.
            if path.is_file() and wanted and path != Path(__file__).resolve():
                for name in re.findall(r"AUTHSERVER_[A-Z0-9_]*[A-Z0-9]", path.read_text("utf8")):
                    used.setdefault(name, str(path.relative_to(ROOT)))
    for name in re.findall(r"AUTHSERVER_[A-Z0-9_]*[A-Z0-9]", (ROOT / "README.md").read_text()):
        used.setdefault(name, "README.md")
    assert {name: where for name, where in used.items() if name not in known} == {}
