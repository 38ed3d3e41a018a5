"""Counting finished benchmark jobs from inside the worker, without touching the job's speed.

A no-op task calls :func:`hit`, which only appends a timestamp to a list (atomic under the
GIL, so thread-pool tasks need no lock). A daemon thread reports the count and the first and
last timestamps of this process to Redis every 10 ms over its own tiny RESP connection, so the
measured library's Redis client and event loop never see it::

    INCRBY fennel-bench:done <new>
    HSET   fennel-bench:proc:<pid> first <t> last <t> n <count>

Standard library only: it is imported by every peer's driver in that peer's own venv.
"""

from __future__ import annotations

import os
import socket
import threading
import time

PERIOD = 0.01
DONE_KEY = "fennel-bench:done"
PROC_PREFIX = "fennel-bench:proc:"

_stamps: list[float] = []
_reporter: threading.Thread | None = None
_guard = threading.Lock()


def _forget_parent() -> None:
    global _stamps, _reporter, _guard
    _stamps, _reporter, _guard = [], None, threading.Lock()


os.register_at_fork(after_in_child=_forget_parent)


class Resp:
    """Just enough of RESP2 to send commands and read their replies."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, *commands: tuple[object, ...]) -> list[object]:
        out = []
        for words in commands:
            out.append(b"*%d\r\n" % len(words))
            for w in words:
                b = w if isinstance(w, bytes) else str(w).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return [self._reply() for _ in commands]

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                self.buf += chunk
            data, self.buf = self.buf[:size], self.buf[size + 2:]
            return data
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise ValueError(f"bad RESP line {line!r}")


def redis_address() -> tuple[str, int]:
    return (os.environ.get("FENNEL_BENCH_REDIS_HOST", "127.0.0.1"),
            int(os.environ["FENNEL_BENCH_REDIS_PORT"]))


def _report(stamps: list[float]) -> None:
    conn: Resp | None = None
    sent = 0
    key = PROC_PREFIX + str(os.getpid())
    while True:
        time.sleep(PERIOD)
        count = len(stamps)
        if count == sent:
            continue
        try:
            if conn is None:
                conn = Resp(*redis_address())
            conn.send(("INCRBY", DONE_KEY, count - sent),
                      ("HSET", key, "first", repr(stamps[0]), "last", repr(stamps[count - 1]),
                       "n", count))
            sent = count
        except OSError:
            conn = None  # try again next period


def hit() -> None:
    """Record one finished job (called by the benchmark's no-op tasks)."""
    global _reporter
    _stamps.append(time.time())
    if _reporter is None:
        with _guard:
            if _reporter is None:
                _reporter = threading.Thread(target=_report, args=(_stamps,), daemon=True,
                                             name="fennel-bench-tally")
                _reporter.start()
