"""CPU time of processes from /proc: a server's process tree, a set of database backends."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_TICK = float(os.sysconf("SC_CLK_TCK"))


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # proc(5): the command name is in parentheses and may hold spaces; fields follow it.
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / _TICK


def tree_cpu_seconds(root: int) -> float:
    """utime+stime of `root` and every live descendant (plus children they reaped)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents[int(entry)], cpu[int(entry)] = stat
    tree = {root}
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= children
        grew = bool(children)
    return sum(cpu.get(pid, 0.0) for pid in tree)


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each of these single-threaded processes that is still alive.

    From /proc/PID/schedstat (nanoseconds on a CPU), not the tick-sampled utime+stime: a
    database backend runs in bursts of tens of microseconds, which ticks mostly miss.
    """
    out = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            out[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two readings; a process first seen after counts whole."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def core_seconds(core: int) -> tuple[float, float]:
    """(busy, stolen) seconds of one core since boot, from /proc/stat.

    Busy is user+nice+system+irq+softirq; stolen is time the hypervisor ran something else
    while this virtual core wanted to run (proc(5) "steal").
    """
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = (
                int(v) for v in line.split()[1:9]
            )
            return (user + nice + system + irq + softirq) / _TICK, steal / _TICK
    raise ValueError(f"no core {core} in /proc/stat")
