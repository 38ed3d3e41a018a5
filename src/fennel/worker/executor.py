"""Where a task's function runs: on the worker's loop (async tasks), in a thread pool, or in a
process pool (sync tasks), with the per-task time limit of each.

``run()`` returns the value or raises the task's exception. A time limit raises
:class:`TaskTimeout`: an async task is cancelled, a process-pool child is killed and replaced,
and a thread (which cannot be stopped) is abandoned, its late result discarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from fennel.task import Task
from fennel.worker.processes import ProcessPool

__all__ = ["Executor", "TaskTimeout"]


class TaskTimeout(Exception):
    """The task ran longer than its ``timeout``."""


class Executor:
    def __init__(self, pool: str, size: int, app_spec: str | None) -> None:
        self.kind = pool
        self._size = size
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="fennel-task"
        )
        self._processes: ProcessPool | None = None
        if pool == "process":
            if app_spec is None:
                raise ValueError("a process pool needs the app's 'module:attribute' spec")
            self._processes = ProcessPool(size, app_spec)

    async def start(self) -> None:
        if self._processes is not None:
            await self._processes.start()

    async def run(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
                  timeout: float | None, envelope: bytes) -> Any:
        if task.is_async:
            coro = task.fn(*args, **kwargs)
            if timeout is None:
                return await coro
            try:
                return await asyncio.wait_for(_contained(coro), timeout)
            except asyncio.TimeoutError:
                raise TaskTimeout(f"{task.name} ran longer than {timeout}s and was "
                                  "cancelled") from None
            except _Escaped as esc:
                # Raised here, in the job's own task, the runner records it as a failure.
                raise esc.original from None
        if self._processes is not None:
            return await self._processes.run(task.name, envelope, timeout)
        try:
            return await self._run_in_thread(task, args, kwargs, timeout)
        except _Escaped as esc:
            raise esc.original from None

    async def _run_in_thread(self, task: Task[Any, Any], args: list[Any],
                             kwargs: dict[str, Any], timeout: float | None) -> Any:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        if timeout is None:
            return await loop.run_in_executor(
                self._threads, functools.partial(ctx.run, _in_thread, task.fn, *args, **kwargs))
        # The time limit counts from when a thread picks the job up, not from submission:
        # time spent waiting for a free thread is not the task's.
        began: asyncio.Future[None] = loop.create_future()

        def call() -> Any:
            loop.call_soon_threadsafe(_resolve, began)
            return ctx.run(_in_thread, task.fn, *args, **kwargs)

        fut = loop.run_in_executor(self._threads, call)
        try:
            await asyncio.wait({began, fut}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        finally:
            began.cancel()
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._abandon_threads()
            raise TaskTimeout(f"{task.name} ran longer than {timeout}s; its thread was "
                              "abandoned and any late result will be discarded") from None

    def _abandon_threads(self) -> None:
        """A thread over its time limit cannot be stopped and keeps its pool slot: give new
        jobs a fresh pool, so abandoned threads never starve the worker. The old pool lets
        its running threads finish (their results are discarded) and then goes away."""
        old = self._threads
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._size, thread_name_prefix="fennel-task"
        )
        old.shutdown(wait=False)

    async def aclose(self, wait: bool) -> None:
        self._threads.shutdown(wait=wait, cancel_futures=True)
        if self._processes is not None:
            await self._processes.aclose()


class _Escaped(Exception):
    """Carries a KeyboardInterrupt or SystemExit out of the task that ``wait_for`` wraps
    around a coroutine: raised there as such, asyncio would re-raise it out of the event loop
    and stop the worker. (And a GeneratorExit out of any task or thread: see _in_thread.)"""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


async def _contained(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await coro
    except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
        raise _Escaped(exc) from exc


def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Calls ``fn`` in a pool thread. GeneratorExit must not come back through the future:
    thrown into the awaiting task, it would close the job's coroutines, which then could
    not await the recording of its outcome."""
    try:
        return fn(*args, **kwargs)
    except GeneratorExit as exc:
        raise _Escaped(exc) from exc


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
