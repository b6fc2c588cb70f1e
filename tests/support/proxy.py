"""A TCP proxy in front of Redis that can cut connections after Redis has run a command but before
its reply reaches the client: the case where a client that retries would run a script twice."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class CuttingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.replies_before_cut: int | None = None  # None: pass everything through
        self.requests = 0  # request chunks from clients: one per round trip
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut_after(self, replies: int | None) -> None:
        """Let ``replies`` more reply chunks through, then cut the connection that gets the next one.

        One cut only: a client that reconnects and retries gets through, which is what makes a retry
        visible (it would run the command a second time)."""
        with self.lock:
            self.replies_before_cut = replies

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, is_reply: bool) -> None:
        try:
            while data := src.recv(65536):
                if is_reply and self._should_cut():
                    break
                if not is_reply:
                    with self.lock:
                        self.requests += 1
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _should_cut(self) -> bool:
        with self.lock:
            if self.replies_before_cut is None:
                return False
            if self.replies_before_cut == 0:
                self.replies_before_cut = None
                return True
            self.replies_before_cut -= 1
            return False

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class HoldingLink:
    """A replication link that can be held: a replica connects to the primary through it, and while it
    is held what the primary sends waits here (the replica falls behind, as over a congested network).
    ``drop`` cuts the link and throws away what was held: what a replica never received when its primary
    died. (Stopping the replica process would not do: the kernel would still take the data for it.)"""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held = threading.Event()
        self.released = threading.Condition()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        self.held.set()

    def release(self) -> None:
        with self.released:
            self.held.clear()
            self.released.notify_all()

    def drop(self) -> None:
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.release()

    def _accept(self) -> None:
        while True:
            try:
                replica, _ = self.listener.accept()
                primary = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                return
            self.sockets += [replica, primary]
            threading.Thread(target=self._pipe, args=(replica, primary, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(primary, replica, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, holdable: bool) -> None:
        try:
            while data := src.recv(65536):
                if holdable:
                    with self.released:
                        self.released.wait_for(lambda: not self.held.is_set())
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
