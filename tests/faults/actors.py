"""The PC, the phone and a resource server as plain HTTP callers that time every answer.

Each call opens a fresh connection (`Connection: close`), so with two server processes either
may answer, and records how long the answer took. A `Login` keeps every token-endpoint answer
of one device code, so a test can say "never two token responses" and "ended in tokens or a
clear terminal error".
"""

from __future__ import annotations

import enum
import http.client
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from tests.faults.servers import DEPENDENCY_TIMEOUT, FaultServer

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# The longest a caller waits for any answer: a server that takes longer has hung, and the
# test says so instead of waiting with it (just above FAULT_ANSWER_BOUND).
HTTP_TIMEOUT = 3.5 * DEPENDENCY_TIMEOUT + 1
# An answer during a fault: one dependency timeout (1 s) plus room for a noisy 2-core machine.
# The faults last longer than this, so an answer within it did not wait for the fault to end.
FAULT_ANSWER_BOUND = 3.5 * DEPENDENCY_TIMEOUT
# SQL-free answers (pending poll, status channel, resource check) while PostgreSQL hangs:
# below one SQL timeout, so they cannot have waited for SQL or for a thread that did.
FAST_BOUND = 0.8 * DEPENDENCY_TIMEOUT
TERMINAL_ERRORS = frozenset({"access_denied", "expired_token", "invalid_grant"})


@dataclass(frozen=True)
class Answer:
    """One HTTP answer (status None: no answer at all) and how long it took."""

    status: int | None
    body: Any
    headers: Mapping[str, str]  # case-insensitive
    seconds: float
    what: str = ""
    failure: str = ""  # why there was no answer

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None

    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def unavailable(self) -> bool:
        """Core-design's dependency failure: 503, RFC 6749 §5.2 `temporarily_unavailable`,
        a positive Retry-After in seconds, Cache-Control: no-store."""
        retry_after = self.headers.get("Retry-After", "")
        return (
            self.status == 503
            and self.error == "temporarily_unavailable"
            and retry_after.isdigit()
            and int(retry_after) > 0
            and "no-store" in self.headers.get("Cache-Control", "")
        )

    def __str__(self) -> str:
        shown = self.failure or f"{self.status} {self.error or ''}".strip()
        return f"{self.what}: {shown} in {self.seconds:.2f} s"


