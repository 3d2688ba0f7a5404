"""The embedded flow store: in-process, for the single-process default set-up."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from authserver.domain import flow as flows
from authserver.domain.flow import (
    CLEANUP_GRACE,
    POLL_OWNED_FIELDS,
    ClaimSettlement,
    Flow,
    PollResult,
)

PURGE_EVERY = 10.0


class EmbeddedFlowStore:
    """Flows in a dict guarded by one lock; only correct within one process.

    `authserver serve` therefore runs one worker process when this store is configured.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._flows: dict[str, Flow] = {}
        self._by_user_code: dict[str, str] = {}
        self._by_confirm: dict[str, str] = {}
        self._next_purge = 0.0

    def _purge(self) -> None:
        # Clean-up only: expiry itself is decided by the domain with an injected clock. At most
        # every few seconds, so a flood of new flows does not make each create() a full scan.
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_EVERY
        cutoff = time.time() - CLEANUP_GRACE
        for key in [k for k, f in self._flows.items() if f.expires_at < cutoff]:
            gone = self._flows.pop(key)
            self._by_user_code.pop(gone.user_code_hash, None)
            if gone.confirm_token_hash:
                self._by_confirm.pop(gone.confirm_token_hash, None)

    def create(self, flow: Flow) -> bool:
        with self._lock:
            self._purge()
            if flow.user_code_hash in self._by_user_code:
                return False
            self._flows[flow.device_code_hash] = flow
            self._by_user_code[flow.user_code_hash] = flow.device_code_hash
            return True

    def get(self, device_code_hash: str) -> Flow | None:
        with self._lock:
            return self._flows.get(device_code_hash)

    def find_by_user_code(self, user_code_hash: str) -> Flow | None:
        with self._lock:
            key = self._by_user_code.get(user_code_hash)
            return self._flows.get(key) if key else None

    def find_by_confirm_token(self, confirm_token_hash: str) -> Flow | None:
        with self._lock:
            key = self._by_confirm.get(confirm_token_hash)
            return self._flows.get(key) if key else None

    def _store(self, old: Flow, new: Flow) -> None:
        if old.confirm_token_hash and old.confirm_token_hash != new.confirm_token_hash:
            self._by_confirm.pop(old.confirm_token_hash, None)
        if new.confirm_token_hash:
            self._by_confirm[new.confirm_token_hash] = new.device_code_hash
        self._flows[new.device_code_hash] = new
        if new.version != old.version:
            self._changed.notify_all()

    def replace(self, old: Flow, new: Flow) -> bool:
        with self._lock:
            current = self._flows.get(old.device_code_hash)
            if current is None or current.version != old.version:
                return False
            kept = {name: getattr(current, name) for name in POLL_OWNED_FIELDS}
            self._store(current, dataclasses.replace(new, **kept))
            return True

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
        with self._lock:
            current = self._flows.get(device_code_hash)
            decision = flows.poll(
                current,
                now,
                client_id=client_id,
                client_secret_hash=client_secret_hash,
                lease=lease,
                dpop_jkt=dpop_jkt,
            )
            if current is not None and decision.flow is not None:
                self._store(current, decision.flow)
            return decision.result(current)

    def _apply(self, device_code_hash: str, change: Callable[[Flow], Flow | None]) -> bool:
        with self._lock:
            current = self._flows.get(device_code_hash)
            changed = change(current) if current else None
            if current is None or changed is None:
                return False
            self._store(current, changed)
            return True

    def settle_claim(
        self, device_code_hash: str, claim: int, settlement: ClaimSettlement, family_id: str = ""
    ) -> bool:
        return self._apply(
            device_code_hash, lambda f: flows.settle_claim(f, claim, settlement, family_id)
        )

    def wait_for_change(self, device_code_hash: str, version: int, timeout: float) -> Flow | None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                current = self._flows.get(device_code_hash)
                remaining = deadline - time.monotonic()
                if current is None or current.version != version or remaining <= 0:
                    return current
                self._changed.wait(remaining)
