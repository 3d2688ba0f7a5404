"""The builds to compare: this checkout, and a git ref checked out with a venv of its own."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.servers import Build

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def this_checkout() -> Build:
    """The `authserver` installed next to the running Python (this checkout, editable)."""
    head = _git("rev-parse", "--short", "HEAD")
    dirty = "+changes" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return Build(f"this checkout ({head}{dirty})", Path(sys.executable).parent)


@contextmanager
def baseline(ref: str, *, keep: bool) -> Iterator[Build]:
    """`ref` in a detached git worktree in a temp dir, installed into its own venv.

    A worktree and venv left by an earlier `--keep-baseline` run of the same commit is reused.
    """
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    path = Path(tempfile.gettempdir()) / f"authserver-bench-baseline-{commit[:12]}"
    bin_dir = path / ".venv" / "bin"
    if (bin_dir / "authserver").exists():
        print(f"reusing the baseline in {path}", file=sys.stderr)
    else:
        if path.exists():
            _git("worktree", "remove", "--force", str(path))
        print(f"checking out {ref} ({commit[:7]}) in {path} and installing it", file=sys.stderr)
        _git("worktree", "add", "--detach", str(path), commit)
        subprocess.run([sys.executable, "-m", "venv", str(path / ".venv")], check=True)
        subprocess.run(
            [
                str(bin_dir / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                str(path),
            ],
            check=True,
        )
    try:
        named = ref if commit.startswith(ref) else f"{ref} ({commit[:7]})"
        yield Build(f"baseline {named}", bin_dir)
    finally:
        if keep:
            print(f"kept the baseline in {path}", file=sys.stderr)
        else:
            _git("worktree", "remove", "--force", str(path))