def call(
    method: str,
    url: str,
    *,
    what: str = "",
    timeout: float = HTTP_TIMEOUT,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Answer:
    """One request on a fresh connection, timed; a missing answer is an Answer too."""
    started = time.monotonic()
    try:
        response = requests.request(
            method,
            url,
            timeout=timeout,
            headers={"Connection": "close", **(headers or {})},
            allow_redirects=False,
            **kwargs,
        )
    except requests.RequestException as exc:
        return _noted(Answer(None, None, {}, time.monotonic() - started, what, type(exc).__name__))
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return _noted(
        Answer(
            response.status_code,
            body,
            CaseInsensitiveDict(response.headers),
            time.monotonic() - started,
            what,
        )
    )


_ANSWERS_FILE = os.environ.get("FAULT_ANSWERS", "")
_answers_lock = threading.Lock()


def _noted(answer: Answer) -> Answer:
    """With FAULT_ANSWERS=path, every answer is also a JSON line there, under its test's name:
    `python -m tests.faults.answers path` tabulates what each test's callers saw, and when."""
    if _ANSWERS_FILE:
        line = {
            "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
            "what": answer.what,
            "status": answer.status,
            "error": answer.error,
            "seconds": round(answer.seconds, 3),
        }
        with _answers_lock, open(_ANSWERS_FILE, "a") as out:
            out.write(json.dumps(line) + "\n")
    return answer


def concurrently(*calls: Callable[[], Answer]) -> list[Answer]:
    """Run the calls at once; their answers in the same order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(c) for c in calls]]


class Flood:
    """`callers` threads sending `action` again and again (`gap` s apart) until the block
    ends: steady traffic, like the PCs and phones of a real deployment during an outage."""

    def __init__(self, action: Callable[[], Answer], callers: int, gap: float = 0.2) -> None:
        self._action = action
        self._gap = gap
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(callers)]
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self.started = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = self._action()
            with self._lock:
                self.answers.append(answer)
            self._stop.wait(self._gap)

    def __enter__(self) -> Flood:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=HTTP_TIMEOUT + 1)


class Stage(enum.IntEnum):
    """How far a login has come before the fault."""

    PENDING = 1
    SCANNED = 2
    APPROVED = 3


@dataclass
class Login:
    """One device code, as the PC holds it, and every answer its token endpoint gave."""

    device_code: str
    user_code: str
    verification_uri_complete: str
    interval: int
    polls: list[Answer] = field(default_factory=list)
    confirm_token: str | None = None

    @property
    def token_responses(self) -> list[Answer]:
        return [poll for poll in self.polls if poll.status == 200]

    @property
    def tokens(self) -> dict[str, Any]:
        """The one token response (fails the test unless there is exactly one)."""
        assert len(self.token_responses) == 1, self.history()
        return self.token_responses[0].json()

    @property
    def outcome(self) -> str | None:
        """Either "tokens", a terminal error code, or None while the PC would keep polling."""
        if self.token_responses:
            return "tokens"
        last = self.polls[-1] if self.polls else None
        return last.error if last is not None and last.error in TERMINAL_ERRORS else None

    def history(self) -> str:
        return "; ".join(str(poll) for poll in self.polls)


class PC:
    """The PC side of RFC 8628 on one client."""

    def __init__(self, server: FaultServer, scope: str = "email") -> None:
        # "email" and not "profile": /api/v1/me then reads no user row, so it is SQL-free.
        self.server = server
        self.scope = scope

    def authorize(self) -> Answer:
        """RFC 8628 §3.1 device authorization request."""
        return call(
            "POST",
            f"{self.server.base_url}/oauth/device_authorization",
            data={"client_id": self.server.client_id, "scope": self.scope},
            what="device authorization",
        )

    def start(self) -> Login:
        answer = self.authorize()
        assert answer.status == 200, answer
        body = answer.json()
        return Login(
            body["device_code"],
            body["user_code"],
            body["verification_uri_complete"],
            int(body["interval"]),
        )

    def poll(self, login: Login, timeout: float = HTTP_TIMEOUT) -> Answer:
        """One RFC 8628 §3.4 token request; remembered in the login's history."""
        answer = call(
            "POST",
            f"{self.server.base_url}/oauth/token",
            data={
                "grant_type": DEVICE_CODE_GRANT,
                "device_code": login.device_code,
                "client_id": self.server.client_id,
            },
            what="token poll",
            timeout=timeout,
        )
        login.polls.append(answer)
        return answer

    def status(self, login: Login) -> Answer:
        """The non-standard status channel, answered at once (no long-poll)."""
        return call(
            "POST",
            f"{self.server.base_url}/oauth/device_status",
            data={"device_code": login.device_code, "client_id": self.server.client_id},
            what="status channel",
        )

    def poll_until_settled(self, login: Login, within: float) -> str:
        """Poll as RFC 8628 §3.5 says (every `interval` s, +5 after slow_down, on through 503
        and connection errors) until tokens or a terminal error; return which.

        A login polled before (e.g. during a fault) waits one interval first, as a PC would.
        """
        if login.outcome is not None:
            return login.outcome  # settled already: a PC stops polling
        deadline = time.monotonic() + within
        interval = float(login.interval)
        if login.polls:
            time.sleep(interval)
        while time.monotonic() < deadline:
            answer = self.poll(login)
            if login.outcome is not None:
                return login.outcome
            assert answer.status != 500, f"a 500 while polling: {login.history()}"
            if answer.error == "slow_down":
                interval += 5
            time.sleep(interval)
        raise AssertionError(f"not settled within {within} s: {login.history()}")

    def settle_all(self, logins: list[Login], within: float) -> list[str | BaseException]:
        """poll_until_settled for several logins at once (as several PCs would: their
        intervals overlap); each outcome, or what poll_until_settled raised."""
        with ThreadPoolExecutor(len(logins)) as pool:
            futures = [pool.submit(self.poll_until_settled, login, within) for login in logins]
            return [future.exception() or future.result() for future in futures]

    def refresh(self, refresh_token: str, timeout: float = HTTP_TIMEOUT) -> Answer:
        return call(
            "POST",
            f"{self.server.base_url}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.server.client_id,
            },
            what="refresh",
            timeout=timeout,
        )

    def revoke(self, token: str, hint: str = "refresh_token") -> Answer:
        """RFC 7009 by the public client that holds the token."""
        return call(
            "POST",
            f"{self.server.base_url}/oauth/revoke",
            data={"token": token, "token_type_hint": hint, "client_id": self.server.client_id},
            what="revoke",
        )


