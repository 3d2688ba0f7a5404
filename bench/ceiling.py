"""How fast the load generator itself goes: every scenario script against bench/stub.py.

The stub runs on the server's core and answers at once; wrk runs as in the real runs. wrk's
CPU time per request then gives the rate it could sustain on its own core (1 / that), which
must stay well above every number reported against the real server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import procstat
from bench.loadgen import run_wrk
from bench.scenarios import Scenario, stub_inputs
from bench.servers import free_port


@dataclass(frozen=True)
class CeilingRow:
    title: str
    connections: int
    requests_per_s: float
    ops_per_s: float
    wrk_core_share: float
    wrk_us_per_request: float
    wrk_capacity: float  # requests/s wrk could send on its core: 1e6 / wrk_us_per_request
    stub_core_share: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_ceiling(
    scenarios: list[Scenario], *, seconds: float, server_cpu: int, load_cpu: int, phones: int
) -> list[CeilingRow]:
    """Run each scenario's script for `seconds` against the stub."""
    port = free_port()
    stub = subprocess.Popen(
        ["taskset", "-c", str(server_cpu), sys.executable, "-m", "bench.stub", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
    )
    rows = []
    try:
        _wait_for(port)
        with tempfile.TemporaryDirectory(prefix="authserver-bench-stub-") as directory:
            env = stub_inputs(Path(directory), phones)
            for s in scenarios:
                stub_before = procstat.tree_cpu_seconds(stub.pid)
                result = run_wrk(
                    f"http://127.0.0.1:{port}",
                    s.script,
                    threads=s.threads,
                    connections=s.connections,
                    seconds=seconds,
                    env={**env, "BENCH_THREADS": str(s.threads)},
                    cpu=load_cpu,
                )
                stub_cpu = procstat.tree_cpu_seconds(stub.pid) - stub_before
                ops = int(result.extra.get("logins", result.requests))
                us_per_request = 1e6 * result.cpu_seconds / max(result.requests, 1)
                rows.append(
                    CeilingRow(
                        title=s.title,
                        connections=s.connections,
                        requests_per_s=result.requests / result.seconds,
                        ops_per_s=ops / result.seconds,
                        wrk_core_share=result.core_share,
                        wrk_us_per_request=us_per_request,
                        wrk_capacity=1e6 / us_per_request,
                        stub_core_share=stub_cpu / result.wall_seconds,
                    )
                )
    finally:
        stub.terminate()
        stub.wait(10)
    return rows


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("the stub did not start") from None
            time.sleep(0.05)
