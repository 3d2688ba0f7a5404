"""Run wrk with one of the scenario scripts in bench/lua/, pinned to a core; parse its result."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).parent / "lua"
RESULT_PREFIX = "BENCH_RESULT "


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured, and what it cost the load generator."""

    requests: int
    seconds: float  # wrk's own measured duration
    latency_ms: dict[str, float]  # per request: p50, p90, p99, max, mean
    answers: dict[str, int]  # OAuth error code or "ok" / "http_NNN" -> count
    socket_errors: dict[str, int]  # connect, read, write, timeout
    cpu_seconds: float  # utime+stime of wrk itself
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)  # what the script adds

    @property
    def core_share(self) -> float:
        """How busy wrk kept its one core (1.0 = saturated: then it is the bottleneck)."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


def wrk_path() -> str:
    """The wrk binary, or a clear message saying how to get it."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench needs wrk (built with LuaJIT): apt-get install -y wrk")
    return found


def run_wrk(
    url: str,
    script: str,
    *,
    threads: int,
    connections: int,
    seconds: float,
    env: dict[str, str],
    cpu: int,
) -> WrkResult:
    """Run bench/lua/`script` against `url` for `seconds` on core `cpu`."""
    command = [
        "taskset",
        "-c",
        str(cpu),
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_DIR / script),
        url,
    ]
    # wrk is our only child that ends during the run (taskset execs it), so the growth of
    # RUSAGE_CHILDREN is exactly wrk's CPU time.
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - started
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}\n{done.stdout}")
    raw: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    latency = {key: value / 1000 for key, value in raw.pop("latency_us").items()}
    return WrkResult(
        requests=int(raw.pop("requests")),
        seconds=raw.pop("duration_us") / 1e6,
        latency_ms=latency,
        answers={key: int(n) for key, n in raw.pop("answers").items()},
        socket_errors={k: int(v) for k, v in raw.pop("errors").items() if k != "status"},
        cpu_seconds=(usage_after.ru_utime + usage_after.ru_stime)
        - (usage_before.ru_utime + usage_before.ru_stime),
        wall_seconds=wall,
        extra=raw,
    )