class Phone:
    """A signed-in mobile app."""

    def __init__(self, server: FaultServer, token: str, device_id: str) -> None:
        self.server = server
        self.token = token
        self.device_id = device_id

    @classmethod
    def sign_in(cls, server: FaultServer) -> Phone:
        device_id = f"phone-{uuid.uuid4().hex[:8]}"
        answer = sign_in(server, server.username, server.password, device_id)
        assert answer.status == 201, answer
        return cls(server, answer.json()["device_token"], device_id)

    def _post(self, path: str, body: dict[str, str]) -> Answer:
        return call(
            "POST",
            f"{self.server.base_url}/mobile/v1/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}", "X-Device-Id": self.device_id},
            what=f"phone {path}",
        )

    def scan(self, login: Login) -> Answer:
        answer = self._post("scan", {"qr": login.verification_uri_complete})
        if answer.status == 200:
            login.confirm_token = answer.json()["confirm_token"]
        return answer

    def confirm(self, login: Login) -> Answer:
        assert login.confirm_token, "scan first"
        return self._post("confirm", {"confirm_token": login.confirm_token})

    def bring_to(self, login: Login, stage: Stage) -> Login:
        """Scan (and confirm) so the login stands at `stage`."""
        if stage >= Stage.SCANNED:
            scanned = self.scan(login)
            assert scanned.status == 200, scanned
        if stage >= Stage.APPROVED:
            confirmed = self.confirm(login)
            assert confirmed.status == 200 and confirmed.json()["status"] == "approved", confirmed
        return login


def sign_in(
    server: FaultServer, username: str, password: str, device_id: str = "", address: str = ""
) -> Answer:
    """The mobile app's sign-in (rate-limited per username and address); `address` is the
    phone's IP as the trusted reverse proxy reports it (X-Forwarded-For)."""
    return call(
        "POST",
        f"{server.base_url}/mobile/v1/sessions",
        json={
            "username": username,
            "password": password,
            "device": {"id": device_id or f"phone-{uuid.uuid4().hex[:8]}", "name": "Fault phone",
                       "platform": "android"},
        },
        headers={"X-Forwarded-For": address} if address else None,
        what="sign-in",
    )  # fmt: skip


