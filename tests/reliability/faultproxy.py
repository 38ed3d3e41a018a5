"""A small TCP fault proxy for the reliability tests: sits between Fennel and Redis and can add
latency, swallow replies, black-hole new traffic, refuse connections, or cut every open
connection at once. Threads only (no event loop), so it works under any test code.

    with FaultProxy("127.0.0.1", redis_port) as proxy:
        app = App("x", redis_url=proxy.url)
        proxy.drop_replies = True   # requests reach Redis, replies are lost
        proxy.cut()                 # every open connection is closed now
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

__all__ = ["FaultProxy"]


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, password: str | None = None) -> None:
        self.target = (target_host, target_port)
        self.password = password
        #: seconds added before each chunk is forwarded, both ways
        self.latency = 0.0
        #: forward requests to Redis but throw its replies away
        self.drop_replies = False
        #: accept connections and read from them, but forward nothing either way
        self.blackhole = False
        #: close new connections at once
        self.refuse = False
        #: a network partition: nothing moves either way, new connections hang, and what was
        #: sent meanwhile waits in the kernel's buffers and arrives once it is lifted (as TCP
        #: retransmission would deliver it), unless a side gave up and closed first
        self.partitioned = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._conns: set[tuple[socket.socket, socket.socket | None]] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.cuts = 0
        self._lose: tuple[bytes, bytes | None] | None = None
        #: replies thrown away by :meth:`lose_reply`
        self.lost_replies = 0
        self._thread = threading.Thread(target=self._accept, daemon=True, name="faultproxy")

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

    def cut(self) -> int:
        """Close every open connection (both sides) now; returns how many were cut."""
        with self._lock:
            conns, self._conns = self._conns, set()
        for client, server in conns:
            for s in (client, server):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    with contextlib.suppress(OSError):
                        s.close()
        self.cuts += 1
        return len(conns)

    def lose_reply(self, request: bytes, reply: bytes | None = None) -> None:
        """Once: on a connection whose last request contained ``request``, throw away the
        next reply (that contains ``reply``, if given) and cut that connection. The request
        was executed by Redis; the client never hears so."""
        self._lose = (request, reply)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    # -- internals ------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server: socket.socket | None = None
        while self.partitioned and not self._closed:
            time.sleep(0.02)
        if not self.blackhole:
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                return
        pair = (client, server)
        with self._lock:
            self._conns.add(pair)
        try:
            self._pump(client, server)
        finally:
            with self._lock:
                self._conns.discard(pair)
            for s in (client, server):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()

    def _pump(self, client: socket.socket, server: socket.socket | None) -> None:
        socks = [client] if server is None else [client, server]
        armed = False
        while not self._closed:
            if self.partitioned:
                time.sleep(0.02)
                continue
            try:
                readable, _, _ = select.select(socks, [], [], 0.2)
            except (OSError, ValueError):
                return
            if self.partitioned:
                continue  # leave it in the buffers until the partition is lifted
            for s in readable:
                try:
                    data = s.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if server is None or self.blackhole:
                    continue  # swallowed
                lose = self._lose
                if s is client:
                    armed = lose is not None and lose[0] in data
                elif armed and lose is not None and (lose[1] is None or lose[1] in data):
                    self._lose = None
                    self.lost_replies += 1
                    return  # reply dropped, connection cut
                if self.latency:
                    time.sleep(self.latency)
                if s is server and self.drop_replies:
                    continue
                dest = server if s is client else client
                try:
                    dest.sendall(data)
                except OSError:
                    return
