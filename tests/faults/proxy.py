"""A fault-injecting TCP proxy: put it between a server and a dependency, then call a fault.

    proxy = FaultProxy(upstream_port=redis.port).start()
    ...server uses 127.0.0.1:proxy.port...
    proxy.pause()      # hold data both ways; connections stay open (like SIGSTOP, but selective)
    proxy.restore()    # deliver what was held, pass everything again

Faults: `pause`, `delay(ms)`, `drop` (reset every connection, reset new ones at once),
`blackhole` (accept, read, never answer; the connections that lost data are reset on
`restore`), `hold_after(*patterns)` (pass until those bytes went through in that order, then
pause: "the commit reached the database, its answer is lost"), `restore`.
`wait_held` tells the test that a request is stuck in the proxy, i.e. that the server is in
the middle of exactly the step that uses this dependency.

Threads, two per proxied connection: the servers under test keep small pools, so that is a few
dozen threads at most, and blocking code is easy to follow.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

UP = "up"  # client -> upstream (requests)
DOWN = "down"  # upstream -> client (answers)


class Fault(enum.Enum):
    """What the proxy does with data right now."""

    PASS = "pass"
    PAUSE = "pause"
    DELAY = "delay"
    DROP = "drop"
    BLACKHOLE = "blackhole"


@dataclass(eq=False)
class Link:
    """One proxied connection: the client's socket and ours to the upstream."""

    client: socket.socket
    upstream: socket.socket
    peer: tuple[str, int]  # the client's address: the process behind it holds this port
    held: set[str] = field(default_factory=set)  # directions holding a chunk right now
    lost_data: bool = False  # a blackhole swallowed bytes: the stream is broken
    closed: bool = False


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed peer or a firewall reject does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() on it
    sock.close()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 to `upstream_host:upstream_port`, with faults as calls."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._cond = threading.Condition()
        self._fault = Fault.PASS
        self._delay = 0.0
        self._trigger: tuple[list[bytes], str] | None = None
        self._links: set[Link] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._closing = False
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self.accepted = 0  # connections accepted so far

    def start(self) -> FaultProxy:
        self._acceptor.start()
        return self

    @property
    def fault(self) -> Fault:
        return self._fault

    # --- faults -----------------------------------------------------------------------------
    def pause(self) -> None:
        """Hold every chunk, both ways, on every connection; accept new ones and hold them."""
        self._set(Fault.PAUSE)

    def delay(self, ms: float) -> None:
        """Forward each chunk `ms` milliseconds late, both ways."""
        self._set(Fault.DELAY, delay=ms / 1000)

    def drop(self) -> None:
        """Reset every connection now, and every new one as soon as it is accepted."""
        self._set(Fault.DROP)
        with self._cond:
            links = list(self._links)
        for link in links:
            self._close(link, reset=True)

    def blackhole(self) -> None:
        """Accept and read everything, answer nothing (packets lost, no RST)."""
        self._set(Fault.BLACKHOLE)

    def hold_after(self, *patterns: bytes, direction: str = UP) -> None:
        """Pass until `patterns` have gone `direction`, in this order (e.g. b"INSERT INTO t",
        then b"COMMIT"), then pause everything: the last one arrives, its answer is held."""
        with self._cond:
            self._trigger = (list(patterns), direction)

    def restore(self) -> None:
        """Pass everything again: held data goes on, connections a blackhole broke are reset."""
        with self._cond:
            broken = [link for link in self._links if link.lost_data]
        for link in broken:
            self._close(link, reset=True)
        self._set(Fault.PASS)

    def _set(self, fault: Fault, delay: float = 0.0) -> None:
        with self._cond:
            self._fault, self._delay, self._trigger = fault, delay, None
            self._cond.notify_all()

    # --- what the test can observe ----------------------------------------------------------
    def held(self, direction: str | None = None) -> list[Link]:
        """Connections holding a chunk (in `direction`, or either) at this moment."""
        with self._cond:
            return [
                link
                for link in self._links
                if link.held and (direction is None or direction in link.held)
            ]

    def wait_held(self, timeout: float, direction: str | None = None) -> list[Link]:
        """Wait until some connection holds a chunk; [] if none did within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                links = [
                    link
                    for link in self._links
                    if link.held and (direction is None or direction in link.held)
                ]
                remaining = deadline - time.monotonic()
                if links or remaining <= 0:
                    return links
                self._cond.wait(remaining)

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        with self._cond:
            return len(self._links)

    # --- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting and reset every connection."""
        self._closing = True
        self._set(Fault.DROP)
        _reset(self._listener)
        with self._cond:
            links = list(self._links)
        for link in links:
            self._close(link, reset=True)
        self._acceptor.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                client, peer = self._listener.accept()
            except OSError:
                return  # the listener was closed
            self.accepted += 1
            if self._fault is Fault.DROP:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)  # the dependency is down: the client sees its connection reset
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = Link(client, upstream, (peer[0], peer[1]))
            with self._cond:
                self._links.add(link)
            for src, dst, direction in ((client, upstream, UP), (upstream, client, DOWN)):
                threading.Thread(
                    target=self._pump, args=(link, src, dst, direction), daemon=True
                ).start()

    def _pump(self, link: Link, src: socket.socket, dst: socket.socket, direction: str) -> None:
        reset = False
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                reset = True  # the peer reset (e.g. a killed dependency): pass the reset on
                break
            if not data:
                break
            verdict = self._gate(link, direction, data)
            if verdict is None:
                reset = True
                break
            if not verdict:
                continue  # swallowed by a blackhole
            try:
                dst.sendall(data)
            except OSError:
                reset = True
                break
        self._close(link, reset=reset)

    def _gate(self, link: Link, direction: str, data: bytes) -> bool | None:
        """Wait while paused; True: forward `data`, False: swallow it, None: drop the link."""
        with self._cond:
            while self._fault is Fault.PAUSE and not link.closed:
                link.held.add(direction)
                self._cond.notify_all()  # wake wait_held()
                self._cond.wait()
            link.held.discard(direction)
            if link.closed or self._fault is Fault.DROP:
                return None
            if self._fault is Fault.BLACKHOLE:
                link.lost_data = True
                return False
            delay = self._delay if self._fault is Fault.DELAY else 0.0
            if self._trigger is not None and self._trigger[1] == direction:
                patterns, position = self._trigger[0], 0
                while patterns and (found := data.find(patterns[0], position)) >= 0:
                    position = found + len(patterns.pop(0))
                if not patterns:
                    # This chunk still goes through; everything after it is held.
                    self._fault, self._trigger = Fault.PAUSE, None
                    self._cond.notify_all()
        if delay:
            time.sleep(delay)
        return True

    def _close(self, link: Link, *, reset: bool) -> None:
        with self._cond:
            if link.closed:
                return
            link.closed = True
            link.held.clear()
            self._links.discard(link)
            self._cond.notify_all()
        for sock in (link.client, link.upstream):
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
