"""The one-time values and the shared secret behind DPoP jtis, nonces and rotating QR codes:
the same contract in process memory and in Redis."""

from __future__ import annotations

from typing import Any

import pytest

from authserver.storage.embedded.replay_cache import EmbeddedReplayCache
from authserver.storage.redis_store.replay_cache import RedisReplayCache


@pytest.fixture(params=["embedded", "redis"])
def cache(request: pytest.FixtureRequest) -> Any:
    if request.param == "embedded":
        return EmbeddedReplayCache()
    client, prefix = (
        request.getfixturevalue("redis_client"),
        request.getfixturevalue("redis_prefix"),
    )
    return RedisReplayCache(client, prefix)


def test_a_value_is_used_once_until_its_time_is_up(cache: Any) -> None:
    assert cache.first_use("dpop:a", until=1100.0, now=1000.0)
    assert not cache.first_use("dpop:a", until=1100.0, now=1001.0)  # a replay
    assert cache.first_use("dpop:b", until=1100.0, now=1001.0)  # another value


def test_the_embedded_cache_forgets_a_value_after_its_time() -> None:
    cache = EmbeddedReplayCache()
    assert cache.first_use("x", until=1010.0, now=1000.0)
    assert cache.first_use("x", until=1100.0, now=1011.0)


def test_every_process_shares_one_secret_and_adopts_a_new_one(
    redis_client: Any, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = (
        RedisReplayCache(redis_client, redis_prefix),
        RedisReplayCache(redis_client, redis_prefix),
    )
    secret = first.shared_secret()
    assert len(secret) == 32 and second.shared_secret() == secret
    redis_client.delete(f"{redis_prefix}nonce-secret")  # Redis lost it (a restart)
    monkeypatch.setattr(RedisReplayCache, "SECRET_RELOAD", 0.0)
    renewed = second.shared_secret()
    assert renewed != secret and first.shared_secret() == renewed
