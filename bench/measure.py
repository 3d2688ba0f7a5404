"""One measured run: wrk on the load core, the server's CPU read from /proc around it."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from bench import procstat
from bench.loadgen import WrkResult, run_wrk
from bench.scenarios import Scenario, collect_codes, prepare
from bench.servers import REDIS_URL, Backend, Server


@dataclass(frozen=True)
class Measurement:
    """What users feel (ops/s, latency) and what it cost (CPU per op) in one run."""

    scenario: str
    backend: str
    build: str
    round: int
    connections: int
    ops: int  # requests, or whole logins
    seconds: float
    ops_per_s: float
    requests_per_s: float
    latency_ms: dict[str, float]  # of an op: a request, or a whole login
    request_latency_ms: dict[str, float]
    server_cpu_ms_per_op: float  # the server's process tree (one core)
    server_core_share: float  # its CPU time / wall time: 1.0 = its core was saturated
    server_core_others_share: float  # everything else that ran on the server's core
    server_core_steal_share: float  # the hypervisor's steal time on that core
    database_cpu_ms_per_op: float | None  # PostgreSQL backends of this server
    redis_cpu_ms_per_op: float | None  # the whole shared Redis server, others included
    loadgen_core_share: float  # wrk's CPU time / wall time on its own core
    answers: dict[str, int]
    socket_errors: dict[str, int]
    waited_for_quiet_s: float = 0.0  # how long the run waited for the server core to calm down
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 / p90 / p99 / max of samples (nearest rank, as wrk reports its own)."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def _redis_cpu() -> float:
    r = redis.Redis.from_url(REDIS_URL)
    try:
        info = r.info("cpu")
    finally:
        r.close()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def wait_for_quiet(core: int, *, busy_below: float, max_wait: float) -> float:
    """Wait until others keep `core` busy less than `busy_below` for a second; the wait.

    The machine is shared: a test suite of someone else that lands on the server's core takes
    CPU from the server, so a run waits (at most `max_wait` seconds) for a quieter moment.
    Our own servers are idle between runs.
    """
    started = time.monotonic()
    while True:
        before = procstat.core_seconds(core)
        time.sleep(1.0)
        busy, steal = (a - b for a, b in zip(procstat.core_seconds(core), before, strict=True))
        if busy + steal < busy_below or time.monotonic() - started >= max_wait:
            return time.monotonic() - started


def measure(
    server: Server,
    scenario: Scenario,
    *,
    seconds: float,
    round_no: int,
    load_cpu: int,
    poll_pool: int,
    waited_for_quiet: float = 0.0,
) -> Measurement:
    """Run `scenario` against `server` for `seconds`; CPU is read just before and after."""
    env = prepare(scenario, server, seconds=seconds, cpu=load_cpu, poll_pool=poll_pool)
    uses_redis = server.backend is Backend.REDIS
    server_before = server.cpu_seconds()
    core_before = procstat.core_seconds(server.cpu)
    database_before = server.database_cpu()
    redis_before = _redis_cpu() if uses_redis else 0.0
    result: WrkResult = run_wrk(
        server.url,
        scenario.script,
        threads=scenario.threads,
        connections=scenario.connections,
        seconds=seconds,
        env=env,
        cpu=load_cpu,
    )
    server_cpu = server.cpu_seconds() - server_before
    core_busy, core_steal = (
        after - before
        for after, before in zip(procstat.core_seconds(server.cpu), core_before, strict=True)
    )
    database_cpu = procstat.cpu_delta(database_before, server.database_cpu())
    redis_cpu = _redis_cpu() - redis_before if uses_redis else 0.0
    collect_codes(scenario, server)

    extra = dict(result.extra)
    if scenario.unit == "logins":
        login_ms = [float(ms) for ms in extra.pop("login_ms", [])]
        ops = int(extra.pop("logins", len(login_ms)))
        latency = percentiles(login_ms)
    else:
        ops = result.requests
        latency = result.latency_ms
    per_op = 1000 / ops if ops else float("nan")
    return Measurement(
        scenario=scenario.name,
        backend=server.backend.value,
        build=server.build.label,
        round=round_no,
        connections=scenario.connections,
        ops=ops,
        seconds=result.seconds,
        ops_per_s=ops / result.seconds,
        requests_per_s=result.requests / result.seconds,
        latency_ms=latency,
        request_latency_ms=result.latency_ms,
        server_cpu_ms_per_op=server_cpu * per_op,
        server_core_share=server_cpu / result.wall_seconds,
        server_core_others_share=max(0.0, core_busy - server_cpu) / result.wall_seconds,
        server_core_steal_share=core_steal / result.wall_seconds,
        database_cpu_ms_per_op=database_cpu * per_op if uses_redis else None,
        redis_cpu_ms_per_op=redis_cpu * per_op if uses_redis else None,
        loadgen_core_share=result.core_share,
        answers=result.answers,
        socket_errors={k: v for k, v in result.socket_errors.items() if v},
        waited_for_quiet_s=round(waited_for_quiet, 1),
        extra=extra,
    )
