"""What an operator sees first: `--version`, the defaults in every `--help`, and a wrong
setting refused as one JSON line on stderr with exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from authserver.cli import _parser, main

ROOT = Path(__file__).resolve().parents[2]


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
