"""Private JSON files (tokens, a phone's device token): mode 0600 from the first byte."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def write_private_json(path: Path, payload: Any) -> None:
    """Write `payload` as JSON to `path`, readable and writable by the owner only.

    The bytes go to a new file in the same directory, created with O_CREAT|O_EXCL and mode
    0600 (then fchmod'ed to exactly 0600 whatever the umask), and that file replaces `path`
    atomically. So the secret is never in a file others can read, not even briefly, and a
    pre-existing file with looser permissions (say 0644) is replaced by a 0600 one; a crash
    leaves the old file or the new one, never half of either.
    """
    path = Path(path)
    directory = path.parent
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for level in reversed(missing):  # each level we create is the owner's alone, not just the last
        level.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    data = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
    # mkstemp opens with O_RDWR|O_CREAT|O_EXCL and mode 0600.
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_private_json(path: Path) -> Any:
    """The JSON in `path`; if group or others may access the file, it is chmod'ed to 0600."""
    path = Path(path)
    # O_NOFOLLOW: a symlink planted at `path` is refused, not followed (nor its target chmod'ed).
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if mode & 0o077:
            os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
        return json.loads(handle.read().decode())


def file_mode(path: Path) -> int:
    """The permission bits of `path` (e.g. 0o600)."""
    return stat.S_IMODE(os.stat(path).st_mode)


def config_home() -> Path:
    """$XDG_CONFIG_HOME, else ~/.config."""
    configured = os.environ.get("XDG_CONFIG_HOME")
    return Path(configured) if configured else Path.home() / ".config"
