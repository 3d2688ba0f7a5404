"""The PC library's RFC 8628 §3.5 polling loop, with a scripted server and a fake clock."""

from __future__ import annotations

import base64
import itertools
import threading

import pytest

from qrlogin_client.http import HttpResponse, TransportError
from qrlogin_client.pc import (
    AccessDenied,
    DeviceLogin,
    DiscoveryError,
    ExpiredToken,
    OAuthError,
    Status,
    StatusUpdate,
    StatusWatcher,
    metadata_url,
)
from tests.clients.fakes import (
    CLIENT_ID,
    ISSUER,
    PENDING,
    SLOW_DOWN,
    FakeClock,
    FakeServer,
    Sent,
    connection_refused,
    device_authorization,
    error,
    tokens_answer,
)

TOKEN = "/oauth/token"
STATUS = "/oauth/device_status"


def make_login(
    server: FakeServer, clock: FakeClock, secret: str | None = None, **options: object
) -> DeviceLogin:
    return DeviceLogin(
        ISSUER,
        CLIENT_ID,
        secret,
        "profile email",
        transport=server,
        clock=clock,
        wall_clock=clock,
        sleep=clock.sleep,
        **options,  # type: ignore[arg-type]
    )


def poll_gaps(server: FakeServer, started_at: float) -> list[float]:
    times = [started_at] + [sent.at for sent in server.requests_to(TOKEN)]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_interval_is_honoured_from_the_first_poll(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script("/oauth/device_authorization", device_authorization(interval=3))
    server.script(TOKEN, PENDING, PENDING, tokens_answer())
    login = make_login(server, clock)
    authorization = login.start()

    tokens = login.wait(authorization)

    assert tokens.access_token == "at-1" and tokens.refresh_token == "rt-1"
    assert poll_gaps(server, authorization.started_at) == [3, 3, 3]
    polls = server.requests_to(TOKEN)
    assert polls[0].form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": authorization.device_code,
        "client_id": CLIENT_ID,  # a public client identifies itself in the body
    }
    assert "Authorization" not in polls[0].headers


