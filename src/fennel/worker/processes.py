"""A process pool that knows which job each child runs.

Each child is a spawned interpreter that imports the app (``module:attribute``) and runs one
job at a time, sent and answered as JSON bytes over a pipe: job data never goes through
pickle. Because the parent knows which child runs which job, a child that crashes
(``os._exit``, a segfault) fails exactly that job's attempt, and a job over its time limit
gets its child killed; in both cases a fresh child takes the slot and other jobs go on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import sys
import traceback
from multiprocessing.process import BaseProcess
from typing import Any

import orjson

__all__ = ["ChildDied", "ChildNotReady", "ProcessPool", "RemoteError"]


class ChildDied(Exception):
    """The child process running the job exited or was killed before answering."""


class RemoteError(Exception):
    """An exception raised by the task in a child process, as type name, args and traceback."""

    def __init__(self, type_name: str, args: list[Any], tb: str) -> None:
        super().__init__(*args)
        self.type_name = type_name
        self.remote_traceback = tb


#: seconds a new child may take to import the app before it is given up
_READY_TIMEOUT = 120.0


class ChildNotReady(Exception):
    """A process-pool child could not load the app in time (or died while loading it)."""


class _Child:
    def __init__(self, ctx: Any, app_spec: str) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn: multiprocessing.connection.Connection = parent
        self.process: BaseProcess = ctx.Process(
            target=_child_main, args=(child, app_spec, sys.path), daemon=True,
            name="fennel-child",
        )
        self.process.start()
        child.close()
        # Wait until the child has imported the app, so its start-up never counts against
        # the time limit of the first job it runs. A child that is not ready in time is not
        # kept: its late "ready" would be read as a job's reply, and every later reply on
        # that pipe would belong to the job before.
        ready = False
        if parent.poll(_READY_TIMEOUT):
            with contextlib.suppress(EOFError, OSError):
                ready = parent.recv_bytes() == b"ready"
        if not ready:
            self.kill()
            raise ChildNotReady(
                f"a process-pool child did not load the app {app_spec!r} within "
                f"{_READY_TIMEOUT:g} s (or died while loading it); it was killed, and the slot "
                "is started again when a job needs it. Check what the app module does at import.")

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.join(timeout=5)
        with contextlib.suppress(Exception):
            self.conn.close()


class ProcessPool:
    def __init__(self, size: int, app_spec: str) -> None:
        self._size = size
        self._app_spec = app_spec
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[_Child] | None = None
        self._all: set[_Child] = set()
        #: slots whose child was killed by a cancelled job and not replaced yet
        self._missing = 0
        # Starting and killing children blocks, so it runs in threads; ours, not the loop's
        # default executor, so that aclose() leaves no thread behind in an embedding app.
        self._spawner = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(size, 4)), thread_name_prefix="fennel-spawn")

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        loop = asyncio.get_running_loop()
        children = await asyncio.gather(*(
            loop.run_in_executor(self._spawner, _Child, self._ctx, self._app_spec)
            for _ in range(self._size)
        ), return_exceptions=True)
        for child in children:
            if isinstance(child, _Child):
                self._all.add(child)
                self._idle.put_nowait(child)
            elif isinstance(child, Exception):
                self._missing += 1  # started again when a job needs the slot
            else:
                raise child

    async def run(self, task_name: str, envelope: bytes, timeout: float | None) -> Any:
        assert self._idle is not None, "ProcessPool.start() was not awaited"
        if self._idle.empty() and self._missing:
            # A cancelled job left its slot empty: start its child now that one is needed.
            self._missing -= 1
            try:
                await self._spawn()
            except BaseException:
                self._missing += 1
                raise
        child = await self._idle.get()
        healthy = False
        try:
            child.conn.send_bytes(orjson.dumps([task_name, orjson.loads(envelope)]))
            reply = await asyncio.wait_for(self._recv(child), timeout)
            healthy = True
        except asyncio.TimeoutError:
            from fennel.worker.executor import TaskTimeout

            raise TaskTimeout(f"{task_name} ran longer than {timeout}s; its process was "
                              "killed") from None
        except (EOFError, OSError, BrokenPipeError):
            code = child.process.exitcode
            raise ChildDied(f"the process running {task_name} died (exit code {code})") from None
        except asyncio.CancelledError:
            # Cancelled (the worker is shutting down): kill the child without waiting for a
            # fresh one, which a stopping worker would only start to kill again.
            self._all.discard(child)
            self._missing += 1
            with contextlib.suppress(Exception):
                child.process.kill()
            with contextlib.suppress(RuntimeError):  # the pool is closed already
                self._spawner.submit(child.kill)
            raise
        finally:
            if healthy:
                self._idle.put_nowait(child)
            elif child in self._all:
                await self._replace(child)
        kind, payload = orjson.loads(reply)
        if kind == "ok":
            return payload
        raise RemoteError(payload["type"], payload["args"], payload["traceback"])

    async def _recv(self, child: _Child) -> bytes:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        fd = child.conn.fileno()

        def readable() -> None:
            loop.remove_reader(fd)
            if fut.done():
                return
            try:
                fut.set_result(child.conn.recv_bytes())
            except BaseException as exc:
                fut.set_exception(exc)

        loop.add_reader(fd, readable)
        try:
            return await fut
        finally:
            loop.remove_reader(fd)

    async def _replace(self, child: _Child) -> None:
        self._all.discard(child)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._spawner, child.kill)
        try:
            await self._spawn()
        except Exception:
            # No process could be started (no file descriptors or memory left): the slot is
            # started again by the next job that needs it, never lost for good.
            self._missing += 1
            raise

    async def _spawn(self) -> None:
        assert self._idle is not None
        loop = asyncio.get_running_loop()
        fresh = await loop.run_in_executor(self._spawner, _Child, self._ctx, self._app_spec)
        self._all.add(fresh)
        self._idle.put_nowait(fresh)

    async def aclose(self) -> None:
        for child in list(self._all):
            child.kill()
        self._all.clear()
        # Not waited for: a child being started may take long to import the app.
        self._spawner.shutdown(wait=False, cancel_futures=True)


def _child_main(conn: multiprocessing.connection.Connection, app_spec: str,
                path: list[str]) -> None:
    import signal

    # The supervisor handles shutdown; children must not die of the terminal's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path[:] = path
    from fennel.cli._loader import load_app
    from fennel.cli._logging import configure_child
    from fennel.job import encode_value

    configure_child()
    app = load_app(app_spec)
    conn.send_bytes(b"ready")
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(0)
        task_name, env = orjson.loads(data)
        try:
            task = app.tasks[task_name]
            value = task.fn(*env["args"], **env["kwargs"])
            if asyncio.iscoroutine(value):
                value = asyncio.run(value)
            # As strict as the other pools: NaN, datetimes and the like fail the attempt.
            reply = b'["ok",' + encode_value(value, f"task {task_name!r}") + b"]"
        except BaseException as exc:
            from fennel.job import error_record

            record = error_record(exc, 0, traceback.format_exc())
            reply = orjson.dumps(["error", record])
        conn.send_bytes(reply)
