"""TCP proxies in front of Redis, for faults a real network has and a test cannot otherwise make:

- ``CuttingProxy`` cuts a connection after Redis has run a command but before its reply reaches the
  client: the case where a client that retries would run a script twice.
- ``HoldingLink`` holds a replica's replication link: the replica falls behind on demand, and what it
  had not received when its primary died can be thrown away."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class _Proxy:
    """Accepts on a free port and pipes each connection to ``upstream_port``; ``forward`` decides,
    chunk by chunk, whether the chunk goes on (False cuts the connection)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def forward(self, downstream: bool) -> bool:
        """Called before each chunk is passed on; ``downstream``: from Redis to the client."""
        return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                return
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if not self.forward(downstream):
                    break
                dst.sendall(data)
        except OSError:
            pass
        _close(src, dst)

    def close(self) -> None:
        self.listener.close()


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()


class CuttingProxy(_Proxy):
    def __init__(self, upstream_port: int) -> None:
        self.replies_before_cut: int | None = None  # None: pass everything through
        self.requests = 0  # request chunks from clients: one per round trip
        self.lock = threading.Lock()
        super().__init__(upstream_port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut_after(self, replies: int | None) -> None:
        """Let ``replies`` more reply chunks through, then cut the connection that gets the next one.

        One cut only: a client that reconnects and retries gets through, which is what makes a retry
        visible (it would run the command a second time)."""
        with self.lock:
            self.replies_before_cut = replies

    def forward(self, downstream: bool) -> bool:
        with self.lock:
            if not downstream:
                self.requests += 1
                return True
            if self.replies_before_cut is None:
                return True
            if self.replies_before_cut == 0:
                self.replies_before_cut = None
                return False
            self.replies_before_cut -= 1
            return True

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class HoldingLink(_Proxy):
    """A replication link that can be held: a replica connects to the primary through it, and while it
    is held what the primary sends waits here (the replica falls behind, as over a congested network).
    ``drop`` cuts the link and throws away what was held: what a replica never received when its primary
    died. (Stopping the replica process would not do: the kernel would still take the data for it.)"""

    def __init__(self, upstream_port: int) -> None:
        self.held = threading.Event()
        self.released = threading.Condition()
        super().__init__(upstream_port)

    def hold(self) -> None:
        self.held.set()

    def release(self) -> None:
        with self.released:
            self.held.clear()
            self.released.notify_all()

    def drop(self) -> None:
        self.close()
        _close(*self.sockets)
        self.release()

    def forward(self, downstream: bool) -> bool:
        if downstream:
            with self.released:
                self.released.wait_for(lambda: not self.held.is_set())
        return True
