"""The Redis flow store: atomic transitions shared by every server process.

Layout (every secret appears only as its SHA-256):
  {prefix}flow:{device_code_hash}   HASH of the Flow's fields
  {prefix}uc:{user_code_hash}       -> device_code_hash
  {prefix}ct:{confirm_token_hash}   -> device_code_hash
  {prefix}ev:{device_code_hash}     pub/sub channel: the flow's version changed
TTLs only clean up; expiry is decided by the domain from `expires_at`, because a real Redis
server's clock does not follow the tests' frozen one.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import redis

from authserver.domain.flow import (
    CLEANUP_GRACE,
    POLL_OWNED_FIELDS,
    SLOW_DOWN_STEP,
    Flow,
    FlowState,
    PollOutcome,
    PollResult,
)

_INT_FIELDS = {"interval", "version"}
_FLOAT_FIELDS = {"created_at", "expires_at", "last_poll_at", "confirm_expires_at"}

# KEYS: flow, user-code index. ARGV: ttl, then field/value pairs.
_CREATE = """
if redis.call('set', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[1]) == false then return 0 end
redis.call('hset', KEYS[1], unpack(ARGV, 3))
redis.call('expire', KEYS[1], ARGV[1])
return 1
"""

# Compare-and-set on version (the phone-side transitions are decided in Python by the domain).
# KEYS: flow, old confirm index ('' if none), new confirm index ('' if none), channel.
# ARGV: expected version, device code hash (the index's value), npairs, field/value pairs...,
# then the fields to delete.
_REPLACE = """
if redis.call('hget', KEYS[1], 'version') ~= ARGV[1] then return 0 end
local pairs_end = 3 + 2 * tonumber(ARGV[3])
redis.call('hset', KEYS[1], unpack(ARGV, 4, pairs_end))
if #ARGV > pairs_end then redis.call('hdel', KEYS[1], unpack(ARGV, pairs_end + 1)) end
local ttl = redis.call('ttl', KEYS[1])
if KEYS[2] ~= '' and KEYS[2] ~= KEYS[3] then redis.call('del', KEYS[2]) end
if KEYS[3] ~= '' and ttl > 0 then redis.call('set', KEYS[3], ARGV[2], 'EX', ttl) end
if redis.call('hget', KEYS[1], 'version') ~= ARGV[1] then redis.call('publish', KEYS[4], '1') end
return 1
"""

# domain.flow.poll, made atomic in one round trip; keep the two in step (the contract tests
# run the same cases against both). KEYS: flow, channel. ARGV: now, client_id, secret hash,
# family_id, slow-down step. Returns {outcome, HGETALL...}.
_POLL = """
local f = KEYS[1]
if redis.call('exists', f) == 0 then return {'unknown'} end
local h = redis.call('hmget', f, 'client_id', 'client_secret_hash', 'state', 'expires_at',
                     'interval', 'last_poll_at')
local now = tonumber(ARGV[1])
local outcome
if h[1] ~= ARGV[2] then
  outcome = 'wrong_client'
elseif h[2] ~= ARGV[3] then
  -- Both sides are SHA-256 digests of a 256-bit secret: an early-exit compare leaks nothing usable.
  outcome = 'bad_secret'
elseif h[3] == 'redeemed' then
  if redis.call('hget', f, 'issued') == '1' then outcome = 'replay' else outcome = 'claimed' end
elseif now >= tonumber(h[4]) then
  outcome = 'expired'
elseif h[3] == 'denied' then
  outcome = 'denied'
elseif h[3] == 'approved' then
  redis.call('hset', f, 'state', 'redeemed', 'family_id', ARGV[4], 'last_poll_at', ARGV[1])
  redis.call('hincrby', f, 'version', 1)
  redis.call('publish', KEYS[2], '1')
  outcome = 'redeem'
elseif h[6] and now - tonumber(h[6]) < tonumber(h[5]) then
  redis.call('hincrby', f, 'interval', ARGV[5])
  outcome = 'slow_down'
else
  redis.call('hset', f, 'last_poll_at', ARGV[1])
  outcome = 'pending'
