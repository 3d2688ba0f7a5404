"""The scenarios: which wrk script, how many connections, what each needs from its server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import httpclient
from bench.loadgen import run_wrk
from bench.servers import POLL_INTERVAL, Server

DEVICE_AUTHORIZATIONS = "device_authorizations"
PENDING_POLLS = "pending_polls"
PENDING_POLLS_32 = "pending_polls_32"
LOGINS = "logins"
RESOURCE = "resource"
ALL = (DEVICE_AUTHORIZATIONS, PENDING_POLLS, PENDING_POLLS_32, LOGINS, RESOURCE)

RESOURCE_TOKENS = 20
# "email" only, as bench/polling.py --resource: GET /api/v1/me then reads no user row, so
# what is measured is the token check itself (signature, claims, deny-list).
RESOURCE_SCOPE = "email"
POOL_FILE = "pending-codes.txt"


@dataclass(frozen=True)
class Scenario:
    """One measured thing. `unit` is what ops/s counts: requests, or whole logins."""

    name: str
    title: str
    script: str
    connections: int
    threads: int
    unit: str = "requests"


def build(
    names: list[str], *, connections: int, p99_connections: int, phones: int
) -> list[Scenario]:
    """The scenarios named, in the order that lets polls use the codes just created."""
    table = {
        DEVICE_AUTHORIZATIONS: Scenario(
            DEVICE_AUTHORIZATIONS,
            "device authorizations/s",
            "device_authorization.lua",
            connections,
            min(2, connections),
        ),
        PENDING_POLLS: Scenario(
            PENDING_POLLS, "pending polls/s", "pending_poll.lua", connections, min(2, connections)
        ),
        PENDING_POLLS_32: Scenario(
            PENDING_POLLS_32,
            f"pending polls/s at {p99_connections} connections",
            "pending_poll.lua",
            p99_connections,
            min(2, p99_connections),
        ),
        # One phone per wrk thread, one connection each: a thread takes a login's steps in turn.
        LOGINS: Scenario(LOGINS, "whole QR logins/s", "login.lua", phones, phones, unit="logins"),
        RESOURCE: Scenario(
            RESOURCE,
            "resource checks/s (GET /api/v1/me)",
            "resource.lua",
            connections,
            min(2, connections),
        ),
    }
    return [table[name] for name in ALL if name in names]


def prepare(
    scenario: Scenario, server: Server, *, seconds: float, cpu: int, poll_pool: int
) -> dict[str, str]:
    """What the scenario's script needs (BENCH_* variables), made outside the measurement."""
    env = {
        "BENCH_CLIENT_ID": server.client_id,
        "BENCH_THREADS": str(scenario.threads),
        "BENCH_INTERVAL": str(POLL_INTERVAL),
    }
    if scenario.name == DEVICE_AUTHORIZATIONS:
        env["BENCH_CODES_OUT"] = str(server.workdir / "new-codes.txt")
    elif scenario.name in (PENDING_POLLS, PENDING_POLLS_32):
        _fill_pool(server, poll_pool, seconds=seconds, cpu=cpu)
        env["BENCH_CODES"] = str(server.workdir / POOL_FILE)
    elif scenario.name == LOGINS:
        env["BENCH_PHONES"] = str(server.phones_file)
    elif scenario.name == RESOURCE:
        phone = server.phones[0]
        tokens = httpclient.approved_access_tokens(
            server.port,
            server.client_id,
            phone.device_id,
            phone.device_token,
            RESOURCE_TOKENS,
            RESOURCE_SCOPE,
        )
        path = server.workdir / "tokens.txt"
        path.write_text("".join(f"{t}\n" for t in tokens))
        env["BENCH_TOKENS"] = str(path)
    return env


def collect_codes(scenario: Scenario, server: Server) -> None:
    """After a device-authorization run: its codes join the server's pool of pending codes."""
    if scenario.name == DEVICE_AUTHORIZATIONS:
        _append_new_codes(server)


def pool_size(server: Server) -> int:
    path = server.workdir / POOL_FILE
    return sum(1 for _ in path.open()) if path.exists() else 0


def _append_new_codes(server: Server) -> None:
    new = server.workdir / "new-codes.txt"
    if new.exists():
        with (server.workdir / POOL_FILE).open("a") as pool:
            pool.write(new.read_text())
        new.unlink()


def _fill_pool(server: Server, size: int, *, seconds: float, cpu: int) -> None:
    """Not measured: device authorizations until the pool holds `size` pending codes.

    Polls go round the pool, so each code is polled once per (pool / polls per second)
    seconds: the pool must be large enough for that to stay above the interval, or the
    answers turn into slow_down (the answer mix and min_revisit_s show it). Nobody approves
    these codes and they live an hour, so the pool only grows over a run.
    """
    fill = build([DEVICE_AUTHORIZATIONS], connections=8, p99_connections=32, phones=1)[0]
    for _ in range(100):
        if pool_size(server) >= size:
            return
        run_wrk(
            server.url,
            fill.script,
            threads=fill.threads,
            connections=fill.connections,
            seconds=seconds,
            env={
                "BENCH_CLIENT_ID": server.client_id,
                "BENCH_CODES_OUT": str(server.workdir / "new-codes.txt"),
            },
            cpu=cpu,
        )
        _append_new_codes(server)
    raise RuntimeError(f"could not make {size} device codes: {pool_size(server)}")


def stub_inputs(directory: Path, phones: int) -> dict[str, str]:
    """Files of the right shape for running every script against bench/stub.py."""
    codes = directory / "stub-codes.txt"
    codes.write_text("".join(f"stub-device-code-{n:08d}\n" for n in range(20000)))
    phone_file = directory / "stub-phones.txt"
    phone_file.write_text("".join(f"phone-{n} stub-device-token-{n}\n" for n in range(phones)))
    tokens = directory / "stub-tokens.txt"
    tokens.write_text("".join(f"stub.access.token{n}\n" for n in range(RESOURCE_TOKENS)))
    return {
        "BENCH_CLIENT_ID": "stub-client",
        "BENCH_INTERVAL": str(POLL_INTERVAL),
        "BENCH_CODES": str(codes),
        "BENCH_PHONES": str(phone_file),
        "BENCH_TOKENS": str(tokens),
    }
