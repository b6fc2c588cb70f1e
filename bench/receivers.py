"""Webhook receivers for bench/webhooks.py, in a process of their own: one asyncio HTTP/1.1 server per
given delay (seconds before each answer), keep-alive, recording each POST's webhook-id and latency
(arrival minus the message's timestamp). Small on purpose: thread-per-connection receivers in the
benchmark's own process took a core at 1,000 webhooks/s, on a machine that has two.

    python bench/receivers.py 0 0 2      # prints one port per line, then serves until killed

``GET /stats`` answers ``{"ids": [...], "latencies_ms": [...]}``; ``GET /reset`` forgets them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from datetime import datetime

ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class Receiver(asyncio.Protocol):
    def __init__(self, delay: float, ids: list[str], latencies: list[float]) -> None:
        self.delay = delay
        self.ids = ids
        self.latencies = latencies
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1")
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in head.split("\r\n")[1:])}
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            self.handle(head.split(" ", 2), headers, body)

    def handle(self, request: list[str], headers: dict[str, str], body: bytes) -> None:
        assert self.transport is not None
        if request[0] == "GET":
            if request[1] == "/reset":
                self.ids.clear()
                self.latencies.clear()
            stats = json.dumps({"ids": self.ids, "latencies_ms": self.latencies}).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(stats) + stats)
            return
        arrived = time.time()
        start = body.find(b'"timestamp":"') + 13
        sent = datetime.fromisoformat(body[start : body.find(b'"', start)].decode()).timestamp()
        self.ids.append(headers["webhook-id"])
        self.latencies.append((arrived - sent) * 1000)
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.transport.write, ANSWER)
        else:
            self.transport.write(ANSWER)


async def main(delays: list[float]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for delay in delays:
        ids: list[str] = []
        latencies: list[float] = []
        server = await loop.create_server(functools.partial(Receiver, delay, ids, latencies), "127.0.0.1", 0)
        servers.append(server)
        print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main([float(d) for d in sys.argv[1:]]))