def device_page_sign_in(server: FaultServer, login: Login, address: str) -> Answer:
    """A browser on the verification page (RFC 8628 §3.3): open the form, then sign in with
    the login's user code, from `address` (X-Forwarded-For). Signing in needs SQL."""
    started = time.monotonic()
    what = "verification page"
    with requests.Session() as browser:
        browser.headers["X-Forwarded-For"] = address
        try:
            form = browser.get(f"{server.base_url}/device", timeout=HTTP_TIMEOUT)
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            if form.status_code != 200 or csrf is None:
                return Answer(form.status_code, form.text, form.headers, 0.0, f"{what} form")
            started = time.monotonic()
            response = browser.post(
                f"{server.base_url}/device",
                data={
                    "csrf_token": csrf.group(1),
                    "user_code": login.user_code,
                    "username": server.username,
                    "password": server.password,
                },
                timeout=HTTP_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return Answer(None, None, {}, time.monotonic() - started, what, type(exc).__name__)
    return Answer(
        response.status_code,
        response.text,
        CaseInsensitiveDict(response.headers),
        time.monotonic() - started,
        what,
    )


def me(server: FaultServer, access_token: str) -> Answer:
    """The sample resource check: signature, claims, then the jti deny-list (no SQL)."""
    return call(
        "GET",
        f"{server.base_url}/api/v1/me",
        headers={"Authorization": f"Bearer {access_token}"},
        what="resource check",
    )


def introspect(server: FaultServer, token: str) -> Answer:
    """RFC 7662 by the resource-server client."""
    assert server.resource_server is not None
    return call(
        "POST",
        f"{server.base_url}/oauth/introspect",
        data={"token": token},
        auth=server.resource_server,
        what="introspection",
    )


def sign_in_and_login(server: FaultServer, stage: Stage = Stage.APPROVED) -> tuple[PC, Login]:
    """A PC login brought to `stage` by a freshly signed-in phone."""
    pc = PC(server)
    login = pc.start()
    Phone.sign_in(server).bring_to(login, stage)
    return pc, login


def signed_in_session(server: FaultServer) -> tuple[PC, dict[str, Any]]:
    """A completed login: the PC and its token response."""
    pc, login = sign_in_and_login(server)
    assert pc.poll_until_settled(login, within=5) == "tokens", login.history()
    return pc, login.tokens


# --- verdicts ---------------------------------------------------------------------------------
def unavailable_in_time(answers: list[Answer], bound: float = FAULT_ANSWER_BOUND) -> list[str]:
    """The answers that are not a timely 503 temporarily_unavailable (empty: all are)."""
    return [str(a) for a in answers if not (a.unavailable and a.seconds < bound)]


def slower_than(answers: list[Answer], bound: float) -> list[str]:
    return [str(a) for a in answers if a.seconds >= bound]


LIVE_STATUSES = frozenset({"pending", "scanned", "approved"})


def status_agrees(pc: PC, login: Login) -> str | None:
    """None if the status channel tells the same story as the token endpoint's last word;
    else what it said. Never "approved" there while the token endpoint refuses the code."""
    answer = pc.status(login)
    deadline = time.monotonic() + 5
    while answer.unavailable and time.monotonic() < deadline:  # a 503 says: ask again soon
        time.sleep(0.25)
        answer = pc.status(login)
    said = answer.json().get("status") if answer.status == 200 else answer.error
    expected = {
        "tokens": {"approved"},
        "expired_token": {"expired"},
        "access_denied": {"denied"},
    }.get(login.outcome or "")
    if expected is not None:
        return None if said in expected else f"status channel says {said!r} ({answer})"
    if login.outcome == "invalid_grant":
        # The code is gone (e.g. its flow store lost it): anything but a live state.
        return None if said not in LIVE_STATUSES else f"status channel says {said!r}"
    return f"the login has not settled: {login.history()}"


def replay_is_refused(pc: PC, login: Login) -> str | None:
    """None if presenting the device code once more gets no second token response (RFC 8628
    §3.5: a code is redeemed once); else what happened. It revokes the login's tokens."""
    again = pc.poll(login)
    if len(login.token_responses) != 1 or again.error != "invalid_grant":
        return f"replay: {again}; history: {login.history()}"
    return None


# --- a request the test can see in flight ----------------------------------------------------
class InFlight:
    """An HTTP request sent on a connection whose local port is known before it is answered,
    so the test can find the worker serving it (FaultServer.worker_serving)."""

    def __init__(
        self, server: FaultServer, path: str, form: Mapping[str, str], timeout: float
    ) -> None:
        url = urlsplit(server.base_url)
        self._timeout = timeout
        self._conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
        self._conn.connect()
        assert self._conn.sock is not None
        self.local_port: int = self._conn.sock.getsockname()[1]
        self._started = time.monotonic()
        self._conn.request(
            "POST",
            path,
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        self._pool = ThreadPoolExecutor(1)
        self._answer: Future[Answer] = self._pool.submit(self._read, path)

    def _read(self, path: str) -> Answer:
        try:
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return Answer(None, None, {}, time.monotonic() - self._started, path, repr(exc))
        finally:
            self._conn.close()
        return _answer(response, raw, self._started, path)

    def answer(self) -> Answer:
        """The answer, or an Answer without a status once the connection's timeout passed."""
        try:
            return self._answer.result(timeout=self._timeout + 1)
        finally:
            self._pool.shutdown(wait=False)


def _answer(response: http.client.HTTPResponse, raw: bytes, started: float, what: str) -> Answer:
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    headers = CaseInsensitiveDict(response.getheaders())
    return Answer(response.status, body, headers, time.monotonic() - started, what)


def on_some_worker(
    server: FaultServer,
    method: str,
    path: str,
    *,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    what: str = "",
) -> tuple[Answer, int | None]:
    """One request and the process that served it: the connection is kept open until that
    process, its owner, has been looked up."""
    url = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=HTTP_TIMEOUT)
    started = time.monotonic()
    sent = dict(headers or {})
    if form is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=urlencode(form) if form is not None else None, headers=sent)
        response = conn.getresponse()
        answer = _answer(response, response.read(), started, what or path)
        port = conn.sock.getsockname()[1] if conn.sock is not None else None
        return answer, server.worker_serving(port) if port else None
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, None, {}, time.monotonic() - started, what or path, repr(exc)), None
    finally:
        conn.close()


def authorize_on_some_worker(server: FaultServer) -> tuple[Answer, int | None]:
    """A device authorization (it needs Redis and SQL) and the worker that served it."""
    return on_some_worker(
        server,
        "POST",
        "/oauth/device_authorization",
        form={"client_id": server.client_id},
        what="device authorization",
    )


def resource_checks_on_every_worker(
    server: FaultServer, access_token: str, timeout: float = 10.0
) -> None:
    """Until every worker has accepted `access_token` at /api/v1/me: each then holds fresh
    copies of what a resource check may read from SQL (signing keys, a complete deny-list)."""
    deadline = time.monotonic() + timeout
    served: set[int] = set()
    while len(served) < server.http_workers:
        answer, worker = on_some_worker(
            server,
            "GET",
            "/api/v1/me",
            headers={"Authorization": f"Bearer {access_token}"},
            what="resource check",
        )
        assert answer.status == 200, answer
        served |= {worker} if worker is not None else set()
        assert time.monotonic() < deadline, f"only {served} of the workers answered"


def poll_in_flight(pc: PC, login: Login, timeout: float = HTTP_TIMEOUT) -> InFlight:
    """A token poll whose answer the test collects later (and adds to the login's history)."""
    return InFlight(
        pc.server,
        "/oauth/token",
        {
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": login.device_code,
            "client_id": pc.server.client_id,
        },
        timeout,
    )
