"""Processes seen through /proc: whose children they are, which one holds a TCP connection.

Nothing here knows which HTTP server runs the app (gunicorn, granian, ...): a worker is a
descendant of the process the test spawned, and the worker serving a request is the one that
owns that request's TCP connection.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import time
from pathlib import Path

PROC = Path("/proc")
# Ports handed out here are below the kernel's ephemeral range (ip_local_port_range, usually
# 32768-60999), so an outgoing connection of another process cannot take one while a private
# server is down and about to be restarted on it.
PRIVATE_PORTS = range(20000, 32000)


def free_private_port() -> int:
    """A free TCP port on 127.0.0.1 outside the ephemeral range (see PRIVATE_PORTS)."""
    for _ in range(200):
        port = random.choice(PRIVATE_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in the private range")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, or None once it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def age(pid: int) -> float | None:
    """Seconds since the process started (/proc/PID/stat field 22), or None once it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
        uptime = float((PROC / "uptime").read_text().split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    started_ticks = int(text[text.rindex(")") + 2 :].split()[19])
    return uptime - started_ticks / os.sysconf("SC_CLK_TCK")


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def is_stopped(pid: int) -> bool:
    """True if the process is stopped by a signal (SIGSTOP)."""
    stat = _stat(pid)
    return stat is not None and stat[0] == "T"


def children(pid: int) -> list[int]:
    """Live direct children of `pid`."""
    found = []
    for child in _all_pids():
        stat = _stat(child)
        if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
            found.append(child)
    return sorted(found)


def descendants(pid: int) -> list[int]:
    """Live children, grandchildren, ... of `pid`, parents before their children."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        level = [child for parent in frontier for child in children(parent)]
        found.extend(level)
        frontier = level
    return found


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    """Send `sig` to each process that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    """Wait until none of `pids` is alive (a SIGKILLed process takes a moment to go)."""
    deadline = time.monotonic() + timeout
    while left := [pid for pid in pids if is_alive(pid)]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes still alive: {left}")
        time.sleep(0.01)


def wait_state(pids: list[int], *, stopped: bool, timeout: float = 5.0) -> None:
    """Wait until every live process in `pids` is (or is no longer) stopped: a signal is
    delivered asynchronously, and a test that pauses a server must not race ahead of it."""
    deadline = time.monotonic() + timeout
    while left := [p for p in pids if is_alive(p) and is_stopped(p) != stopped]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes not {'stopped' if stopped else 'running'}: {left}")
        time.sleep(0.002)


def _tcp_inodes(local_port: int, remote_port: int) -> set[str]:
    """Inodes of the IPv4/IPv6 TCP sockets with these two ports (any address)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == local_port and (
                int(remote.rsplit(":", 1)[1], 16) == remote_port
            ):
                inodes.add(inode)
    return inodes


def tcp_connection_owner(
    local_port: int, remote_port: int, candidates: list[int] | None = None
) -> int | None:
    """The process (among `candidates`, default all) owning the TCP socket whose local port is
    `local_port` and peer port is `remote_port`, or None if there is none."""
    wanted = {f"socket:[{inode}]" for inode in _tcp_inodes(local_port, remote_port)}
    if not wanted:
        return None
    for pid in candidates if candidates is not None else _all_pids():
        try:
            fds = list((PROC / str(pid) / "fd").iterdir())
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    return pid
            except OSError:
                continue
    return None
