"""The worker process: one asyncio supervisor that reads jobs, runs them, and shuts down
gracefully.

Pieces (each small, each here or in a sibling module):
- the consume loop reads at most as many entries as there are free slots
  (``XREADGROUP COUNT <free>``), so nothing waits in a local buffer where a crash would
  strand it;
- :class:`~fennel.worker.runner.JobRunner` runs each job and records its outcome;
- background loops (``loops.every``): lease renewal, reclaiming expired leases, promoting due
  retries, heartbeat;
- shutdown: on the first SIGTERM/SIGINT stop reading, let in-flight jobs finish within
  ``grace_period``, hand back the rest to the queue at once; a second signal exits now.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

import orjson
from redis import exceptions as rexc

from fennel._asyncio import cancel_requested, stop_tasks
from fennel._log import get_logger
from fennel.broker import Broker, DeliveredEntry
from fennel.exceptions import AuthenticationFailed, BrokerError, ConnectionFailed
from fennel.keys import GROUP
from fennel.middleware import LoggingMiddleware, run_hooks
from fennel.worker.executor import Executor
from fennel.worker.loops import consumer_name, every, renew_deadline
from fennel.worker.runner import InFlight, JobRunner

if TYPE_CHECKING:
    from fennel.app import App
    from fennel.worker.health import HealthServer

__all__ = ["Worker"]

log = get_logger("fennel.worker")


class Worker:
    """Runs the jobs of one app. ``await Worker(app).run()`` returns the exit code."""

    def __init__(
        self,
        app: App[Any],
        *,
        concurrency: int | None = None,
        pool: str | None = None,
        app_spec: str | None = None,
        install_signal_handlers: bool = True,
        health_port: int | None = None,
    ) -> None:
        s = app.settings
        self.app = app
        self.settings = s
        self.concurrency = concurrency or s.concurrency
        self.consumer = consumer_name()
        self.broker = Broker(s.redis_url, app.keys, connect_timeout=s.connect_timeout,
                             socket_timeout=s.socket_timeout)
        self.executor = Executor(pool or s.pool, self.concurrency, app_spec)
        if not any(isinstance(m, LoggingMiddleware) for m in app.middleware):
            app.middleware.insert(0, LoggingMiddleware())
        self.runner = JobRunner(app, self.broker, self.executor, self.consumer)
        self.inflight: dict[str, InFlight] = {}
        self.state = "starting"
        #: monotonic time the consume loop last made progress (for liveness probes)
        self.last_progress = time.monotonic()
        self.started_at = time.time()
        self.processed = 0
        self._install_signals = install_signal_handlers
        self._signals = 0
        self._stop = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._reclaim_wanted = False
        #: slots promised to reads, reclaims and adoptions in flight: whatever they deliver
        #: must fit, so the worker never runs more than ``concurrency`` jobs
        self._reserved = 0
        self._block_ms = int(max(100, min(2000, s.socket_timeout * 1000 / 2)))
        #: jobs taken over from dead workers (``fennel_redeliveries``)
        self.redelivered = 0
        #: completions per monotonic second, for the last minute (``fennel info``)
        self._recent: dict[int, int] = {}
        self.health: HealthServer | None = None
        #: the suspect this worker holds (and runs alone once its other jobs are done), and
        #: how many more wait in the group for a worker to take them
        self._isolated: InFlight | None = None
        self._suspects_waiting = 0
        #: set whenever a job ends, for a held suspect waiting for its neighbours
        self._job_ended = asyncio.Event()
        self._reclaiming = asyncio.Lock()
        self._health_port = health_port if health_port is not None else s.health_port

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        if self._install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        await self._connect()
        await self.executor.start()
        monitor = self._start_health()
        log.info("worker.started", consumer=self.consumer, app=self.app.name,
                 concurrency=self.concurrency, pool=self.executor.kind,
                 tasks=sorted(self.app.tasks), redis=self.broker.masked_url)
        if self.app.middleware:
            await run_hooks(self.app.middleware, "on_worker_start", self.app, self)
        lease = self.settings.lease_timeout
        renewer = asyncio.create_task(every(lease / 3, "lease", self._renew,
                                            max_delay=lease / 3))
        others = [
            asyncio.create_task(every(max(0.05, lease / 4), "reclaim", self._reclaim)),
            asyncio.create_task(every(self.settings.schedule_interval, "schedule",
                                      self.broker.promote_due)),
            asyncio.create_task(every(min(5.0, lease / 3), "heartbeat", self._heartbeat)),
            *monitor,
        ]
        self.state = "running"
        try:
            await self._consume()
        finally:
            self.state = "stopping"
            # No new work while draining; leases keep being renewed until the drain is over.
            await stop_tasks(others)
            await self._drain()
            await stop_tasks([renewer])
            await self._farewell()
            await self.executor.aclose(wait=False)
            if self.app.middleware:
                await run_hooks(self.app.middleware, "on_worker_stop", self.app, self)
            await self.broker.aclose()
            if self.health is not None:
                self.health.stop()
            self.state = "stopped"
            log.info("worker.stopped", consumer=self.consumer, processed=self.processed)
        return 0

    def _start_health(self) -> list[asyncio.Task[None]]:
        """Start the probe and metrics server if a health port is set."""
        if self._health_port is None:
            return []
        from prometheus_client import CollectorRegistry

        from fennel.worker.health import HealthServer
        from fennel.worker.metrics import MetricsMiddleware, WorkerCollector

        registry = CollectorRegistry()
        self.health = health = HealthServer(self, self._health_port, registry)
        registry.register(WorkerCollector(lambda: health.stats, lambda: len(self.inflight),
                                          lambda: self.redelivered))
        # Metrics are a middleware like any other, added first so user hooks see it done.
        self.app.middleware.insert(0, MetricsMiddleware(registry))
        health.start()
        return [asyncio.create_task(health.monitor())]

    def recent_throughput(self) -> int:
        """Jobs this worker finished in the last 60 seconds."""
        now = int(time.monotonic())
        for sec in [s for s in self._recent if s <= now - 60]:
            del self._recent[sec]
        return sum(self._recent.values())

    def stop(self) -> None:
        """Begin a graceful shutdown (what the first SIGTERM/SIGINT does)."""
        self._stop.set()

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("worker.stopping", signal=signal.Signals(sig).name,
                     in_flight=len(self.inflight), grace_period=self.settings.grace_period)
            self.stop()
        else:
            # Second signal: stop now. Unfinished jobs come back after lease_timeout.
            log.warning("worker.killed", signal=signal.Signals(sig).name,
                        in_flight=len(self.inflight))
            os._exit(1)

    async def _connect(self) -> None:
        """Reach Redis and make sure the consumer group exists, retrying for up to
        ``startup_timeout``; then fail (the CLI exits non-zero) saying what went wrong."""
        delay = 0.1
        give_up = time.monotonic() + self.settings.startup_deadline
        previous: BrokerError | None = None
        while True:
            # Never past the startup deadline, however long socket_timeout is.
            limit = max(0.1, min(self.settings.socket_timeout, give_up - time.monotonic()))
            try:
                await self.broker.ensure_group(timeout=limit)
                return
            except BrokerError as caught:
                exc = caught
                if (previous is not None and limit < self.settings.socket_timeout
                        and isinstance(exc.__cause__, rexc.TimeoutError)):
                    # An attempt cut short by the deadline timed out: the error before it
                    # (refused, unknown host, ...) says more about what is wrong.
                    exc = previous
                previous = exc
                reason = ("authentication refused" if isinstance(exc, AuthenticationFailed)
                          else "unreachable" if isinstance(exc, ConnectionFailed)
                          else "error")
                left = give_up - time.monotonic()
                if self._stop.is_set() or left <= 0:
                    log.error("worker.startup_failed", reason=reason, error=exc,
                              redis=self.broker.masked_url,
                              startup_timeout=self.settings.startup_deadline)
                    raise exc from exc.__cause__
                log.warning("worker.connect_failed", reason=reason, error=exc,
                            redis=self.broker.masked_url, retry_in=delay)
                await asyncio.sleep(min(delay, max(left, 0.0)))
                delay = min(delay * 2, 1.0)

    # -- consuming ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        stop_wait = asyncio.create_task(self._stop.wait())
        delay = 0.05
        try:
            while not self._stop.is_set():
                free = self._free()
                self.last_progress = time.monotonic()
                if self._reclaim_wanted and free > 0:
                    # A dead worker's jobs go before new ones: under a backlog every freed
                    # slot would otherwise be refilled by the next read.
                    self._reclaim_wanted = False
                    with contextlib.suppress(BrokerError):
                        await self._reclaim()
                    continue
                if free <= 0:
                    # All slots busy counts as progress; wake up now and then to say so.
                    self._slot_freed.clear()
                    slot = asyncio.create_task(self._slot_freed.wait())
                    await asyncio.wait({slot, stop_wait}, timeout=1.0,
                                       return_when=asyncio.FIRST_COMPLETED)
                    slot.cancel()
                    continue
                self._reserved += free
                try:
                    read = asyncio.create_task(self.broker.read(self.consumer, free,
                                                                self._block_ms))
                    await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if not read.done():
                        # Anything delivered to a cancelled read sits in our pending list and
                        # is handed back by _drain.
                        read.cancel()
                        with contextlib.suppress(BaseException):
                            await read
                        break
                finally:
                    # Released in the same step that dispatches what the read delivered.
                    self._reserved -= free
                try:
                    entries = read.result()
                    delay = 0.05
                except BrokerError as exc:
                    log.warning("worker.read_failed", error=exc, retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                self.dispatch(entries)
        finally:
            stop_wait.cancel()

    def dispatch(self, entries: list[DeliveredEntry]) -> None:
        """Start delivered entries. A *suspect* (taken over after two worker deaths, see
        reclaim.lua) runs alone: from the moment it arrives nothing new is taken, and it
        starts once this worker's other jobs are done. Other workers keep reading."""
        loop = asyncio.get_running_loop()
        for entry in entries:
            if entry.entry_id in self.inflight:
                continue
            flight = InFlight(entry)
            self.inflight[entry.entry_id] = flight
            flight.task = loop.create_task(self._run_one(flight))
            if 2 < entry.deliveries <= self.settings.max_deliveries:
                log.warning("worker.isolating_suspect", entry_id=entry.entry_id,
                            deliveries=entry.deliveries)
                self._isolated = flight

    def _free(self) -> int:
        """Slots free for new entries: none while this worker holds a suspect."""
        if self._isolated is not None and self._isolated.entry.entry_id in self.inflight:
            return 0
        self._isolated = None
        return self.concurrency - len(self.inflight) - self._reserved

    async def _run_one(self, flight: InFlight) -> None:
        try:
            if flight is self._isolated and not await self._alone(flight):
                return  # stopping before it could run alone: _drain hands it back
            await self.runner.handle(flight)
            self.processed += 1
            sec = int(time.monotonic())
            self._recent[sec] = self._recent.get(sec, 0) + 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker.job_crashed", entry_id=flight.entry.entry_id)
        finally:
            self.inflight.pop(flight.entry.entry_id, None)
            self._slot_freed.set()
            self._job_ended.set()
            self.last_progress = time.monotonic()

    async def _alone(self, flight: InFlight) -> bool:
        """Hold a suspect until it is the only job here; False if the worker stops first.

        Its neighbours were taken before it and finish first, so if the suspect then kills
        this worker, only its own delivery count grows.
        """
        if len(self.inflight) > 1:
            log.info("worker.suspect_held", entry_id=flight.entry.entry_id,
                     waiting_for=len(self.inflight) - 1)
        while len(self.inflight) > 1 and not self._stop.is_set():
            self._job_ended.clear()
            ended = asyncio.ensure_future(self._job_ended.wait())
            stopped = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                stopped.cancel()
        return not self._stop.is_set()

    # -- background loops ---------------------------------------------------------------------

    @property
    def _stall_ms(self) -> int:
        """A gap in lease-clock stamps longer than this means Redis stalled (see renew.lua)."""
        return int(self.settings.lease_timeout * 1000 / 2)

    async def _renew(self) -> None:
        ids = list(self.inflight)
        # At least one call even when idle: it stamps the lease clock.
        for start in range(0, max(1, len(ids)), 500):
            lost = await self._renew_batch(ids[start:start + 500])
            for entry_id in lost:
                flight = self.inflight.get(entry_id)
                if flight is not None and not flight.lost:
                    flight.lost = True
                    log.warning("job.lease_lost", entry_id=entry_id,
                                job_id=flight.job.id if flight.job else None)

    async def _renew_batch(self, ids: list[str]) -> set[str]:
        """Renew until Redis answers. Each attempt has its own deadline, derived from the
        lease (not socket_timeout), and a failed one is retried at once, on a fresh
        connection: a worker cut off for less than half the lease renews within
        ``renew_deadline`` of getting through, well before the lease runs out."""
        lease = self.settings.lease_timeout
        deadline = renew_deadline(lease)
        failures = 0
        while True:
            try:
                lost = await self.broker.renew(self.consumer, ids, self._stall_ms,
                                               timeout=deadline)
            except BrokerError as exc:
                if cancel_requested():  # a cancel swallowed below (see loops.every)
                    raise asyncio.CancelledError from exc
                failures += 1
                if failures == 1:
                    log.warning("worker.renew_failed", error=exc, in_flight=len(ids),
                                detail="retrying at once on a fresh connection")
                # A refused connection fails at once: pause a little, never past the deadline.
                await asyncio.sleep(min(0.05 * failures, deadline))
                continue
            if failures:
                log.info("worker.renewed", attempts=failures + 1)
            return lost

    async def _reclaim(self) -> None:
        # The reclaim loop and the consume loop both call this; one at a time, or two calls
        # on an empty worker could each take a suspect and run them side by side.
        async with self._reclaiming:
            await self._reclaim_now()

    async def _reclaim_now(self) -> None:
        free = self._free()
        if self._stop.is_set():
            return
        if free <= 0:
            self._reclaim_wanted = True  # the consume loop reclaims at the next free slot
            return
        # A worker holding no suspect may take one, busy or not: it stops reading and runs the
        # suspect once its current jobs are done (see dispatch), while other workers go on.
        may_take_suspect = self._isolated is None
        self._reserved += free
        try:
            entries, self._suspects_waiting = await self.broker.reclaim(
                self.consumer, int(self.settings.lease_timeout * 1000), free, self._stall_ms,
                self.settings.max_deliveries, empty=may_take_suspect,
            )
        finally:
            self._reserved -= free
            self._slot_freed.set()
        if entries:
            self.redelivered += len(entries)
            log.warning("worker.reclaimed", count=len(entries),
                        entries=[e.entry_id for e in entries][:20])
            self.dispatch(entries)
            if len(entries) >= free:
                # There may be more: the consume loop takes them at the next free slot,
                # before new work (under a backlog each freed slot is refilled by a read, so
                # they would otherwise trickle back one reclaim tick at a time).
                self._reclaim_wanted = True
        free = self._free()
        if free <= 0 or self._stop.is_set():
            return
        # Our own orphans: delivered to us by a read whose reply was lost with its
        # connection. In-flight entries are renewed every lease/3, so an entry of ours idle
        # this long that we do not hold was never seen; take it back without waiting a lease.
        orphan_idle = int(min(self.settings.lease_timeout / 2, 1.0) * 1000)
        self._reserved += free
        try:
            orphans = await self.broker.adopt_orphans(self.consumer, orphan_idle,
                                                      set(self.inflight), free)
        finally:
            self._reserved -= free
            self._slot_freed.set()
        orphans = [e for e in orphans if e.entry_id not in self.inflight]
        if orphans:
            log.warning("worker.orphans_adopted", count=len(orphans),
                        entries=[e.entry_id for e in orphans][:20])
            self.dispatch(orphans)

    async def _heartbeat(self) -> None:
        lease = self.settings.lease_timeout
        info = orjson.dumps({
            "host": socket.gethostname(), "pid": os.getpid(), "pool": self.executor.kind,
            "concurrency": self.concurrency, "in_flight": len(self.inflight),
            "processed": self.processed, "last_minute": self.recent_throughput(),
            "started_at": self.started_at,
        })

        removed = await self.broker.heartbeat(self.consumer, info, max(3 * lease, 15), 60_000)
        if removed:
            log.info("worker.consumers_removed", consumers=removed[:20], count=len(removed))

    # -- shutdown -----------------------------------------------------------------------------

    async def _drain(self) -> None:
        flights = [f for f in self.inflight.values() if f.task is not None]
        if flights:
            log.info("worker.draining", in_flight=len(flights),
                     grace_period=self.settings.grace_period)
            await asyncio.wait([f.task for f in flights if f.task is not None],
                               timeout=self.settings.grace_period)
        unfinished = [f.task for f in self.inflight.values()
                      if f.task is not None and not f.task.done()]
        for task in unfinished:
            task.cancel()
        if unfinished:
            # Bounded: a task that swallows its cancellation must not hold the worker (its
            # entry is handed back all the same, and its late outcome is fenced off).
            _done, stuck = await asyncio.wait(
                unfinished, timeout=max(0.1, min(2.0, self.settings.grace_period)))
            if stuck:
                log.warning("worker.jobs_ignored_cancellation", count=len(stuck))
        handed = 0
        try:
            # Everything still delivered to us: unfinished jobs and reads cut short.
            for entry in await self.broker.own_pending(self.consumer):
                if await self.broker.hand_back(self.consumer, entry):
                    handed += 1
        except BrokerError as exc:
            log.warning("worker.handback_failed", error=exc,
                        detail="unfinished jobs return after lease_timeout instead")
        self.inflight.clear()
        if handed:
            log.info("worker.handed_back", count=handed)

    async def _farewell(self) -> None:
        keys = self.app.keys

        async def leave(r: Any) -> None:
            await r.zrem(keys.workers, self.consumer)
            await r.hdel(keys.worker_info, self.consumer)
            pending = await r.xpending_range(keys.queue, GROUP, "-", "+", 1,
                                             consumername=self.consumer)
            if not pending:
                await r.xgroup_delconsumer(keys.queue, GROUP, self.consumer)

        with contextlib.suppress(BrokerError):
            await self.broker.call("leaving the consumer group", leave)
