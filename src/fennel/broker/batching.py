"""Batching and time limits for the broker's calls to Redis.

- :class:`Coalescer`: script calls (and plain commands) made in one event-loop turn, by
  coroutines or by other threads, go to Redis as one pipelined round trip;
- :class:`SuccessBatch`: the successes recorded in one loop turn become one
  ``succeed_many`` script call;
- :class:`Deadline`: the time limit around one call (instead of redis-py's per-send
  ``asyncio.wait_for``, which costs a task per command).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis import exceptions as rexc

from fennel.keys import GROUP

if TYPE_CHECKING:
    from fennel.broker.redis import Broker

__all__ = ["Coalescer", "Deadline", "SuccessBatch"]

Encodable = bytes | str | int | float

if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:  # pragma: no cover - redis-py depends on async-timeout on Python 3.10
    from async_timeout import timeout as _timeout  # type: ignore[import-not-found, unused-ignore]


class Deadline:
    """``async with``: cancel the call after ``seconds`` and raise redis-py's TimeoutError,
    which the broker translates like any other. redis-py disconnects a connection whose
    command was cancelled mid-way, so a late reply can never reach the next caller."""

    __slots__ = ("_cm", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._cm = _timeout(seconds)

    async def __aenter__(self) -> None:
        await self._cm.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            return bool(await self._cm.__aexit__(*exc))
        except (TimeoutError, asyncio.TimeoutError):
            raise rexc.TimeoutError(f"no reply within {self._seconds:g}s") from None


class Coalescer:
    """Collects script calls made in the same event-loop turn and sends them as one pipeline.

    The first call schedules a flush; every call made before the flush runs joins it, so under
    load each round trip carries many calls, and with one caller the cost is one loop turn.
    Calls come from coroutines on the loop (:meth:`call`) or from other threads
    (:meth:`submit_threadsafe`, the sync facade's fast path); both share the same pipelines.
    """

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._calls: list[tuple[str, Sequence[str], Sequence[Encodable]]] = []
        self._futures: list[asyncio.Future[Any] | concurrent.futures.Future[Any]] = []
        self._scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()

    async def call(self, name: str, keys: Sequence[str], args: Sequence[Encodable]) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._add(name, keys, args, fut)
        return self._unwrap(name, await fut)

    def submit_threadsafe(self, loop: asyncio.AbstractEventLoop, name: str,
                          keys: Sequence[str], args: Sequence[Encodable]) -> Any:
        """Run a script call from another thread on ``loop``; blocks for its result."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop.call_soon_threadsafe(self._add, name, keys, args, fut)
        return self._unwrap(name, fut.result())

    def _unwrap(self, name: str, result: Any) -> Any:
        if isinstance(result, BaseException):
            error = self._broker.translate(result, f"running {name}")
            if error is result:
                raise error
            raise error from result
        return result

    def _add(self, name: str, keys: Sequence[str], args: Sequence[Encodable],
             fut: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> None:
        self._calls.append((name, keys, args))
        self._futures.append(fut)
        if not self._scheduled:
            self._scheduled = True
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        # A task's first step runs after every callback already queued for this loop turn,
        # so every coroutine (and thread submission) that is ready now has added its call.
        calls, futures = self._calls, self._futures
        self._calls, self._futures = [], []
        self._scheduled = False
        try:
            results = await self._broker.scripts_pipelined(calls)
        except BaseException as exc:  # delivered to every caller, including cancellation
            error = self._broker.translate(exc, f"running {calls[0][0]}")
            for fut in futures:
                if not fut.done():
                    fut.set_result(error)
            if not isinstance(exc, Exception):
                raise
            return
        for fut, result in zip(futures, results, strict=True):
            if not fut.done():
                fut.set_result(result)


class SuccessBatch:
    """Merges the successes recorded in one loop turn into one ``succeed_many`` call.

    Each success costs four arguments instead of the fourteen of a ``complete`` call, which
    matters: packing arguments is most of redis-py's per-command cost.
    """

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._items: dict[tuple[str, int], list[tuple[tuple[Encodable, ...],
                                                      asyncio.Future[Any]]]] = {}
        self._flushing: set[asyncio.Task[None]] = set()

    async def add(self, consumer: str, ttl: int, item: tuple[Encodable, ...]) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        key = (consumer, ttl)
        batch = self._items.setdefault(key, [])
        batch.append((item, fut))
        if len(batch) == 1:
            task = asyncio.get_running_loop().create_task(self._flush(key))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return await fut

    async def _flush(self, key: tuple[str, int]) -> None:
        batch = self._items.pop(key, [])
        consumer, ttl = key
        args: list[Encodable] = [GROUP, consumer, ttl, self._broker.keys.job("")]
        for item, _fut in batch:
            args.extend(item)
        try:
            answers = await self._broker.script("succeed_many", (self._broker.keys.queue,), args)
        except BaseException as exc:
            for _item, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_item, fut), answer in zip(batch, answers, strict=True):
            if not fut.done():
                fut.set_result(answer)
