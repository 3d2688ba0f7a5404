"""The bounds settings: read as seconds (fractions allowed), checked at start-up."""

from __future__ import annotations

import pytest

from authserver.config import Config, ConfigError
from authserver.storage.sql.guard import SqlLimits


def test_timeouts_are_read_as_fractional_seconds() -> None:
    config = Config.from_env(
        {
            "AUTHSERVER_SQL_CONNECT_TIMEOUT": "2.5",
            "AUTHSERVER_SQL_STATEMENT_TIMEOUT": "0.75",
            "AUTHSERVER_SQL_LOCK_TIMEOUT": "1",
            "AUTHSERVER_SQL_POOL_TIMEOUT": "0.5",
            "AUTHSERVER_SQL_POOL_SIZE": "3",
            "AUTHSERVER_SQL_POOL_OVERFLOW": "0",
            "AUTHSERVER_SQL_MAX_THREADS": "4",
            "AUTHSERVER_REDIS_TIMEOUT": "1.5",
        }
    )
    assert SqlLimits.from_config(config) == SqlLimits(
        connect_timeout=2.5,
        statement_timeout=0.75,
        lock_timeout=1.0,
        pool_timeout=0.5,
        pool_size=3,
        pool_overflow=0,
        max_threads=4,
    )
    assert config.redis_timeout == 1.5


def test_the_defaults_are_a_few_seconds() -> None:
    config = Config.from_env({})
    limits = SqlLimits.from_config(config)
    assert limits == SqlLimits()  # one set of defaults, not two that drift apart
    assert (config.sql_connect_timeout, config.sql_statement_timeout) == (3.0, 5.0)
    assert (config.sql_lock_timeout, config.sql_pool_timeout, config.redis_timeout) == (2, 2, 2)
    assert limits.round_trip_timeout == 6.0
    assert limits.cooloff == 2.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AUTHSERVER_SQL_STATEMENT_TIMEOUT", "soon", "must be a number, got 'soon'"),
        ("AUTHSERVER_SQL_STATEMENT_TIMEOUT", "0", "must be a positive number of seconds"),
        ("AUTHSERVER_REDIS_TIMEOUT", "-1", "must be a positive number of seconds"),
        ("AUTHSERVER_REDIS_TIMEOUT", "nan", "must be a positive number of seconds"),
        ("AUTHSERVER_SQL_LOCK_TIMEOUT", "inf", "must be a positive number of seconds"),
        ("AUTHSERVER_SQL_POOL_SIZE", "1.5", "must be a whole number"),
        ("AUTHSERVER_SQL_POOL_SIZE", "0", "must be positive"),
        ("AUTHSERVER_SQL_POOL_OVERFLOW", "-1", "must be 0 or more"),
        ("AUTHSERVER_SQL_MAX_THREADS", "0", "must be positive"),
        ("AUTHSERVER_TRUSTED_PROXIES", "-1", "must be 0 or more"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_env({variable: value})
    assert variable in str(refused.value)
    assert message in str(refused.value)


def test_the_connect_timeout_follows_libpq_whole_seconds_at_least_two() -> None:
    assert SqlLimits(connect_timeout=0.5).libpq_connect_timeout == 2
    assert SqlLimits(connect_timeout=2.2).libpq_connect_timeout == 3


def test_a_hung_server_is_cut_off_a_moment_after_its_own_statement_timeout() -> None:
    assert SqlLimits(statement_timeout=0.5).round_trip_timeout == 0.75
    assert SqlLimits(statement_timeout=30).round_trip_timeout == 31
    assert SqlLimits(statement_timeout=5).idle_in_transaction_timeout == 10
    assert SqlLimits(statement_timeout=30).idle_in_transaction_timeout == 60
