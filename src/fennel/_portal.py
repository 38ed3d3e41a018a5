"""The background event-loop thread behind the sync facade.

One daemon thread per process runs an anyio event loop with a :class:`BlockingPortal`; every
sync call (``foo.delay()``, ``.get()``, ``gather``...) is a call through that portal, so the
broker, result and DLQ logic exist once, in asyncio. Calls from many threads at once share the
loop, and the broker coalesces what they send in the same loop turn into one round trip.

Fork-aware: a child process after ``fork`` starts its own loop thread on first use and never
touches the parent's connections.
"""

from __future__ import annotations

import asyncio
import asyncio.events as asyncio_events
import atexit
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from fennel.exceptions import SyncCallInEventLoop

__all__ = ["call", "ensure_may_block"]

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread_id: int | None = None

    def portal(self) -> BlockingPortal:
        portal = self._portal
        if portal is not None and self._pid == os.getpid():
            return portal
        with self._lock:
            if self._portal is None or self._pid != os.getpid():
                self._start()
            assert self._portal is not None
            return self._portal

    def _start(self) -> None:
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def main() -> None:
            async with BlockingPortal() as portal:
                box["portal"] = portal
                box["loop"] = asyncio.get_running_loop()
                ready.set()
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(main, backend="asyncio", backend_options=_backend_options())
            except BaseException as exc:  # pragma: no cover - surfaced to the caller below
                box["error"] = exc
                ready.set()

        # A daemon thread: an interpreter exiting with a sync app in use must never hang.
        thread = threading.Thread(target=run, name="fennel-loop", daemon=True)
        thread.start()
        ready.wait()
        if "error" in box:
            raise RuntimeError("Fennel could not start its event-loop thread") from box["error"]
        self._portal, self._thread, self._pid = box["portal"], thread, os.getpid()
        self.loop = box["loop"]
        self.thread_id = thread.ident

    def after_fork_in_child(self) -> None:
        # The parent's loop thread does not exist here; its lock may be held. Start afresh.
        self._lock = threading.Lock()
        self._portal = None
        self._thread = None
        self._pid = 0

    def stop(self) -> None:
        portal, thread = self._portal, self._thread
        if portal is None or thread is None or self._pid != os.getpid():
            return
        try:
            portal.start_task_soon(portal.stop, True)
        except RuntimeError:
            return
        thread.join(timeout=2.0)


def _backend_options() -> dict[str, Any]:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


_loop = _LoopThread()
os.register_at_fork(after_in_child=_loop.after_fork_in_child)
atexit.register(_loop.stop)


def stop() -> None:
    """Stop this process's loop thread (it restarts on the next call)."""
    _loop.stop()
    _loop.after_fork_in_child()


def loop() -> asyncio.AbstractEventLoop:
    """The loop thread's event loop (started on first use), for a sync call about to wait on
    it: refused in a thread that runs an event loop (see :func:`ensure_may_block`)."""
    ensure_may_block()
    _loop.portal()
    assert _loop.loop is not None
    return _loop.loop


def call(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``await fn(*args)`` on the loop thread and return its result (thread-safe).

    The portal owns the thread's lifetime; calls go straight to its loop with
    ``run_coroutine_threadsafe``, which costs a fraction of a full portal task per call.
    """
    the_loop = loop()
    future = asyncio.run_coroutine_threadsafe(_awaited(fn, *args), the_loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def ensure_may_block() -> None:
    """Refuse a sync call from a thread running an event loop, before it waits for anything.

    Blocking there freezes that loop (a worker running an ``async def`` task stops every
    other job, lease renewal and heartbeat) and on Fennel's own loop thread, which would
    have to serve the call, deadlocks the process.
    """
    running = asyncio_events._get_running_loop()
    if running is None:
        return
    own = threading.get_ident() == _loop.thread_id and _loop._pid == os.getpid()
    where = ("on Fennel's own event-loop thread (in a middleware hook or callback), where it "
             "would deadlock" if own else
             "from a thread running an event loop (inside an async def function, task or "
             "hook), where it would block that loop")
    raise SyncCallInEventLoop(
        f"A sync Fennel call was made {where}. Use the async API there: an app with "
        "interface='async' (await task.delay(...), await result.get()), result.aio() for an "
        "async handle of a sync app's job, fennel.client.aio for gather/wait/DLQ; or run the "
        "sync call in a worker thread with await asyncio.to_thread(...)."
    )


async def _awaited(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return await fn(*args)
