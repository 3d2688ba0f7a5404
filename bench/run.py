"""Measure what users feel against real `authserver serve` processes, before and after.

Scenarios (`--scenario`, default all): device authorizations/s, pending polls/s (at
--connections and at --p99-connections), whole QR logins/s through the mobile API (one
signed-in phone per load thread), and resource checks/s (GET /api/v1/me). Backends
(`--backend`, default both): the embedded default (SQLite, no Redis) and Redis + PostgreSQL.

The server is pinned to core 0 with taskset, wrk to core 1, so requests/s is per core. CPU per
op is the server's process tree's utime+stime from /proc across the run, divided by ops.

`--baseline REF` also checks REF out into a temporary git worktree with its own venv and
measures both builds interleaved in one invocation: each scenario on A then B, the next round
B then A, and so on.

    python -m bench                                  # this checkout, both backends
    python -m bench --baseline main --repeat 3       # main vs this checkout, side by side
    python -m bench --scenario logins --backend redis --seconds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench import builds, scenarios
from bench.ceiling import CeilingRow, measure_ceiling
from bench.loadgen import run_wrk, wrk_path
from bench.measure import Measurement, measure, wait_for_quiet
from bench.results import Results
from bench.servers import Backend, Build, Server


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--baseline", metavar="GIT_REF", help="also measure this ref, interleaved")
    p.add_argument(
        "--keep-baseline", action="store_true", help="keep its worktree and venv for next time"
    )
    p.add_argument("--backend", choices=["embedded", "redis", "both"], default="both")
    p.add_argument(
        "--scenario", action="append", choices=scenarios.ALL, help="repeatable; default: all"
    )
    p.add_argument("--seconds", type=float, default=10.0, help="per measured run")
    p.add_argument("--repeat", type=int, default=2, help="rounds of every scenario and build")
    p.add_argument("--connections", type=int, default=8, help="for all but logins and the p99 run")
    p.add_argument("--p99-connections", type=int, default=32)
    p.add_argument(
        "--poll-pool",
        type=int,
        default=12000,
        help="pending device codes polled round-robin (each once per pool/rate seconds)",
    )
    p.add_argument("--phones", type=int, default=8, help="concurrent logins: phones = wrk threads")
    p.add_argument("--workers", type=int, default=1, help="`serve --workers` (Redis only if > 1)")
    p.add_argument("--threads", type=int, default=32, help="`serve --threads`")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of logins before measuring")
    p.add_argument(
        "--quiet-below",
        type=float,
        default=0.2,
        help="before each run, wait until other processes keep the server's core less busy "
        "than this share (0-1)",
    )
    p.add_argument("--quiet-wait", type=float, default=15.0, help="but no longer than this, s")
    p.add_argument("--ceiling-seconds", type=float, default=3.0, help="0: skip the wrk ceiling")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--json", type=Path, help="save the whole run here")
    p.add_argument("--render", type=Path, metavar="JSON", help="only print a saved run's tables")
    return p


def _machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    python = platform.python_version()
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, Python {python}"


def _progress(m: Measurement) -> None:
    p = m.latency_ms
    print(
        f"  round {m.round} {m.backend:8} {m.scenario:22} {m.build:28} "
        f"{m.ops_per_s:8.1f}/s p50 {p.get('p50', 0):6.1f} ms p99 {p.get('p99', 0):6.1f} ms "
        f"cpu {m.server_cpu_ms_per_op:6.2f} ms/op server {100 * m.server_core_share:3.0f}% "
        f"others {100 * (m.server_core_others_share + m.server_core_steal_share):3.0f}% "
        f"wrk {100 * m.loadgen_core_share:3.0f}% waited {m.waited_for_quiet_s:.0f} s "
        f"{dict(m.answers)}",
        file=sys.stderr,
        flush=True,
    )


def _warm_up(server: Server, seconds: float, phones: int, load_cpu: int) -> None:
    """Not measured: logins through every cold path (connection pools, caches, imports)."""
    if seconds <= 0:
        return
    logins = scenarios.build([scenarios.LOGINS], connections=1, p99_connections=1, phones=phones)[0]
    env = scenarios.prepare(logins, server, seconds=seconds, cpu=load_cpu, poll_pool=0)
    run_wrk(
        server.url,
        logins.script,
        threads=logins.threads,
        connections=logins.connections,
        seconds=seconds,
        env=env,
        cpu=load_cpu,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.render:
        print(Results.load(args.render).render(), end="")
        return 0
    wrk_path()
    os.sched_setaffinity(0, {args.load_cpu})  # this orchestrator stays off the server's core
    chosen = scenarios.build(
        args.scenario or list(scenarios.ALL),
        connections=args.connections,
        p99_connections=args.p99_connections,
        phones=args.phones,
    )
    backends = [Backend(b) for b in ("embedded", "redis") if args.backend in (b, "both")]
    started = datetime.now(UTC)
    wrk_version = subprocess.run(
        [wrk_path(), "-v"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]

    ceiling: list[CeilingRow] = []
    if args.ceiling_seconds > 0:
        print("load generator ceiling (wrk against bench/stub.py) ...", file=sys.stderr)
        ceiling = measure_ceiling(
            chosen,
            seconds=args.ceiling_seconds,
            server_cpu=args.server_cpu,
            load_cpu=args.load_cpu,
            phones=args.phones,
        )

    measurements: list[Measurement] = []
    with ExitStack() as stack:
        build_list: list[Build] = []
        if args.baseline:
            build_list.append(
                stack.enter_context(builds.baseline(args.baseline, keep=args.keep_baseline))
            )
        build_list.append(builds.this_checkout())
        for backend in backends:
            with ExitStack() as servers_stack:
                print(f"starting {len(build_list)} server(s) on {backend} ...", file=sys.stderr)
                servers = [
                    servers_stack.enter_context(
                        Server(
                            build,
                            backend,
                            workers=args.workers,
                            threads=args.threads,
                            phones=args.phones,
                            cpu=args.server_cpu,
                        )
                    )
                    for build in build_list
                ]
                for server in servers:
                    _warm_up(server, args.warmup, args.phones, args.load_cpu)
                # Interleaved: every scenario runs on A and on B back to back, round after
                # round, so slow drift of a shared, noisy machine lands on both builds alike;
                # the order flips every round (A B, B A, ...) so neither always goes first.
                for round_no in range(1, args.repeat + 1):
                    in_order = servers if round_no % 2 else servers[::-1]
                    for scenario in chosen:
                        for server in in_order:
                            waited = wait_for_quiet(
                                args.server_cpu,
                                busy_below=args.quiet_below,
                                max_wait=args.quiet_wait,
                            )
                            m = measure(
                                server,
                                scenario,
                                seconds=args.seconds,
                                round_no=round_no,
                                load_cpu=args.load_cpu,
                                poll_pool=args.poll_pool,
                                waited_for_quiet=waited,
                            )
                            _progress(m)
                            measurements.append(m)

    results = Results(
        header=[
            f"# bench run {started:%Y-%m-%d %H:%M} UTC",
            "",
            f"- machine: {_machine()}; {wrk_version}",
            f"- server pinned to core {args.server_cpu} (`serve --workers {args.workers} "
            f"--threads {args.threads}`), wrk to core {args.load_cpu}; {args.seconds:g} s per "
            f"run, {args.repeat} rounds, {args.connections} connections "
            f"({args.p99_connections} for the p99 run), {args.phones} phones; each run waited "
            f"up to {args.quiet_wait:g} s for others to keep core {args.server_cpu} below "
            f"{100 * args.quiet_below:g}% busy",
            f"- builds: {', '.join(b.label for b in build_list)}",
        ],
        scenarios=chosen,
        builds=[b.label for b in build_list],
        ceiling=ceiling,
        measurements=measurements,
    )
    if args.json:
        results.save(args.json)
    print(results.render(), end="")
    return 0
