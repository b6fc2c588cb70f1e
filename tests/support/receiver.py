"""A local webhook receiver: records every POST; can be told to fail the next N, to answer with
another status, or to hold every answer until released (a slow endpoint)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from tests.support.wait import eventually


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


class Receiver:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.failures_left = 0
        self.status = 204
        self.released = threading.Event()
        self.released.set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.released.wait(60)
                with receiver.lock:
                    status = 500 if receiver.failures_left > 0 else receiver.status
                    receiver.failures_left = max(0, receiver.failures_left - 1)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.deliveries.append(Delivery(headers, body, status, time.time()))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", "http://127.0.0.1:1/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/escalations"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail_next(self, n: int) -> None:
        with self.lock:
            self.failures_left = n

    def succeeded(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.status < 300]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        """The successful deliveries, once there are at least ``count``."""
        eventually(lambda: len(self.succeeded()) >= count, f"fewer than {count} deliveries", timeout)
        return self.succeeded()

    def hold(self) -> None:
        """Answer nothing until ``release`` (requests wait, as at a slow receiver)."""
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
