"""The jti deny-list contract (Redis and embedded), and its rebuild from SQL after a loss."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from authserver import create_app
from authserver.domain.models import Denial, DenialKind, DenyListAnswer
from authserver.domain.ports import RevocationList
from authserver.storage.embedded.deny_list import EmbeddedRevocationList
from authserver.storage.redis_store.deny_list import RedisRevocationList
from tests.functional.harness import PASSWORD, Harness, make_services
from tests.functional.lifecycle import login, me, revoke, revoked_ok

NOW = 1_900_000_000.0
SID = "no-such-session"  # the session of the tokens checked by jti alone


def token(jti: str, until: float) -> Denial:
    return Denial(DenialKind.ACCESS_TOKEN, jti, until)


def session(sid: str, until: float) -> Denial:
    return Denial(DenialKind.SESSION, sid, until)


@pytest.fixture(params=["embedded", "redis"])
def deny_list(request: pytest.FixtureRequest) -> RevocationList:
    if request.param == "embedded":
        return EmbeddedRevocationList()
    client = request.getfixturevalue("redis_client")
    return RedisRevocationList(client, request.getfixturevalue("redis_prefix"))


def test_a_new_list_is_incomplete_until_rebuilt(deny_list: RevocationList) -> None:
    assert deny_list.is_denied("a", SID, NOW) is DenyListAnswer.INCOMPLETE
    deny_list.add([token("a", NOW + 100)], NOW)  # entries alone do not make it complete
    assert deny_list.is_denied("a", SID, NOW) is DenyListAnswer.INCOMPLETE
    assert deny_list.is_denied("b", SID, NOW) is DenyListAnswer.INCOMPLETE

    deny_list.rebuild([token("b", NOW + 100), token("gone", NOW - 1)], NOW, deny_list.generation())
    assert (
        deny_list.is_denied("a", SID, NOW) is DenyListAnswer.DENIED
    )  # added before the rebuild: kept
    assert deny_list.is_denied("b", SID, NOW) is DenyListAnswer.DENIED
    assert (
        deny_list.is_denied("gone", SID, NOW) is DenyListAnswer.ALLOWED
    )  # already expired: never listed
    assert deny_list.is_denied("never", SID, NOW) is DenyListAnswer.ALLOWED


def test_an_entry_lasts_until_its_token_expires(deny_list: RevocationList) -> None:
    deny_list.rebuild([], NOW, deny_list.generation())
    assert deny_list.is_denied("x", SID, NOW) is DenyListAnswer.ALLOWED
    deny_list.add([token("x", NOW + 600), token("y", NOW + 10)], NOW)
    deny_list.add([token("expired", NOW)], NOW)  # exp == now: already expired
    assert deny_list.is_denied("x", SID, NOW) is DenyListAnswer.DENIED
    assert deny_list.is_denied("y", SID, NOW + 9.5) is DenyListAnswer.DENIED
    assert (
        deny_list.is_denied("y", SID, NOW + 10) is DenyListAnswer.ALLOWED
    )  # decided by `now`, not a wall clock
    assert deny_list.is_denied("x", SID, NOW + 599) is DenyListAnswer.DENIED
    assert deny_list.is_denied("x", SID, NOW + 600) is DenyListAnswer.ALLOWED
    assert deny_list.is_denied("expired", SID, NOW) is DenyListAnswer.ALLOWED
    deny_list.add([], NOW)  # nothing to add is fine
    # Adding the same jti twice is harmless.
    deny_list.add([token("x", NOW + 600)], NOW + 1)
    assert deny_list.is_denied("x", SID, NOW + 1) is DenyListAnswer.DENIED


def test_a_session_denial_refuses_every_token_of_the_session(deny_list: RevocationList) -> None:
    deny_list.rebuild([session("fam-1", NOW + 600)], NOW, deny_list.generation())
    assert deny_list.is_denied("any-jti", "fam-1", NOW) is DenyListAnswer.DENIED
    assert deny_list.is_denied("another-jti", "fam-1", NOW + 599) is DenyListAnswer.DENIED
    assert (
        deny_list.is_denied("any-jti", "fam-1", NOW + 600) is DenyListAnswer.ALLOWED
    )  # all expired by then
    assert deny_list.is_denied("any-jti", "fam-2", NOW) is DenyListAnswer.ALLOWED
    # A jti that happens to equal a session id is not confused with it, nor the reverse.
    assert deny_list.is_denied("fam-1", SID, NOW) is DenyListAnswer.ALLOWED
    deny_list.add([token("t-1", NOW + 60)], NOW)
    assert deny_list.is_denied("t-1", "t-1", NOW) is DenyListAnswer.DENIED
    assert deny_list.is_denied("x", "t-1", NOW) is DenyListAnswer.ALLOWED


def test_a_list_marked_incomplete_is_rebuilt(deny_list: RevocationList) -> None:
    deny_list.rebuild([token("a", NOW + 100)], NOW, deny_list.generation())
    deny_list.mark_incomplete()  # after a failed write: the next check rebuilds from SQL
    assert deny_list.is_denied("a", SID, NOW) is DenyListAnswer.INCOMPLETE
    deny_list.rebuild([token("b", NOW + 100)], NOW, deny_list.generation())
    assert deny_list.is_denied("b", SID, NOW) is DenyListAnswer.DENIED


def test_a_rebuild_that_read_sql_before_the_list_was_marked_incomplete_vouches_for_nothing(
    deny_list: RevocationList,
) -> None:
    """A rebuild reads SQL, then a revocation commits and its own write fails (the list is
    marked incomplete); the rebuild's late write must not mark the list complete without it."""
    read_before = deny_list.generation()
    deny_list.mark_incomplete()  # the revocation whose deny-list write failed
    assert not deny_list.rebuild([token("old", NOW + 100)], NOW, read_before)
    assert deny_list.is_denied("revoked-meanwhile", SID, NOW) is DenyListAnswer.INCOMPLETE
    assert deny_list.rebuild([token("revoked-meanwhile", NOW + 100)], NOW, deny_list.generation())
    assert deny_list.is_denied("revoked-meanwhile", SID, NOW) is DenyListAnswer.DENIED


