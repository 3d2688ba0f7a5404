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
    SETTLED_STATE,
    SLOW_DOWN_STEP,
    ClaimSettlement,
    Flow,
    FlowState,
    PollOutcome,
    PollResult,
)
from authserver.storage.redis_store.scripts import load_script

_INT_FIELDS = {"interval", "version", "match_number"}
_FLOAT_FIELDS = {
    "created_at",
    "expires_at",
    "last_poll_at",
    "confirm_expires_at",
    "approved_at",
    "lease_until",
}


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
        elif field.name in ("issued", "rotating_qr"):
            values[field.name] = text == "1"
        elif field.name == "state":
            values[field.name] = FlowState(text)
        else:
            values[field.name] = text
    return Flow(**values)


class RedisFlowStore:
    """Flow state in Redis; safe for many server processes. Every call is one round trip."""

    def __init__(self, client: redis.Redis, prefix: str = "authserver:") -> None:
        self._redis = client
        self._prefix = prefix
        self._create = client.register_script(load_script("create"))
        self._get_via = client.register_script(load_script("get_via"))
        self._replace = client.register_script(load_script("replace"))
        self._poll = client.register_script(load_script("poll"))
        self._settle = client.register_script(load_script("settle"))

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

    def _find(self, index_key: str) -> Flow | None:
        flat = self._get_via(keys=[index_key], args=[f"{self._prefix}flow:"])
        return _decode(dict(zip(flat[::2], flat[1::2], strict=True)))

    def find_by_user_code(self, user_code_hash: str) -> Flow | None:
        return self._find(f"{self._prefix}uc:{user_code_hash}")

    def find_by_confirm_token(self, confirm_token_hash: str) -> Flow | None:
        return self._find(self._confirm_key(confirm_token_hash))

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
        lease: float,
        dpop_jkt: str | None = None,
    ) -> PollResult:
        reply = self._poll(
            keys=[self._flow_key(device_code_hash), self._channel(device_code_hash)],
            args=[
                repr(now),
                client_id,
                client_secret_hash,
                repr(float(lease)),
                SLOW_DOWN_STEP,
                dpop_jkt or "",
            ],
        )
        outcome = PollOutcome(reply[0].decode())
        if len(reply) == 1:
            return PollResult(outcome, None)
        flat = reply[1:]
        return PollResult(outcome, _decode(dict(zip(flat[::2], flat[1::2], strict=True))))

    def settle_claim(
        self, device_code_hash: str, claim: int, settlement: ClaimSettlement, family_id: str = ""
    ) -> bool:
        keys = [self._flow_key(device_code_hash), self._channel(device_code_hash)]
        state = SETTLED_STATE[settlement].value
        return bool(self._settle(keys=keys, args=[str(claim), settlement.value, state, family_id]))

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