end
local result = redis.call('hgetall', f)
table.insert(result, 1, outcome)
return result
"""

# KEYS: flow. ARGV: family_id.
_FINISH = """
local h = redis.call('hmget', KEYS[1], 'state', 'family_id', 'issued')
if h[1] ~= 'redeemed' or h[2] ~= ARGV[1] or h[3] == '1' then return 0 end
redis.call('hset', KEYS[1], 'issued', '1')
return 1
"""

# KEYS: flow, channel. ARGV: family_id.
_UNDO = """
local h = redis.call('hmget', KEYS[1], 'state', 'family_id', 'issued')
if h[1] ~= 'redeemed' or h[2] ~= ARGV[1] or h[3] == '1' then return 0 end
redis.call('hset', KEYS[1], 'state', 'approved')
redis.call('hdel', KEYS[1], 'family_id')
redis.call('hincrby', KEYS[1], 'version', 1)
redis.call('publish', KEYS[2], '1')
return 1
"""


def _encode(flow: Flow) -> dict[str, str]:
    fields: dict[str, str] = {}
    for field in dataclasses.fields(flow):
        value = getattr(flow, field.name)
        if value is None:
            continue
        if isinstance(value, bool):
            fields[field.name] = "1" if value else "0"
        elif isinstance(value, float):
            fields[field.name] = repr(value)
        else:
            fields[field.name] = str(value)
    return fields


def _decode(raw: dict[bytes, bytes] | dict[str, str]) -> Flow | None:
    if not raw:
        return None
    data = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Flow):
        text = data.get(field.name)
        if text is None:
            continue
        if field.name in _INT_FIELDS:
            values[field.name] = int(text)
        elif field.name in _FLOAT_FIELDS:
            values[field.name] = float(text)
        elif field.name == "issued":
            values[field.name] = text == "1"
        elif field.name == "state":
            values[field.name] = FlowState(text)
        else:
            values[field.name] = text
    return Flow(**values)


class RedisFlowStore:
    """Flow state in Redis; safe for many server processes."""

    def __init__(self, client: redis.Redis, prefix: str = "authserver:") -> None:
        self._redis = client
        self._prefix = prefix
        self._create = client.register_script(_CREATE)
        self._replace = client.register_script(_REPLACE)
        self._poll = client.register_script(_POLL)
        self._finish = client.register_script(_FINISH)
        self._undo = client.register_script(_UNDO)

    def _flow_key(self, device_code_hash: str) -> str:
        return f"{self._prefix}flow:{device_code_hash}"

    def _channel(self, device_code_hash: str) -> str:
        return f"{self._prefix}ev:{device_code_hash}"

    def _confirm_key(self, confirm_token_hash: str | None) -> str:
        return f"{self._prefix}ct:{confirm_token_hash}" if confirm_token_hash else ""

    def create(self, flow: Flow) -> bool:
        ttl = int(flow.expires_at - flow.created_at) + CLEANUP_GRACE
        args: list[str | int] = [ttl, flow.device_code_hash]
        for key, value in _encode(flow).items():
            args += [key, value]
        keys = [self._flow_key(flow.device_code_hash), f"{self._prefix}uc:{flow.user_code_hash}"]
        return bool(self._create(keys=keys, args=args))

    def get(self, device_code_hash: str) -> Flow | None:
        return _decode(self._redis.hgetall(self._flow_key(device_code_hash)))  # type: ignore[arg-type]

    def _get_via(self, index_key: str) -> Flow | None:
        device_code_hash = self._redis.get(index_key)
        if device_code_hash is None:
            return None
        return self.get(device_code_hash.decode())  # type: ignore[union-attr]

    def find_by_user_code(self, user_code_hash: str) -> Flow | None:
        return self._get_via(f"{self._prefix}uc:{user_code_hash}")

    def find_by_confirm_token(self, confirm_token_hash: str) -> Flow | None:
        return self._get_via(self._confirm_key(confirm_token_hash))

    def replace(self, old: Flow, new: Flow) -> bool:
        encoded = {k: v for k, v in _encode(new).items() if k not in POLL_OWNED_FIELDS}
        removed = [
            f.name
            for f in dataclasses.fields(new)
            if getattr(new, f.name) is None and f.name not in POLL_OWNED_FIELDS
        ]
        args: list[str | int] = [str(old.version), new.device_code_hash, len(encoded)]
        for key, value in encoded.items():
            args += [key, value]
        args += removed
        keys = [
            self._flow_key(old.device_code_hash),
            self._confirm_key(old.confirm_token_hash),
            self._confirm_key(new.confirm_token_hash),
            self._channel(old.device_code_hash),
        ]
        return bool(self._replace(keys=keys, args=args))

    def poll(
        self,
        device_code_hash: str,
        now: float,
        *,
        client_id: str,
        client_secret_hash: str,
        family_id: str,
    ) -> PollResult:
        reply = self._poll(
            keys=[self._flow_key(device_code_hash), self._channel(device_code_hash)],
            args=[repr(now), client_id, client_secret_hash, family_id, SLOW_DOWN_STEP],
        )
        outcome = PollOutcome(reply[0].decode())
        flat = reply[1:]
        flow = _decode(dict(zip(flat[::2], flat[1::2], strict=True)))
        return PollResult(outcome, flow)

    def finish_redemption(self, device_code_hash: str, family_id: str) -> None:
        self._finish(keys=[self._flow_key(device_code_hash)], args=[family_id])

    def undo_redemption(self, device_code_hash: str, family_id: str) -> None:
        self._undo(
            keys=[self._flow_key(device_code_hash), self._channel(device_code_hash)],
            args=[family_id],
        )

    def wait_for_change(self, device_code_hash: str, version: int, timeout: float) -> Flow | None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self._channel(device_code_hash))
            deadline = time.monotonic() + timeout
            while True:
                # Read after subscribing, so a change between the two is never missed.
                current = self.get(device_code_hash)
                remaining = deadline - time.monotonic()
                if current is None or current.version != version or remaining <= 0:
                    return current
                pubsub.get_message(timeout=min(remaining, 1.0))
        finally:
            pubsub.close()
