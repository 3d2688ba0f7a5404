"""A trivial HTTP server that answers every request at once with one canned JSON body.

Measuring the load generator: each scenario's wrk script is run against this stub (pinned
to the server's core) to show how many requests per second the generator sustains on its
own core, far above what the real server is measured at. The body holds every field any
script reads, so the scripts take their full paths (a login runs all four steps).

    python -m bench.stub PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

_BODY = json.dumps(
    {
        "device_code": "stub-device-code-0000000000000000000000000000",
        "user_code": "BCDF-GHJK",
        "verification_uri_complete": "http://127.0.0.1/device?user_code=BCDF-GHJK",
        "interval": 1,
        "confirm_token": "stub-confirm-token-000000000000000000000000",
        "status": "approved",
        "access_token": "stub.access.token",
        "token_type": "Bearer",
    }
).encode()
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class _Stub(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        answers = 0
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self._buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end >= 0 else None])
            if len(self._buffer) < end + 4 + length:
                break
            self._buffer = self._buffer[end + 4 + length :]
            answers += 1
        if answers and self._transport is not None:
            self._transport.write(_RESPONSE * answers)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Stub, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