def test_slow_down_adds_five_seconds_to_every_later_poll(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script("/oauth/device_authorization", device_authorization(interval=1))
    server.script(TOKEN, PENDING, SLOW_DOWN, PENDING, SLOW_DOWN, PENDING, tokens_answer())
    login = make_login(server, clock)
    authorization = login.start()

    login.wait(authorization)

    # 1 s, then slow_down: 6 s from then on; slow_down again: 11 s. Cumulative, never reset.
    assert poll_gaps(server, authorization.started_at) == [1, 1, 6, 6, 11, 11]


@pytest.mark.parametrize(
    "answer",
    [
        error("invalid_grant"),
        error("invalid_client", 401),
        error("unsupported_grant_type"),
        error("a_code_from_the_future"),
        HttpResponse(404, None),  # not even JSON
    ],
    ids=lambda answer: str(answer.json_object().get("error", answer.status)),
)
def test_any_error_it_does_not_know_stops_the_loop(clock: FakeClock, answer: HttpResponse) -> None:
    server = FakeServer(clock)
    server.script(TOKEN, PENDING, answer, tokens_answer())
    login = make_login(server, clock)

    with pytest.raises(OAuthError) as stopped:
        login.wait(login.start())

    assert not isinstance(stopped.value, AccessDenied | ExpiredToken)
    expected = answer.json_object().get("error", "invalid_response")
    assert stopped.value.error == expected
    assert len(server.requests_to(TOKEN)) == 2  # no poll after the unknown error


def test_access_denied_raises_and_reports_denied(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script(TOKEN, PENDING, error("access_denied"))
    login = make_login(server, clock)
    updates: list[StatusUpdate] = []

    with pytest.raises(AccessDenied):
        login.wait(login.start(), on_status=updates.append)

    assert [update.status for update in updates] == [Status.PENDING, Status.DENIED]
    assert len(server.requests_to(TOKEN)) == 2


def test_expired_token_raises_and_reports_expired(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script(TOKEN, error("expired_token"))
    login = make_login(server, clock)
    updates: list[StatusUpdate] = []

    with pytest.raises(ExpiredToken):
        login.wait(login.start(), on_status=updates.append)

    assert [update.status for update in updates] == [Status.PENDING, Status.EXPIRED]
    assert updates[-1].final and "Expired" in updates[-1].message


def test_stops_at_expires_in_without_polling_past_it(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script("/oauth/device_authorization", device_authorization(expires_in=10, interval=3))
    server.script(TOKEN, PENDING)
    login = make_login(server, clock)
    authorization = login.start()

    with pytest.raises(ExpiredToken):
        login.wait(authorization)

    assert [sent.at - authorization.started_at for sent in server.requests_to(TOKEN)] == [3, 6, 9]


def test_connection_failures_double_the_interval(clock: FakeClock) -> None:
    """RFC 8628 §3.5: after a connection timeout, poll less often (doubling is RECOMMENDED);
    once the server answers again, its own interval applies again."""
    server = FakeServer(clock)
    server.script("/oauth/device_authorization", device_authorization(interval=2))
    server.script(
        TOKEN, connection_refused(), connection_refused(), PENDING, PENDING, tokens_answer()
    )
    login = make_login(server, clock)
    authorization = login.start()

    login.wait(authorization)

    assert poll_gaps(server, authorization.started_at) == [2, 4, 8, 2, 2]


def unavailable(retry_after: str | None = None, status: int = 503) -> HttpResponse:
    """The server's answer while a dependency is down (RFC 6749 §5.2 body, Retry-After)."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"error": "temporarily_unavailable", "error_description": "Try again shortly."}
    return HttpResponse(status, body, {**headers, "Cache-Control": "no-store"})


def test_5xx_answers_are_temporary_and_polling_goes_on(clock: FakeClock) -> None:
    """A Redis or database blip (503), a crash (500), a proxy's page (502, not JSON) and a
    refused connection all back off the same way; the flow then completes."""
    server = FakeServer(clock)
    server.script("/oauth/device_authorization", device_authorization(interval=2))
    server.script(
        TOKEN,
        PENDING,
        unavailable("1"),
        error("server_error", 500),
        HttpResponse(502, None),
        connection_refused(),
        PENDING,
        tokens_answer(),
    )
    login = make_login(server, clock)
    authorization = login.start()

    tokens = login.wait(authorization)

    assert tokens.access_token == "at-1"
    assert poll_gaps(server, authorization.started_at) == [2, 2, 4, 8, 16, 32, 2]


def test_retry_after_is_honoured_and_capped(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script("/oauth/device_authorization", device_authorization(interval=2))
    server.script(
        TOKEN,
        unavailable("20"),  # longer than the backoff (4): wait 20
        unavailable(),  # no Retry-After: the backoff (8)
        PENDING,
        unavailable("3600"),  # capped at a minute, far inside the code's 10 minutes
        unavailable("Thu, 01 Jan 1970 00:00:00 GMT"),  # a date in the past: the backoff
        tokens_answer(),
    )
    login = make_login(server, clock)
    authorization = login.start()

    login.wait(authorization)

    assert poll_gaps(server, authorization.started_at) == [2, 20, 8, 2, 60, 8]


def test_an_outage_longer_than_the_code_ends_with_expired_token(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script("/oauth/device_authorization", device_authorization(expires_in=30, interval=5))
    server.script(TOKEN, unavailable("1"))
    login = make_login(server, clock)
    authorization = login.start()

    with pytest.raises(ExpiredToken):
        login.wait(authorization)

    # 5, then 10 more (doubled), then the code ends at 30 before the next (20 s) poll.
    assert [sent.at - authorization.started_at for sent in server.requests_to(TOKEN)] == [5, 15]
    assert clock() - authorization.started_at == 30  # it said so on time, not 5 s later


def test_the_user_is_told_while_the_server_cannot_be_reached(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script(
        TOKEN, PENDING, unavailable("1"), connection_refused(), PENDING, PENDING, tokens_answer()
    )
    login = make_login(server, clock)
    updates: list[StatusUpdate] = []

    login.wait(login.start(), on_status=updates.append, watch_status=False)

    assert [update.status for update in updates] == [
        Status.PENDING,
        Status.UNREACHABLE,  # once, for two failures in a row
        Status.PENDING,  # where it stood, once the server answers again
        Status.SIGNED_IN,
    ]
    assert updates[1].message == "Cannot reach the server, retrying..."


def test_after_a_blip_the_status_line_shows_the_scan_again() -> None:
    """The token poll only knows "pending"; what the status channel said is shown again."""
    from qrlogin_client.pc import _Reporter

    shown: list[Status] = []
    reporter = _Reporter(lambda update: shown.append(update.status))
    for status in (Status.PENDING, Status.SCANNED, Status.UNREACHABLE):
        reporter.report(StatusUpdate(status))
    reporter.restore()
    reporter.restore()  # nothing new to say
    assert shown == [Status.PENDING, Status.SCANNED, Status.UNREACHABLE, Status.SCANNED]


def test_5xx_errors_are_typed_with_their_retry_after() -> None:
    from qrlogin_client.pc import TemporarilyUnavailable, oauth_error

    now = 1445412470.0  # 10 s before the date below
    found = oauth_error(unavailable("Wed, 21 Oct 2015 07:28:00 GMT"), now)
    assert isinstance(found, TemporarilyUnavailable)
    assert (found.error, found.status, found.retry_after) == ("temporarily_unavailable", 503, 10)
    proxy = oauth_error(HttpResponse(502, "<html>Bad gateway</html>"), now)
    assert isinstance(proxy, TemporarilyUnavailable) and proxy.retry_after is None
    assert proxy.error == "temporarily_unavailable" and "502" in str(proxy)
    lower_case = HttpResponse(503, None, {"retry-after": "7"})  # HTTP/2 header names
    assert oauth_error(lower_case, now).retry_after == 7  # type: ignore[attr-defined]
    assert not isinstance(oauth_error(error("invalid_grant"), now), TemporarilyUnavailable)


def test_signed_in_is_reported_last(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script(TOKEN, PENDING, tokens_answer())
    login = make_login(server, clock)
    updates: list[StatusUpdate] = []

    login.wait(login.start(), on_status=updates.append)

    assert [update.status for update in updates] == [Status.PENDING, Status.SIGNED_IN]
    assert updates[-1].message == "Signed in."


def test_confidential_client_authenticates_with_basic(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script(TOKEN, tokens_answer())
    login = make_login(server, clock, secret="s3cret:/+")
    login.wait(login.start())

    for sent in server.requests_to("/oauth/device_authorization") + server.requests_to(TOKEN):
        assert "client_id" not in sent.form and "client_secret" not in sent.form
        scheme, _, encoded = sent.headers["Authorization"].partition(" ")
        assert scheme == "Basic"
        # RFC 6749 §2.3.1: each part form-urlencoded before the base64.
        assert base64.b64decode(encoded).decode() == f"{CLIENT_ID}:s3cret%3A%2F%2B"
    assert server.requests_to("/oauth/device_authorization")[0].form == {"scope": "profile email"}


def test_start_refuses_a_server_error(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script("/oauth/device_authorization", error("invalid_client", 401))
    with pytest.raises(OAuthError) as refused:
        make_login(server, clock).start()
    assert refused.value.error == "invalid_client" and refused.value.status == 401


def test_refresh_and_revoke(clock: FakeClock) -> None:
    server = FakeServer(clock)
    server.script(TOKEN, tokens_answer(), tokens_answer("at-2", "rt-2"), error("invalid_grant"))
    login = make_login(server, clock)
    first = login.wait(login.start())

    second = login.refresh(first)
    assert (second.access_token, second.refresh_token) == ("at-2", "rt-2")
    assert server.requests_to(TOKEN)[-1].form == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "client_id": CLIENT_ID,
    }
    with pytest.raises(OAuthError) as spent:
        login.refresh(first)
    assert spent.value.error == "invalid_grant"

    login.revoke(second)
    assert server.requests_to("/oauth/revoke")[0].form == {
        "token": "rt-2",
        "token_type_hint": "refresh_token",
        "client_id": CLIENT_ID,
    }


def test_discovery_insists_on_the_same_issuer(clock: FakeClock) -> None:
    server = FakeServer(clock, metadata={"issuer": "https://evil.example.test"})
    with pytest.raises(DiscoveryError, match="issuer"):
        make_login(server, clock).start()


def test_discovery_needs_the_device_grant(clock: FakeClock) -> None:
    server = FakeServer(clock, metadata={"grant_types_supported": ["authorization_code"]})
    with pytest.raises(DiscoveryError, match="device flow"):
        make_login(server, clock).start()


def test_metadata_url_follows_rfc_8414() -> None:
    assert (
        metadata_url("https://a.test/") == "https://a.test/.well-known/oauth-authorization-server"
    )
    assert (
        metadata_url("https://a.test/tenant1")
        == "https://a.test/.well-known/oauth-authorization-server/tenant1"
    )
    with pytest.raises(DiscoveryError):
        metadata_url("ftp://a.test")


# --- the status channel ------------------------------------------------------------------------
def status(value: str, **extra: object) -> HttpResponse:
    return HttpResponse(200, {"status": value, "expires_in": 500, **extra})


def run_watcher(
    server: FakeServer, clock: FakeClock
) -> tuple[list[StatusUpdate], list[float], DeviceLogin]:
    """Run a StatusWatcher synchronously on this thread; return its reports and pauses."""
    login = make_login(server, clock)
    authorization = login.start()
    updates: list[StatusUpdate] = []
    pauses: list[float] = []

    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        clock.sleep(seconds)
        return False

    StatusWatcher(login, authorization, updates.append, pause=pause, stopped=lambda: False).run()
    return updates, pauses, login


def test_status_watcher_long_polls_each_change(clock: FakeClock) -> None:
    server = FakeServer(clock, status_channel=True)
    scanner = {"name": "D*** U***", "platform": "ios"}
    server.script(STATUS, status("pending"), status("scanned", scanner=scanner), status("approved"))

    updates, pauses, _ = run_watcher(server, clock)

    assert [update.status for update in updates] == [
        Status.PENDING,
        Status.SCANNED,
        Status.APPROVED,
    ]
    assert updates[1].message == "Scanned, confirm on your phone (D*** U***, ios)..."
    forms = [sent.form for sent in server.requests_to(STATUS)]
    assert "status" not in forms[0] and "wait" not in forms[0]  # first: where are we now?
    assert forms[1]["status"] == "pending" and forms[1]["wait"] == "25"
    assert forms[2]["status"] == "scanned"
    assert pauses == []  # every answer was news: no pause between long-polls


def test_status_watcher_does_not_spin_on_answers_without_news(clock: FakeClock) -> None:
    server = FakeServer(clock, status_channel=True)
    server.script(STATUS, status("pending"), status("pending"), status("pending"), status("denied"))

    updates, pauses, _ = run_watcher(server, clock)

    assert [update.status for update in updates] == [Status.PENDING, Status.DENIED]
    assert pauses == [5.0, 5.0]  # answered at once, unchanged: wait an interval before asking


def test_status_watcher_backs_off_when_unreachable_and_stops_when_the_code_is_gone(
    clock: FakeClock,
) -> None:
    server = FakeServer(clock, status_channel=True)
    server.script(
        STATUS,
        status("pending"),
        TransportError("down"),
        TransportError("down"),
        error("invalid_grant"),
    )

    updates, pauses, _ = run_watcher(server, clock)

    # The user is told once that the server cannot be reached (not a silent wait).
    assert [update.status for update in updates] == [Status.PENDING, Status.UNREACHABLE]
    assert updates[1].message == "Cannot reach the server, retrying..."
    assert pauses == [2.0, 4.0]
    assert len(server.requests_to(STATUS)) == 4


def test_status_watcher_waits_out_a_503_and_reports_the_status_again(clock: FakeClock) -> None:
    server = FakeServer(clock, status_channel=True)
    server.script(
        STATUS,
        status("scanned"),
        unavailable("10"),
        unavailable(),
        status("scanned"),
        status("approved"),
    )

    updates, pauses, _ = run_watcher(server, clock)

    assert [update.status for update in updates] == [
        Status.SCANNED,
        Status.UNREACHABLE,
        Status.SCANNED,
        Status.APPROVED,
    ]
    assert pauses == [10.0, 4.0]  # Retry-After, then the backoff of a second failure
    assert len(server.requests_to(STATUS)) == 5


def test_status_watcher_reports_the_status_again_once_the_server_is_back(
    clock: FakeClock,
) -> None:
    server = FakeServer(clock, status_channel=True)
    server.script(
        STATUS, status("pending"), TransportError("down"), status("pending"), status("denied")
    )

    updates, _, _ = run_watcher(server, clock)

    assert [update.status for update in updates] == [
        Status.PENDING,
        Status.UNREACHABLE,
        Status.PENDING,
        Status.DENIED,
    ]


def test_wait_reports_the_status_channel_from_a_background_thread(clock: FakeClock) -> None:
    """The real thread: scanned and approved arrive through the status channel while the
    token poll is pending; the tokens still come from the token endpoint."""
    server = FakeServer(clock, status_channel=True)
    scanner = {"name": "D*** U***"}
    server.script(STATUS, status("pending"), status("scanned", scanner=scanner), status("approved"))
    updates: list[StatusUpdate] = []
    approved_shown = threading.Event()

    def on_status(update: StatusUpdate) -> None:
        updates.append(update)
        if update.status is Status.APPROVED:
            approved_shown.set()

    def token(_: Sent) -> HttpResponse:
        # Pending until the user has seen "approved" (bounded), as with a real phone.
        return tokens_answer() if approved_shown.wait(timeout=5) else PENDING

    server.script(TOKEN, token)
    login = make_login(server, clock)

    tokens = login.wait(login.start(), on_status=on_status)

    assert tokens.access_token == "at-1"
    assert [update.status for update in updates] == [
        Status.PENDING,
        Status.SCANNED,
        Status.APPROVED,
        Status.SIGNED_IN,
    ]


def test_the_pc_client_refuses_an_issuer_in_clear_text_off_this_machine() -> None:
    from qrlogin_client.pc import DiscoveryError, metadata_url

    with pytest.raises(DiscoveryError, match="https"):
        metadata_url("http://login.example.com")
    assert metadata_url("http://localhost:8000").startswith("http://localhost:8000/")
    assert metadata_url("https://login.example.com/tenant") == (
        "https://login.example.com/.well-known/oauth-authorization-server/tenant"
    )


def test_status_watcher_redraws_a_rotating_qr_code_in_time(clock: FakeClock) -> None:
    server = FakeServer(clock, status_channel=True)
    server.script(
        STATUS,
        status("pending", qr_token="tok-1", qr_token_expires_in=12),
        status("pending", qr_token="tok-2", qr_token_expires_in=30),
        status("approved"),
    )

    updates, pauses, _ = run_watcher(server, clock)

    links = [update.qr_text for update in updates if update.qr_text]
    assert [link.rsplit("&t=", 1)[1] for link in links] == ["tok-1", "tok-2"]
    assert all(link.startswith(f"{ISSUER}/device?user_code=") for link in links)
    forms = [sent.form for sent in server.requests_to(STATUS)]
    assert forms[1]["wait"] == "12"  # back when the first token's time is up
    assert forms[2]["wait"] == "25"  # capped by the longest long-poll
    assert pauses == []
