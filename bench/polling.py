"""Benchmark the hot paths against a real `authserver serve`: token polls, or resource checks.

Usage (from the repository root, after `pip install -e .`):
    python bench/polling.py                      # embedded store + SQLite, 1 worker
    python bench/polling.py --redis --workers 2  # Redis + PostgreSQL, 2 workers
    python bench/polling.py --resource [--redis --workers 2]  # GET /api/v1/me instead

Starts the server in a temporary directory, creates flows, then polls the token endpoint (or,
with --resource, checks approved access tokens at GET /api/v1/me, as a resource server's
requests would) with keep-alive connections from several threads for a fixed time and prints
JSON: requests per second, latency percentiles, and (with --redis) Redis commands per request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Commands the poll script runs inside Redis: not round trips of their own.
_INSIDE_SCRIPT = {
    "exists",
    "hmget",
    "hget",
    "hset",
    "hincrby",
    "hgetall",
    "publish",
    "config|resetstat",
    "info",
}
BIN = Path(sys.executable).parent
BENCH_PASSWORD = "bench password 1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(conn: http.client.HTTPConnection, path: str, params: dict[str, str]) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(params)
    conn.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    return response.status, response.read()


def post_json(
    conn: http.client.HTTPConnection, path: str, body: dict[str, object], headers: dict[str, str]
) -> dict[str, object]:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status in (200, 201), answer
    return dict(answer)


def approved_access_tokens(
    conn: http.client.HTTPConnection, client_id: str, codes: list[dict[str, str]], count: int
) -> list[str]:
    """Approve `count` flows as the bench user's phone and redeem them: access tokens."""
    device = {"Authorization": "", "X-Device-Id": "bench-phone"}
    signed_in = post_json(
        conn,
        "/mobile/v1/sessions",
        {
            "username": "bench",
            "password": BENCH_PASSWORD,
            "device": {"id": "bench-phone", "name": "Bench", "platform": "ios"},
        },
        {},
    )
    device["Authorization"] = f"Bearer {signed_in['device_token']}"
    tokens = []
    for started in codes[:count]:
        screen = post_json(conn, "/mobile/v1/scan", {"user_code": started["user_code"]}, device)
        post_json(conn, "/mobile/v1/confirm", {"confirm_token": screen["confirm_token"]}, device)
        status, body = post(
            conn,
            "/oauth/token",
            {"grant_type": GRANT, "device_code": started["device_code"], "client_id": client_id},
        )
        assert status == 200, body
        tokens.append(json.loads(body)["access_token"])
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--redis", action="store_true", help="Redis + PostgreSQL instead of embedded"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--flows", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--resource", action="store_true", help="GET /api/v1/me with access tokens instead"
    )
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="authserver-bench-")
    env = {
        **os.environ,
        "AUTHSERVER_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        # The set-up creates --flows codes from one IP at once; lift the per-minute limit.
        "AUTHSERVER_DEVICE_AUTHORIZATIONS_PER_MINUTE": "100000",
    }
    schema = None
    if args.redis:
        import redis
        import sqlalchemy as sa

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        env["AUTHSERVER_DATABASE_URL"] = (
            f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        )
        env["AUTHSERVER_REDIS_URL"] = "redis://127.0.0.1:6379/12"
        env["AUTHSERVER_REDIS_PREFIX"] = f"{schema}:"
    port = free_port()
    subprocess.run([BIN / "authserver", "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [BIN / "authserver", "clients", "create", "--name", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    client_id = json.loads(created.stdout)["client_id"]
    if args.resource:
        subprocess.run(
            [BIN / "authserver", "users", "create", "bench", "--password-stdin"],
            env={**env, "AUTHSERVER_SCRYPT_P": "1"},
            input=BENCH_PASSWORD + "\n",
            check=True,
            capture_output=True,
            text=True,
        )
    server = subprocess.Popen(
        [BIN / "authserver", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start") from None
                time.sleep(0.1)
        setup = http.client.HTTPConnection("127.0.0.1", port)
        started_flows = []
        for _ in range(args.flows):
            # The "email" scope only: /api/v1/me then reads no user row, so what is measured
            # is the token check itself (signature, claims, deny-list).
            status, body = post(
                setup, "/oauth/device_authorization", {"client_id": client_id, "scope": "email"}
            )
            assert status == 200, body
            started_flows.append(json.loads(body))
        codes = [started["device_code"] for started in started_flows]
        access_tokens = (
            approved_access_tokens(setup, client_id, started_flows, 20) if args.resource else []
        )

        latencies: list[float] = []
        answers: dict[str, int] = {}
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def poller(offset: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            mine: list[float] = []
            seen: dict[str, int] = {}
            i = offset
            while time.monotonic() < stop_at:
                code = codes[i % len(codes)]
                i += args.threads
                started = time.perf_counter()
                if args.resource:
                    token = access_tokens[i % len(access_tokens)]
                    conn.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
                    body = conn.getresponse().read()
                else:
                    _, body = post(
                        conn,
                        "/oauth/token",
                        {"grant_type": GRANT, "device_code": code, "client_id": client_id},
                    )
                mine.append(time.perf_counter() - started)
                error = json.loads(body).get("error", "ok")
                seen[error] = seen.get(error, 0) + 1
            with lock:
                latencies.extend(mine)
                for key, count in seen.items():
                    answers[key] = answers.get(key, 0) + count

        before = None
        if args.redis:
            r = redis.Redis.from_url(env["AUTHSERVER_REDIS_URL"])
            r.config_resetstat()
            before = r.info("commandstats")
        threads = [threading.Thread(target=poller, args=(n,)) for n in range(args.threads)]
        begin = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - begin
        result: dict[str, object] = {
            "endpoint": "GET /api/v1/me" if args.resource else "POST /oauth/token (pending)",
            "backend": "redis+postgres" if args.redis else "embedded+sqlite",
            "workers": args.workers,
            "client_threads": args.threads,
            "polls": len(latencies),
            "answers": answers,
            "polls_per_second": round(len(latencies) / elapsed, 1),
            "latency_ms": {
                "p50": round(statistics.median(latencies) * 1000, 2),
                "p95": round(statistics.quantiles(latencies, n=20)[18] * 1000, 2),
                "p99": round(statistics.quantiles(latencies, n=100)[98] * 1000, 2),
            },
        }
        if before is not None:
            stats = r.info("commandstats")
            # Round trips are the top-level commands a poll sends: EVALSHA, whose script runs
            # its own commands inside Redis (counted separately). Any other client of this
            # Redis server is counted too, so run it on a quiet one.
            calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
            result["redis_evalsha_per_poll"] = round(calls.get("evalsha", 0) / len(latencies), 3)
            result["redis_round_trips_per_poll"] = round(
                sum(n for name, n in calls.items() if name not in _INSIDE_SCRIPT) / len(latencies),
                3,
            )
        print(json.dumps(result, indent=2))
    finally:
        server.terminate()
        server.wait(10)
        if schema:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
