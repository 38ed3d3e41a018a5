"""One completion listener per producer process (per event loop), shared by every waiter.

Workers publish each finished job's outcome on the reply channel named in its envelope (the
client that enqueued it) and on every channel registered on the job's record by a waiter. The
listener holds the only subscription and resolves the futures of every handle waiting on that
job. A waiter registers its future first, and then, in one atomic script (watch.lua, after
Redis confirmed the subscription), reads the job's state and registers this listener's channel
on the record, so a completion can never slip between the two, whichever client enqueued the
job. While the subscription holds, no completion can be missed, so nothing is polled: after a
reconnect every pending waiter is re-read in one pipelined round trip, a waiter whose time runs
out is re-read once before it gives up (see ``AsyncClient.outcomes``), and every
``sweep_interval`` seconds one ``EXISTS`` per thousand waiters notices records that vanished
(expired, deleted, Redis lost its data), and only those chunks are re-read. A registration that
Redis refused (maxmemory) is tried again at each sweep until it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from redis.asyncio.client import PubSub

from fennel._asyncio import cancel_requested, stop_tasks
from fennel._log import get_logger
from fennel.broker import Broker
from fennel.exceptions import BrokerError
from fennel.job import TERMINAL, Status

log = get_logger("fennel.client")

#: (status, payload): payload is the result JSON for SUCCESS, the error JSON for DEAD.
Outcome = tuple[Status, bytes | None]


class ResultListener:
    def __init__(self, broker: Broker, channel: str, sweep_interval: float = 2.0) -> None:
        self._broker = broker
        self._channel = channel
        self._sweep_interval = sweep_interval
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        # Waited jobs whose registration Redis refused (maxmemory): tried again at each sweep.
        self._unregistered: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None

    async def watch(self, job_ids: Sequence[str]) -> list[asyncio.Future[Outcome]]:
        """A future per job, resolved with its outcome once it is terminal (or unknown)."""
        await self._start()
        loop = asyncio.get_running_loop()
        futures = []
        for job_id in job_ids:
            fut: asyncio.Future[Outcome] = loop.create_future()
            self._waiters.setdefault(job_id, []).append(fut)
            futures.append(fut)
        try:
            await self._check(job_ids)
        except BrokerError as exc:
            # Subscribed, but Redis went away before the read: the futures stay registered and
            # the listener re-checks every waiter as soon as it has reconnected.
            log.warning("fennel.listener.check_deferred", error=exc, jobs=len(job_ids))
        except BaseException:
            for job_id, fut in zip(job_ids, futures, strict=True):
                self.forget(job_id, fut)
            raise
        return futures

    def forget(self, job_id: str, fut: asyncio.Future[Outcome]) -> None:
        """Stop tracking ``fut`` (its waiter timed out or was cancelled)."""
        futures = self._waiters.get(job_id)
        if futures is None:
            return
        with contextlib.suppress(ValueError):
            futures.remove(fut)
        if not futures:
            del self._waiters[job_id]
            self._unregistered.discard(job_id)

    async def aclose(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task], timeout=2.0)
            self._task = None

    # -- internals --------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._task is not None and not self._task.done():
                return
            # Subscribe here, not in the background, so an unreachable Redis fails the caller.
            pubsub = await self._subscribe()
            self._task = asyncio.get_running_loop().create_task(self._run(pubsub))

    async def _subscribe(self) -> PubSub:
        # SUBSCRIBE goes out on its own connection: until Redis confirms it, a completion
        # published now would be missed, and a status read on another connection could
        # overtake it. The broker returns only once it is confirmed; waiters read after that.
        return await self._broker.subscribe(self._channel)

    async def _run(self, pubsub: PubSub) -> None:
        delay = 0.05
        # The first subscription was confirmed before any waiter read its job's state, so
        # only a re-subscription has anything to catch up on.
        reconnected = False
        while True:
            try:
                await self._listen(pubsub, reconnected)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except Exception as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                reconnected = True
                log.warning("fennel.listener.reconnecting", error=exc, retry_in=delay)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                while True:
                    # Only a confirmed subscription may be followed by the catch-up check.
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    try:
                        pubsub = await self._subscribe()
                        break
                    except Exception as again:
                        if cancel_requested():
                            raise asyncio.CancelledError from again
                delay = 0.05

    async def _listen(self, pubsub: PubSub, reconnected: bool) -> None:
        if not pubsub.subscribed:
            await pubsub.subscribe(self._channel)
        if reconnected:
            # Anything published while we were not subscribed is found by this check.
            await self._check(list(self._waiters))
        last_sweep = time.monotonic()
        while True:
            msg = await pubsub.get_message(timeout=self._sweep_interval)
            if msg is not None and msg.get("type") == "message":
                self._on_message(msg["data"])
            now = time.monotonic()
            if now - last_sweep >= self._sweep_interval:
                last_sweep = now
                if self._waiters:
                    await self._sweep_vanished(list(self._waiters))
                if self._unregistered:
                    await self._check(list(self._unregistered))

    def _on_message(self, data: bytes) -> None:
        job_id, _, rest = data.partition(b"\n")
        status, _, payload = rest.partition(b"\n")
        try:
            self._resolve(job_id.decode(), Status(status.decode()), payload)
        except ValueError:
            log.warning("fennel.listener.bad_message", data=data[:200])

    async def _check(self, job_ids: Sequence[str]) -> None:
        for start in range(0, len(job_ids), 1000):
            chunk = job_ids[start:start + 1000]
            # Registers this listener's channel on every job still running (see watch.lua);
            # doing so again for a job re-read later changes nothing.
            states = await self._broker.watch_jobs(chunk, self._channel)
            for job_id, state in zip(chunk, states, strict=True):
                status, result, error = state[:3]
                if status is None:
                    self._resolve(job_id, Status.UNKNOWN, None)
                    continue
                st = Status(status.decode())
                if st in TERMINAL:
                    self._resolve(job_id, st, result if st is Status.SUCCESS else error)
                elif len(state) > 3 and not state[3] and job_id in self._waiters:
                    self._unregistered.add(job_id)
                else:
                    self._unregistered.discard(job_id)

    async def recheck(self, job_ids: Sequence[str]) -> None:
        """Read the state of these waiters' jobs now (a waiter about to give up)."""
        await self._check([j for j in job_ids if j in self._waiters])

    async def _sweep_vanished(self, job_ids: Sequence[str]) -> None:
        # One EXISTS per chunk: a chunk whose records all exist needs no read at all.
        for start in range(0, len(job_ids), 1000):
            chunk = job_ids[start:start + 1000]
            if await self._broker.count_jobs(chunk) < len(chunk):
                await self._check(chunk)

    def _resolve(self, job_id: str, status: Status, payload: bytes | None) -> None:
        self._unregistered.discard(job_id)
        for fut in self._waiters.pop(job_id, ()):
            if not fut.done():
                fut.set_result((status, payload))