def test_redis_restarted_under_a_rebuild_is_no_complete_list(
    redis_client: Any, redis_prefix: str
) -> None:
    """A restarted Redis lost the generation with everything else: a rebuild that read it
    before the restart cannot mark the new, empty Redis complete."""
    deny_list = RedisRevocationList(redis_client, redis_prefix)
    read_before = deny_list.generation()
    for key in redis_client.scan_iter(match=redis_prefix + "*"):  # what a restart does
        redis_client.delete(key)
    assert not deny_list.rebuild([], NOW, read_before)
    assert deny_list.is_denied("any", SID, NOW) is DenyListAnswer.INCOMPLETE


def test_redis_entries_expire_in_redis_and_the_marker_is_the_completeness(
    redis_client: Any, redis_prefix: str
) -> None:
    deny_list = RedisRevocationList(redis_client, redis_prefix)
    deny_list.rebuild([token("x", NOW + 600)], NOW, deny_list.generation())
    ttl = redis_client.ttl(f"{redis_prefix}deny:jti:x")
    assert 600 < ttl <= 600 + RedisRevocationList.GRACE  # outlives the token by the grace
    # The marker expires, so the list is rebuilt from SQL at least that often.
    assert 0 < redis_client.ttl(f"{redis_prefix}deny-fresh") <= RedisRevocationList.FRESH_TTL
    assert redis_client.ttl(f"{redis_prefix}deny-complete") > 0
    # Another process sharing the prefix sees the same list.
    assert (
        RedisRevocationList(redis_client, redis_prefix).is_denied("x", SID, NOW)
        is DenyListAnswer.DENIED
    )
    assert (
        RedisRevocationList(redis_client, "other:" + redis_prefix).is_denied("x", SID, NOW)
        is DenyListAnswer.INCOMPLETE
    )

    redis_client.delete(f"{redis_prefix}deny-fresh")  # due for its periodic rebuild
    assert deny_list.is_denied("x", SID, NOW) is DenyListAnswer.DENIED
    assert deny_list.is_denied("y", SID, NOW) is DenyListAnswer.STALE
    redis_client.delete(f"{redis_prefix}deny-complete")  # as a Redis restart would lose it
    assert deny_list.is_denied("x", SID, NOW) is DenyListAnswer.INCOMPLETE


