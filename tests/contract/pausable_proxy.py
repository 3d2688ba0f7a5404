"""A TCP proxy that can pause: in front of a real server, it makes that server hang.

While paused it accepts connections and takes every byte, but delivers none either way: what a
server stopped with SIGSTOP looks like from the client (its kernel accepts and acknowledges,
nothing answers). `restore()` delivers what was held. The shared servers are never paused;
only the proxy a test started in front of them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class PausableProxy:
    """127.0.0.1:<port> forwarding to `upstream`; `pause()` / `restore()`; a context manager."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._passing = threading.Event()
        self._passing.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @classmethod
    def in_front_of(cls, url: str) -> PausableProxy:
        """A proxy to the host and port of `url` (a SQLAlchemy or redis:// URL)."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 0)

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def pause(self) -> None:
        self._passing.clear()

    def restore(self) -> None:
        self._passing.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = [self._listener, *self._sockets], []
        self._passing.set()  # pumps waiting to deliver wake up and find their sockets closed
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> PausableProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._upstream)
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._passing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self._passing.wait()  # paused meanwhile: hold what was read
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
