"""One job's life on a worker: decode, check, execute, and record the outcome atomically.

Every outcome is recorded by one fenced script (see ``broker/scripts``): success, a scheduled
retry, or the dead-letter queue. Bad input of any kind (undecodable envelope, unknown task,
unserialisable result, a job that keeps killing workers) becomes a recorded outcome; nothing
raised by a job ever reaches the worker's loops.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from fennel._log import get_logger
from fennel.broker import Broker, DeliveredEntry
from fennel.exceptions import BrokerError, PayloadTooLarge, SerializationError, UnknownTask
from fennel.job import (
    MAX_ERRORS,
    MAX_TRACEBACK,
    Job,
    MalformedEnvelope,
    decode,
    encode_value,
    error_record,
    leading_id,
    safe_repr,
)
from fennel.keys import GROUP
from fennel.middleware import Hooks, call_hooks
from fennel.worker.executor import Executor
from fennel.worker.processes import RemoteError

if TYPE_CHECKING:
    from fennel.app import App

__all__ = ["InFlight", "JobRunner"]

log = get_logger("fennel.worker")


@dataclass(eq=False)
class InFlight:
    """A delivered entry this worker owns until it records an outcome or hands it back."""

    entry: DeliveredEntry
    job: Job | None = None
    started: float = field(default_factory=time.monotonic)
    #: Set when a lease renewal finds another worker owns the entry now.
    lost: bool = False
    task: asyncio.Task[None] | None = None


class JobRunner:
    def __init__(self, app: App[Any], broker: Broker, executor: Executor, consumer: str) -> None:
        self.app = app
        self.settings = app.settings
        self.broker = broker
        self.executor = executor
        self.consumer = consumer
        self.keys = app.keys
        self._ttl = self.settings.results_ttl
        self._hooks = Hooks(app.middleware)
        self._to_mark: list[tuple[str, str]] = []
        self._background: set[asyncio.Task[None]] = set()

    async def handle(self, flight: InFlight) -> None:
        """Run one delivered entry to exactly one recorded outcome."""
        try:
            await self._handle(flight)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An outcome that cannot even be written down (a value the envelope cannot carry,
            # a callback that is not a signature, an exception whose repr() raises): left
            # unrecorded, the entry would be delivered and run again and again.
            await self._unrecordable(flight, exc, traceback.format_exc())

    async def _handle(self, flight: InFlight) -> None:
        entry = flight.entry
        if entry.envelope is not None and len(entry.envelope) > self.settings.max_payload:
            # Written around the client (which enforces the limit): never parsed at all.
            await self._bury_raw(entry, f"envelope of {len(entry.envelope)} bytes is over the "
                                        f"max_payload limit of {self.settings.max_payload}",
                                 leading_id(entry.envelope))
            return
        try:
            job = decode(entry.envelope) if entry.envelope is not None else None
        except MalformedEnvelope as exc:
            await self._bury_raw(entry, f"undecodable job: {exc}", exc.job_id, exc.reply_to)
            return
        if job is None:
            await self._bury_raw(entry, "stream entry has no job envelope")
            return
        flight.job = job
        attempt = job.tries + 1
        if entry.deliveries > self.settings.max_deliveries:
            reason = (f"delivered {entry.deliveries} times without finishing (max_deliveries="
                      f"{self.settings.max_deliveries}); it may be crashing its worker")
            err = {"type": "MaxDeliveriesExceeded", "args": [reason], "traceback": "",
                   "attempt": attempt, "at": time.time()}
            await self._dead(flight, job, err, reason)
            return
        task = self.app.tasks.get(job.task)
        if task is None:
            # Never imported by name: the registry is the only source of code. During a
            # rolling deploy another worker may know it, so this is a retryable failure.
            unknown = UnknownTask(
                f"Task {job.task!r} is not registered on app {self.app.name!r} in this worker. "
                "Deploy the code that defines it, then replay the job from the DLQ."
            )
            await self._failed(flight, job, unknown, "", 0.0)
            return

        self._mark_started(job.id, entry.entry_id)
        if hooks := self._hooks("before_execute"):
            await call_hooks(hooks, "before_execute", self.app, job)
        started = time.perf_counter()
        try:
            value = await self.executor.run(task, job.args, job.kwargs, job.timeout,
                                            entry.envelope or b"")
            payload = encode_value(value, f"task {job.task!r}")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            duration = time.perf_counter() - started
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                exc = RuntimeError(f"task raised {type(exc).__name__}")
            tb = exc.remote_traceback if isinstance(exc, RemoteError) else traceback.format_exc()
            if hooks := self._hooks("after_execute"):
                await call_hooks(hooks, "after_execute", self.app, job, exc, duration)
            await self._failed(flight, job, exc, tb, duration)
            return
        duration = time.perf_counter() - started
        if hooks := self._hooks("after_execute"):
            await call_hooks(hooks, "after_execute", self.app, job, None, duration)
        result = payload if self.settings.results_enabled else b""
        if job.on_success:
            recorded = await self._complete(flight, job, "SUCCESS", result, b"", "",
                                            job.on_success, value)
        else:
            recorded = await self._record(flight, lambda: self.broker.succeed(
                self.consumer, entry.entry_id, job.id, result, job.reply_to or "", self._ttl))
        if recorded and (hooks := self._hooks("on_success")):
            await call_hooks(hooks, "on_success", self.app, job, value, duration)

    def _mark_started(self, job_id: str, entry_id: str) -> None:
        """Set EXECUTING without waiting for it: jobs started in the same loop turn share one
        call, and a completion that overtakes it keeps its terminal status (see start.lua).
        Fenced like the outcomes: a worker that lost the entry cannot mark the job."""
        self._to_mark.append((job_id, entry_id))
        if len(self._to_mark) == 1:
            task = asyncio.get_running_loop().create_task(self._flush_marks())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _flush_marks(self) -> None:
        await asyncio.sleep(0)
        ids, self._to_mark = self._to_mark, []
        try:
            await self.broker.mark_executing(self.consumer, ids)
        except BrokerError as exc:
            log.debug("job.mark_started_failed", error=exc, count=len(ids))

    # -- outcomes ---------------------------------------------------------------------------

    async def _failed(self, flight: InFlight, job: Job, exc: BaseException, tb: str,
                      duration: float) -> None:
        attempt = job.tries + 1
        record = error_record(exc, attempt, tb)
        if isinstance(exc, RemoteError):
            record["type"] = exc.type_name
        if isinstance(exc, SerializationError):
            record["type"] = "SerializationError"
        if hooks := self._hooks("on_failure"):
            await call_hooks(hooks, "on_failure", self.app, job, exc)
        nxt = job.with_error(record)
        reason = f"{record['type']}: retries exhausted"
        if job.tries < job.max_retries:
            delay = self._backoff(job.tries)
            try:
                # The history is bounded, and shed further if need be: Fennel's bookkeeping
                # must never push a job it accepted over max_payload (the next delivery would
                # refuse it unread, its waiter never answered).
                envelope = nxt.encode_fitting(self.settings.max_payload)
            except PayloadTooLarge as too_large:
                reason = f"{record['type']}: its retry cannot be enqueued ({too_large})"
            else:
                ok = await self._record(flight, self._script(
                    "retry", (self.keys.queue, self.keys.job(job.id), self.keys.schedule),
                    (GROUP, self.consumer, flight.entry.entry_id, envelope, int(delay * 1000),
                     job.id, _error_json(record))))
                if ok and (hooks := self._hooks("on_retry")):
                    await call_hooks(hooks, "on_retry", self.app, job, exc, delay)
                return
        job.errors, job.failures = nxt.errors, nxt.failures
        await self._dead(flight, job, record, reason, exc)

    def _backoff(self, tries: int) -> float:
        try:
            return max(0.0, float(self.settings.retry_backoff(tries)))
        except Exception:
            log.exception("fennel.retry_backoff_failed", tries=tries)
            return 1.0

    async def _dead(self, flight: InFlight, job: Job, record: dict[str, Any], reason: str,
                    exc: BaseException | None = None) -> None:
        if record not in job.errors:
            job.failures = job.attempts_failed + 1
            job.errors = [*job.errors, record][-MAX_ERRORS:]
        ok = await self._complete(flight, job, "DEAD", _error_json(record), job.encode(), reason,
                                  job.on_failure, record)
        if ok and (hooks := self._hooks("on_dead")):
            await call_hooks(hooks, "on_dead", self.app, job, reason)

    async def _bury_raw(self, entry: DeliveredEntry, reason: str, job_id: str = "",
                        reply_to: str = "") -> None:
        """Move an entry that is not a job at all to the DLQ, raw bytes and reason. If its id
        could be read, that job is marked DEAD too, so whoever waits for it is answered."""
        raw = entry.envelope or b""
        log.error("job.undecodable", entry_id=entry.entry_id, job_id=job_id or None,
                  reason=reason, raw=raw[:200])
        err = orjson.dumps({"type": "UndecodableJob", "args": [reason], "traceback": ""})
        await self._record(InFlight(entry), self._script(
            "complete", (self.keys.queue, self.keys.job(job_id), self.keys.dead),
            (GROUP, self.consumer, entry.entry_id, "DEAD", err, self._ttl, reply_to, job_id,
             raw, reason, "1")))

    async def _unrecordable(self, flight: InFlight, exc: Exception, tb: str) -> None:
        """Record, once, as the job's failure, an outcome that could not be recorded as it was.

        The DLQ keeps the envelope as delivered (the job as it was sent, replayable), and the
        error names the reason. Nothing here encodes user values, so this cannot fail alike.
        """
        entry, job = flight.entry, flight.job
        reason = f"its outcome could not be recorded: {type(exc).__name__}: {_safe_str(exc)}"
        log.error("job.unrecordable", entry_id=entry.entry_id, job_id=job.id if job else None,
                  reason=reason)
        err = orjson.dumps({"type": "UnrecordableOutcome", "args": [reason],
                            "traceback": tb[-MAX_TRACEBACK:]})
        job_id = job.id if job is not None else ""
        await self._record(flight, self._script(
            "complete", (self.keys.queue, self.keys.job(job_id), self.keys.dead),
            (GROUP, self.consumer, entry.entry_id, "DEAD", err, self._ttl,
             (job.reply_to or "") if job is not None else "", job_id, entry.envelope or b"",
             reason, "1")))

    async def _complete(self, flight: InFlight, job: Job, status: str, payload: bytes,
                        dlq_envelope: bytes, reason: str, followups: list[dict[str, Any]],
                        passed: Any) -> bool:
        keys = [self.keys.queue, self.keys.job(job.id), self.keys.dead]
        extra: list[bytes] = []
        for i, sig in enumerate(followups):
            cb = _followup(job, i, status, sig, passed)
            keys.append(self.keys.job(cb.id))
            extra.append(cb.encode())
        return await self._record(flight, self._script(
            "complete", keys,
            (GROUP, self.consumer, flight.entry.entry_id, status, payload, self._ttl,
             job.reply_to or "", job.id, dlq_envelope, reason, "1", *extra),
        ))

    def _script(self, name: str, keys: Sequence[str],
                args: Sequence[Any]) -> Callable[[], Awaitable[int]]:
        """A retryable call of an outcome script, for :meth:`_record`."""
        return lambda: self.broker.script(name, keys, args)

    async def _record(self, flight: InFlight, call: Callable[[], Awaitable[int]]) -> bool:
        """Run a fenced outcome call until Redis answers; False if the lease was lost.

        Redis being down or out of memory must not drop the outcome: the call is retried with
        capped backoff while the worker keeps renewing the lease. Retrying is harmless when a
        reply was lost: the job hash remembers which delivery recorded it (answer -1), and
        the fencing check refuses anyone else (answer 0).
        """
        delay = 0.05
        while True:
            try:
                answer = int(await call())
                break
            except BrokerError as exc:
                if flight.lost:
                    answer = 0
                    break
                log.warning("job.record_failed", entry_id=flight.entry.entry_id, error=exc,
                            retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        ok = answer != 0
        job_id = flight.job.id if flight.job else None
        if answer == 0:
            log.warning("job.lease_lost", entry_id=flight.entry.entry_id, job_id=job_id,
                        detail="another worker owns this job now; this outcome was discarded")
        elif answer == -1:
            # Our own earlier call recorded it and its reply was lost: the outcome stands.
            log.info("job.already_recorded", entry_id=flight.entry.entry_id, job_id=job_id)
        return ok


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:MAX_TRACEBACK]
    except Exception:  # a user's __str__ may raise anything
        return safe_repr(exc)


def _error_json(record: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": record["type"], "args": record["args"],
                         "traceback": record.get("traceback", "")})


def _followup(job: Job, index: int, status: str, sig: dict[str, Any], passed: Any) -> Job:
    """The job a completion callback enqueues: its own args plus the result (or error)."""
    return Job(
        # Deterministic, so a retried completion cannot enqueue a second copy.
        id=f"{job.id}.{'s' if status == 'SUCCESS' else 'f'}{index}",
        task=str(sig["task"]),
        args=[*sig.get("args", []), passed],
        kwargs=dict(sig.get("kwargs", {})),
        max_retries=int(sig.get("max_retries", 0)),
        timeout=sig.get("timeout"),
        on_success=list(sig.get("on_success", [])),
        on_failure=list(sig.get("on_failure", [])),
        # The producer's listener hears of follow-ups too, so their handles resolve at once.
        reply_to=job.reply_to,
        headers=dict(job.headers),
    )