# --- Rebuilt from SQL through the real services ------------------------------------------
@pytest.fixture(params=["embedded+sqlite", "redis+postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None, str]:
    if request.param == "embedded+sqlite":
        return request.getfixturevalue("sqlite_url"), None, "x:"
    return (
        request.getfixturevalue("postgres_url"),
        request.getfixturevalue("redis_url"),
        request.getfixturevalue("redis_prefix"),
    )


def harness_on(backend: tuple[str, str | None, str]) -> Harness:
    services = make_services(*backend)
    app = create_app(services=services)
    client, _ = services.clients.create("Test PC app", confidential=False, scope="profile email")
    username = f"alice-{uuid.uuid4().hex[:6]}"
    services.accounts.create_user(username, PASSWORD, "Alice Liddell")
    return Harness(app.test_client(), services, client.client_id, username)


@pytest.fixture
def two_processes(backend: tuple[str, str | None, str]) -> Iterator[tuple[Harness, Harness]]:
    """Two servers on the same database (and Redis), as two processes or a restart."""
    first = harness_on(backend)
    second_services = make_services(*backend)
    second = Harness(
        create_app(services=second_services).test_client(),
        second_services,
        first.client_id,
        first.username,
    )
    yield first, second
    first.services.close()
    second.services.close()


def forget_deny_list(h: Harness) -> None:
    """Lose the deny-list as a Redis restart (or a process restart, embedded) does."""
    r = h.services.redis
    if r is not None:
        prefix = h.services.config.redis_prefix
        keys = list(r.scan_iter(match=f"{prefix}deny*"))
        assert f"{prefix}deny-complete".encode() in keys
        r.delete(*keys)
        assert not list(r.scan_iter(match=f"{prefix}deny*"))
    else:
        # A process restart: the in-memory list is gone, and the new one starts incomplete.
        h.services.revocations._deny_list = EmbeddedRevocationList()


def test_a_lost_deny_list_is_rebuilt_from_sql(
    two_processes: tuple[Harness, Harness],
) -> None:
    h, other_process = two_processes
    by_family = login(h)
    by_access = login(h, phone=by_family.phone)
    client_id, secret = h.create_client(confidential=True)
    by_client = login(h, client_id=client_id, secret=secret, phone=by_family.phone)
    alive = login(h, phone=by_family.phone)
    for session in (by_family, by_access, by_client, alive):
        assert me(h, session.access_token).status_code == 200

    revoked_ok(revoke(h, by_family.refresh_token))  # the whole family
    revoked_ok(revoke(h, by_access.access_token))  # one access token
    # A disabled client's tokens, however it came to be disabled.
    h.services.clients.set_disabled(client_id, True)
    forget_deny_list(h)

    for server in (h, other_process):
        for session in (by_family, by_access, by_client):
            refused = me(server, session.access_token)
            assert refused.status_code == 401, refused.get_json()
            assert refused.get_json()["error"] == "invalid_token"
        assert me(server, alive.access_token).status_code == 200
    if h.services.redis is not None:
        prefix = h.services.config.redis_prefix
        assert h.services.redis.get(f"{prefix}deny-complete") is not None
        assert h.services.redis.exists(f"{prefix}deny:jti:{by_access.jti}")


def test_the_embedded_list_of_a_new_process_starts_from_sql(sqlite_url: str) -> None:
    h = harness_on((sqlite_url, None, "x:"))
    session = login(h)
    revoked_ok(revoke(h, session.refresh_token))
    h.services.close()
    restarted = make_services(sqlite_url, None, "x:")  # a restart: nothing in memory
    try:
        again = Harness(
            create_app(services=restarted).test_client(), restarted, h.client_id, h.username
        )
        assert me(again, session.access_token).status_code == 401
    finally:
        restarted.close()
