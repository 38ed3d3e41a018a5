"""The async client of one app on one event loop: enqueue, wait for outcomes, the DLQ.

Everything the sync facade offers is a call into this class through the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from fennel.broker import Broker
from fennel.client._listener import Outcome, ResultListener
from fennel.exceptions import (
    BrokerError,
    PayloadTooLarge,
    ResultMissing,
    ResultsDisabled,
    TaskFailed,
    Timeout,
)
from fennel.job import Job, Status, decode
from fennel.middleware import run_hooks

if TYPE_CHECKING:
    from fennel.app import App

__all__ = ["AsyncClient", "Progress", "raise_or_value"]

#: ``progress(done, total)``, called as a long DLQ operation advances.
Progress = Callable[[int, int], None]


class AsyncClient:
    """Connection pool, reply channel and listener of one app within one event loop."""

    def __init__(self, app: App[Any]) -> None:
        s = app.settings
        self.app = app
        self.pid = os.getpid()
        loop = asyncio.get_running_loop()
        # Weak: the app keeps one client per loop in a WeakKeyDictionary, which can only
        # forget a loop that nothing else holds, its own client included.
        self._loop = weakref.ref(loop)
        self.broker = Broker(s.redis_url, app.keys, connect_timeout=s.connect_timeout,
                             socket_timeout=s.socket_timeout)
        self.client_id = uuid.uuid4().hex
        self.reply_channel = app.keys.reply_channel(self.client_id)
        self.listener = ResultListener(self.broker, self.reply_channel)
        self._closed = False
        # Closed with its loop: asyncio.run() and the other runners finalize every async
        # generator still open when their main coroutine ends, while the loop can still close
        # sockets. This one's cleanup closes the client (a loop closed by hand, without that
        # step, just drops it: the generator is not finalized on a closed loop).
        self._with_loop = self._close_with_loop()
        self._arming = loop.create_task(self._arm())

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this client belongs to (``None`` once it is gone)."""
        return self._loop()

    async def _arm(self) -> None:
        await self._with_loop.__anext__()

    async def _close_with_loop(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self.app.forget_client(self)
            await self.aclose()

    async def aclose(self) -> None:
        """Close the listener and every connection of this client (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self.listener.aclose()
        await self.broker.aclose()

    # -- enqueue ----------------------------------------------------------------------------

    def encode(self, job: Job) -> bytes:
        """The job's envelope, replies addressed to this client (pure CPU, any thread)."""
        if self.app.settings.results_enabled:
            job.reply_to = self.reply_channel
        return job.encode(self.app.settings.max_payload)

    async def _prepare(self, job: Job) -> bytes:
        if self.app.middleware:
            await run_hooks(self.app.middleware, "before_enqueue", self.app, job)
        return self.encode(job)

    async def enqueue(self, job: Job) -> None:
        envelope = await self._prepare(job)
        await self.broker.enqueue(job.id, envelope)
        if self.app.middleware:
            await run_hooks(self.app.middleware, "after_enqueue", self.app, job)

    async def enqueue_many(self, jobs: Sequence[Job]) -> None:
        # Encode everything first: one bad job fails the call before anything is written.
        if self.app.middleware:
            prepared = [(job.id, await self._prepare(job)) for job in jobs]
        else:
            prepared = [(job.id, self.encode(job)) for job in jobs]
        await self.broker.enqueue_many(prepared)
        if self.app.middleware:
            for job in jobs:
                await run_hooks(self.app.middleware, "after_enqueue", self.app, job)

    # -- outcomes ---------------------------------------------------------------------------

    async def outcomes(
        self, job_ids: Sequence[str], timeout: float | None
    ) -> list[asyncio.Future[Outcome]]:
        """Futures of the jobs' outcomes, after waiting up to ``timeout`` for them all.

        Futures still pending when time runs out are returned as they are (not done).
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        parents = sorted({p for p in map(_callback_parent, job_ids) if p is not None})
        running: set[str] = set()
        if parents:
            # A callback's job only exists once its parent finished: wait for that first.
            # One whose parent is still running when time runs out is not done (a Timeout),
            # not missing: it cannot exist yet.
            done = await self.outcomes(parents, timeout)
            running = {p for p, f in zip(parents, done, strict=True) if not f.done()}
        watched = [j for j in job_ids if _callback_parent(j) not in running]
        futures = iter(await self.listener.watch(watched))
        every = [loop.create_future() if _callback_parent(j) in running else next(futures)
                 for j in job_ids]
        pending = [f for f in every if not f.done()]
        if pending:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait(pending, timeout=left)
                if any(not f.done() for f in pending):
                    # Out of time: one last read, in case the subscription missed the end.
                    with contextlib.suppress(BrokerError):
                        await self.listener.recheck(
                            [j for j, f in zip(job_ids, every, strict=True)
                             if not f.done() and _callback_parent(j) not in running])
            finally:
                for job_id, fut in zip(job_ids, every, strict=True):
                    if not fut.done():
                        self.listener.forget(job_id, fut)
        return every

    async def result(self, job_id: str, timeout: float | None) -> Any:
        if not self.app.settings.results_enabled:
            raise ResultsDisabled(
                f"Cannot get the result of job {job_id}: app {self.app.name!r} runs with "
                "results_enabled=False. Enable it, or use .status() / wait()."
            )
        (fut,) = await self.outcomes([job_id], timeout)
        if not fut.done():
            raise Timeout(f"Job {job_id} did not finish within {timeout} seconds.")
        return raise_or_value(job_id, fut.result())

    async def status(self, job_id: str) -> Status:
        ((status, _r, _e),) = await self.broker.job_states([job_id])
        return Status.UNKNOWN if status is None else Status(status.decode())

    # -- dead-letter queue ------------------------------------------------------------------

    async def dead(self) -> list[tuple[str, Job]]:
        """``(entry id, job)`` of every dead job, oldest first."""
        return [(d.entry_id, d.job) for d in await self._dead_entries()]

    async def _dead_entries(self) -> list[DeadEntry]:
        return [dead_entry(eid, fields) for eid, fields in await self.broker.dead_entries()]

    async def replay(self, filter: Callable[[Job], bool] | None,
                     progress: Progress | None = None) -> list[Job]:
        async def one(d: DeadEntry) -> bool:
            if d.raw is not None:
                # Undecodable: its bytes go back as they are, never a job made up to
                # describe them, so nothing of what was sent is lost.
                return await self.broker.replay_raw(d.entry_id, d.job_id, d.raw)
            try:
                envelope = dataclasses.replace(d.job, tries=0).encode_fitting(
                    self.app.settings.max_payload)
            except PayloadTooLarge:
                return False  # would be refused unread by every worker: it stays dead
            return await self.broker.replay(d.entry_id, d.job.id, envelope)

        async def chunk(part: list[DeadEntry]) -> list[bool]:
            # Coalesced by the broker into one pipelined round trip.
            return list(await asyncio.gather(*(one(d) for d in part)))

        return await self._each_dead(filter, chunk, progress)

    async def purge(self, filter: Callable[[Job], bool] | None,
                    progress: Progress | None = None) -> list[Job]:
        async def chunk(part: list[DeadEntry]) -> list[bool]:
            return await self.broker.purge([d.entry_id for d in part])

        return await self._each_dead(filter, chunk, progress)

    async def _each_dead(
        self, filter: Callable[[Job], bool] | None,
        action: Callable[[list[DeadEntry]], Awaitable[list[bool]]],
        progress: Progress | None, size: int = 500,
    ) -> list[Job]:
        """Apply ``action`` to the dead jobs matching ``filter``, ``size`` per round trip;
        return those it succeeded on. ``progress(done, total)`` follows each round trip.

        Each entry is removed from the DLQ by a call that reports whether *it* removed it, so
        concurrent replays or purges from several processes handle each job exactly once.
        """
        chosen = [d for d in await self._dead_entries() if filter is None or filter(d.job)]
        done: list[Job] = []
        for start in range(0, len(chosen), size):
            part = chosen[start:start + size]
            results = await action(part)
            done.extend(d.job for d, ok in zip(part, results, strict=True) if ok)
            if progress is not None:
                progress(min(start + size, len(chosen)), len(chosen))
        return done


@dataclasses.dataclass(frozen=True, slots=True)
class DeadEntry:
    """One DLQ entry: its stream id, its job, and for an undecodable entry the raw bytes
    (``job`` then only describes them) and the job id the worker could read (or ``''``)."""

    entry_id: str
    job: Job
    raw: bytes | None = None
    job_id: str = ""


def dead_job(entry_id: str, fields: dict[bytes, bytes]) -> Job:
    """The job of a DLQ entry; an undecodable one becomes a job describing the raw bytes."""
    return dead_entry(entry_id, fields).job


def dead_entry(entry_id: str, fields: dict[bytes, bytes]) -> DeadEntry:
    """A DLQ entry as written by any worker, or by anyone else: never raises."""
    raw = fields.get(b"j", b"")
    reason = fields.get(b"reason", b"").decode(errors="replace")
    job_id = fields.get(b"id", b"").decode(errors="replace")
    try:
        return DeadEntry(entry_id, decode(raw))
    except ValueError as exc:
        return DeadEntry(entry_id, Job(
            id=job_id or entry_id,
            task="<undecodable>",
            args=[],
            kwargs={},
            errors=[{"type": "UndecodableJob", "args": [reason or str(exc)],
                     "traceback": "", "raw": raw[:2000].decode(errors="replace")}],
        ), raw, job_id)


_CALLBACK_ID = re.compile(r"^(?P<parent>.+)\.[sf]\d+$")


def _callback_parent(job_id: str) -> str | None:
    """The parent job of a callback job id (``<parent>.s0``), or None."""
    m = _CALLBACK_ID.match(job_id)
    return m.group("parent") if m else None


def raise_or_value(job_id: str, outcome: Outcome) -> Any:
    """The value of a finished job, or the error its outcome stands for."""
    status, payload = outcome
    if status is Status.SUCCESS:
        return orjson.loads(payload) if payload else None
    if status is Status.DEAD:
        err = orjson.loads(payload) if payload else {}
        raise TaskFailed(job_id, err.get("type", "Exception"), err.get("args", []),
                         err.get("traceback", ""))
    parent = _callback_parent(job_id)
    if parent is not None:
        raise ResultMissing(
            f"Callback job {job_id} does not exist: job {parent} did not end in the outcome "
            "that triggers it (or its result expired after results_ttl)."
        )
    raise ResultMissing(
        f"Redis has no record of job {job_id}: it was never enqueued on this app, or its "
        "result expired (results_ttl). Raise results_ttl if results are read late."
    )
