"""Measure what callers see while PostgreSQL or Redis hangs, against a real `authserver serve`.

Usage (from the repository root, with the shared Redis and PostgreSQL running):
    python bench/hangs.py                    # default bounds, PostgreSQL then Redis hangs 8 s
    python bench/hangs.py --seconds 20 --sql-clients 40
    AUTHSERVER_SQL_STATEMENT_TIMEOUT=1 python bench/hangs.py   # any setting via the environment

The server reaches each dependency through a pausable TCP proxy (tests/contract/
pausable_proxy.py); pausing it makes the dependency hang as a SIGSTOPped one does, and the
shared servers are never touched. While one hangs, `--sql-clients` callers loop on device
authorization (needs SQL and Redis) and one caller loops on the SQL-free requests: a pending
token poll, a status check and a resource check. Prints JSON: per request kind, the answers'
statuses and latency percentiles, the slowest answer, and how long after the hang ended the
first device authorization succeeded again and when the last caller got its answer.
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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.contract.pausable_proxy import PausableProxy

BIN = Path(sys.executable).parent
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/12"
PASSWORD = "bench password 1"
HTTP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Caller:
    """One HTTP request per connection (Connection: close), timed."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, **headers: str
    ) -> tuple[int, dict[str, object], float]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        body = urllib.parse.urlencode(form) if form is not None else None
        sent = {"Connection": "close", **headers}
        if form is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        start = time.monotonic()
        try:
            conn.request(method, path, body, sent)
            response = conn.getresponse()
            raw = response.read()
            status = response.status
        except OSError:
            return 0, {"error": "no answer"}, time.monotonic() - start
        finally:
            conn.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {}
        return status, answer if isinstance(answer, dict) else {}, time.monotonic() - start

    def json(self, path: str, body: dict[str, object], **headers: str) -> dict[str, object]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        conn.request(
            "POST", path, json.dumps(body), {"Content-Type": "application/json", **headers}
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
        assert response.status in (200, 201), answer
        return dict(answer)


def summary(samples: list[tuple[int, dict[str, object], float]]) -> dict[str, object]:
    if not samples:
        return {"requests": 0}
    latencies = sorted(seconds for _, _, seconds in samples)
    answers: dict[str, int] = {}
    for status, body, _ in samples:
        key = f"{status} {body.get('error', '')}".strip()
        answers[key] = answers.get(key, 0) + 1
    return {
        "requests": len(samples),
        "answers": answers,
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
        "max_s": round(latencies[-1], 3),
    }


def hang(
    proxy: PausableProxy,
    seconds: float,
    sql_clients: int,
    authorize: Callable[[], tuple[int, dict[str, object], float]],
    sql_free: dict[str, Callable[[], tuple[int, dict[str, object], float]]],
) -> dict[str, object]:
    """Pause `proxy` for `seconds` under load; what every kind of request saw, and recovery."""
    samples: dict[str, list[tuple[int, dict[str, object], float]]] = {"authorize": []}
    samples.update({name: [] for name in sql_free})
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def loop(name: str, request: Callable[[], tuple[int, dict[str, object], float]]) -> None:
        while time.monotonic() < stop_at:
            answer = request()
            with lock:
                samples[name].append(answer)
            if answer[0] != 200 and answer[2] < 0.05:
                time.sleep(0.05)  # a client that was refused at once does not spin

    def free_loop() -> None:
        while time.monotonic() < stop_at:
            for name, request in sql_free.items():
                answer = request()
                with lock:
                    samples[name].append(answer)

    proxy.pause()
    # The hang ends on time whatever the callers are waiting for.
    resume = threading.Timer(seconds, proxy.restore)
    resume.start()
    threads = [
        threading.Thread(target=loop, args=("authorize", authorize)) for _ in range(sql_clients)
    ]
    threads.append(threading.Thread(target=free_loop))
    for thread in threads:
        thread.start()
    resume.join()
    resumed = time.monotonic()
    while authorize()[0] != 200:
        time.sleep(0.05)
    recovered = time.monotonic()
    for thread in threads:
        thread.join()
    callers_done = time.monotonic()
    result: dict[str, object] = {name: summary(found) for name, found in samples.items()}
    result["first_authorization_after_resume_s"] = round(recovered - resumed, 3)
    result["last_answer_after_resume_s"] = round(callers_done - resumed, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0, help="how long each hang lasts")
    parser.add_argument("--sql-clients", type=int, default=40, help="callers needing SQL")
    parser.add_argument("--threads", type=int, default=32, help="serve --threads")
    args = parser.parse_args()

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    pg_proxy = PausableProxy.in_front_of(POSTGRES)
    redis_proxy = PausableProxy.in_front_of(REDIS)
    env = {
        **os.environ,
        "AUTHSERVER_DATABASE_URL": pg_proxy.url(POSTGRES) + f"?options=-csearch_path%3D{schema}",
        "AUTHSERVER_REDIS_URL": redis_proxy.url(REDIS),
        "AUTHSERVER_REDIS_PREFIX": f"{schema}:",
        "AUTHSERVER_DEVICE_AUTHORIZATIONS_PER_MINUTE": "1000000",
        "AUTHSERVER_SCRYPT_P": "1",
    }
    workdir = tempfile.mkdtemp(prefix="authserver-hangs-")
    port = free_port()
    server = None
    try:
        subprocess.run(
            [BIN / "authserver", "db", "upgrade"], env=env, check=True, capture_output=True
        )
        created = subprocess.run(
            [BIN / "authserver", "clients", "create", "--name", "bench"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        client_id = json.loads(created.stdout)["client_id"]
        subprocess.run(
            [BIN / "authserver", "users", "create", "bench", "--password-stdin"],
            env=env,
            input=PASSWORD + "\n",
            check=True,
            capture_output=True,
            text=True,
        )
        log = open(Path(workdir) / "server.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            [BIN / "authserver", "serve", "--port", str(port), "--threads", str(args.threads)],
            env=env,
            stdout=log,
            stderr=log,
        )
        caller = Caller(port)
        deadline = time.monotonic() + 20
        while caller.request("GET", "/oauth/jwks")[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.1)

        def authorize() -> tuple[int, dict[str, object], float]:
            form = {"client_id": client_id, "scope": "email"}
            return caller.request("POST", "/oauth/device_authorization", form)

        pending = authorize()[1]
        approved = authorize()[1]
        phone = {"X-Device-Id": "bench-phone"}
        signed_in = caller.json(
            "/mobile/v1/sessions",
            {
                "username": "bench",
                "password": PASSWORD,
                "device": {"id": "bench-phone", "name": "Bench", "platform": "ios"},
            },
        )
        phone["Authorization"] = f"Bearer {signed_in['device_token']}"
        screen = caller.json("/mobile/v1/scan", {"user_code": approved["user_code"]}, **phone)
        caller.json("/mobile/v1/confirm", {"confirm_token": screen["confirm_token"]}, **phone)
        form = {"grant_type": GRANT, "device_code": str(approved["device_code"])}
        status, tokens, _ = caller.request("POST", "/oauth/token", {**form, "client_id": client_id})
        assert status == 200, tokens
        bearer = f"Bearer {tokens['access_token']}"
        assert caller.request("GET", "/api/v1/me", Authorization=bearer)[0] == 200

        poll_form = {"grant_type": GRANT, "device_code": str(pending["device_code"])}
        status_form = {"device_code": str(pending["device_code"]), "client_id": client_id}
        sql_free = {
            "pending_poll": lambda: caller.request(
                "POST", "/oauth/token", {**poll_form, "client_id": client_id}
            ),
            "status": lambda: caller.request("POST", "/oauth/device_status", status_form),
            "resource": lambda: caller.request("GET", "/api/v1/me", Authorization=bearer),
        }
        settings = {
            name: value for name, value in os.environ.items() if name.startswith("AUTHSERVER_")
        }
        result = {
            "serve": f"--workers 1 --threads {args.threads}",
            "settings": settings or "defaults",
            "hang_seconds": args.seconds,
            "sql_clients": args.sql_clients,
            "postgres_hangs": hang(pg_proxy, args.seconds, args.sql_clients, authorize, sql_free),
            "redis_hangs": hang(redis_proxy, args.seconds, args.sql_clients, authorize, sql_free),
        }
        print(json.dumps(result, indent=2))
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
        pg_proxy.close()
        redis_proxy.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
