"""All Redis I/O of Fennel.

Every multi-step state change is one Lua script from ``scripts/``, loaded once and called by
SHA. Calls issued together on the event loop are coalesced into one pipelined round trip by a
:class:`_Coalescer`, which is how many concurrent ``delay()`` calls, or many completions
finishing at once on a worker, cost one round trip instead of one each.

redis-py errors are translated here, and only here, into :mod:`fennel.exceptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import importlib.resources
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fennel._redis_url import mask_url
from fennel.broker.batching import Coalescer, Deadline, Encodable, SuccessBatch
from fennel.exceptions import (
    AuthenticationFailed,
    BrokerError,
    ConnectionFailed,
    FennelError,
    OutOfMemory,
)
from fennel.keys import GROUP, Keys

__all__ = ["Broker", "DeliveredEntry", "QueueStats"]

T = TypeVar("T")

SCRIPT_NAMES = (
    "enqueue", "enqueue_many", "succeed_many", "start", "complete", "retry", "promote",
    "handback", "renew", "reclaim", "replay",
    "adopt", "heartbeat", "watch",
)

#: Pauses before each new attempt of a call that met a dead connection. The first retry is
#: immediate: a pooled connection that the server closed (restart, CLIENT KILL, its idle
#: ``timeout``) fails on first use, and a fresh one works at once.
_RETRY_PAUSES = (0.0, 0.05, 0.2, 0.5)

#: Calls that must not run twice when their reply is lost: a repeated claim would raise the
#: entries' delivery counts, and a repeated replay would report a replayed job as not
#: replayed. Every other call is idempotent or fenced (see the scripts).
_UNREPEATABLE = frozenset({"reclaim", "adopt", "replay"})


def _dead_connection(exc: BaseException) -> bool:
    """A connection that failed, which a fresh one may not: refused credentials do not heal."""
    return isinstance(exc, (rexc.ConnectionError, ConnectionError)) and not isinstance(
        exc, (rexc.AuthenticationError, rexc.AuthorizationError))


def _no_group(exc: BaseException) -> bool:
    """Redis's NOGROUP reply: the consumer group (or the whole stream) is gone, because Redis
    restarted without persistence, was flushed, or the group was destroyed."""
    return isinstance(exc, rexc.ResponseError) and str(exc).startswith("NOGROUP")


_INCLUDE = re.compile(r"^--!include (\w+)$", re.MULTILINE)


def _load_scripts() -> dict[str, tuple[str, str]]:
    """name -> (source, sha1) for every bundled Lua script.

    A line ``--!include NAME`` stands for ``scripts/lib/NAME.lua``: a piece shared by several
    scripts is written once. (EVALSHA scripts cannot call each other, and Redis Functions,
    which could, need Redis 7.)
    """
    root = importlib.resources.files("fennel.broker") / "scripts"

    def include(m: re.Match[str]) -> str:
        return (root / "lib" / f"{m.group(1)}.lua").read_text(encoding="utf-8").rstrip("\n")

    out = {}
    for name in SCRIPT_NAMES:
        source = _INCLUDE.sub(include, (root / f"{name}.lua").read_text(encoding="utf-8"))
        out[name] = (source, hashlib.sha1(source.encode()).hexdigest())
    return out


_SCRIPTS = _load_scripts()


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveredEntry:
    """One stream entry handed to this consumer: its id, the raw envelope (``None`` if the
    entry had none), and how many times it has been delivered."""

    entry_id: str
    envelope: bytes | None
    deliveries: int = 1


@dataclasses.dataclass(frozen=True)
class QueueStats:
    """Queue figures of one app: ready jobs (``queue``), delivered but unacknowledged
    (``pending``), waiting for a retry (``scheduled``), dead, and the live workers' reports."""

    queue: int
    pending: int
    scheduled: int
    dead: int
    group_exists: bool
    workers: dict[str, dict[str, Any]]


class Broker:
    """Connection to one Redis for one app. Bound to the event loop that first uses it."""

    def __init__(
        self,
        url: str,
        keys: Keys,
        *,
        connect_timeout: float = 5.0,
        socket_timeout: float = 10.0,
        retries: int = len(_RETRY_PAUSES),
        max_connections: int | None = None,
    ) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        self.keys = keys
        self.socket_timeout = socket_timeout
        self._retries = max(0, min(retries, len(_RETRY_PAUSES)))
        # Time limits are applied here, around each call (see Deadline), not by redis-py:
        # its socket_timeout wraps every send in asyncio.wait_for, an extra task per command
        # (a round trip measured 58 us without it, 90 us with it). Concurrency stays low
        # because calls of one loop turn share a pipeline, so a plain pool suffices.
        pool = aioredis.ConnectionPool.from_url(
            url,
            max_connections=max_connections or 1000,
            socket_connect_timeout=connect_timeout,
            socket_timeout=None,
            # redis-py only drops a connection that failed; the broker decides what is
            # retried (see _run), since not every call is safe to repeat.
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        self._redis: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._coalescer = Coalescer(self)
        self._successes = SuccessBatch(self)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    async def aclose(self) -> None:
        """Close every connection of the pool (the client does not own a pool it was given)."""
        await self._redis.aclose(close_connection_pool=True)

    def translate(self, exc: BaseException, doing: str) -> BaseException:
        """A Fennel error for a redis-py error raised while ``doing`` something."""
        if isinstance(exc, FennelError):
            return exc  # translated already (e.g. by a batch, for each of its callers)
        if isinstance(exc, rexc.AuthenticationError | rexc.AuthorizationError):
            # Before the generic case: these are ConnectionErrors too in redis-py.
            if not self._redis.connection_pool.connection_kwargs.get("password"):
                return AuthenticationFailed(
                    f"Redis at {self.masked_url} requires a password and the URL has none "
                    f"(seen while {doing}: {mask_url(str(exc))}). Put it in the URL: "
                    "redis://:PASSWORD@host:port/db (or redis://USER:PASSWORD@...)."
                )
            return AuthenticationFailed(
                f"Redis at {self.masked_url} refused the credentials while {doing} "
                f"({mask_url(str(exc))}). Check the username and password in the URL."
            )
        if isinstance(exc, (rexc.ConnectionError, rexc.TimeoutError, OSError)):
            reason = str(exc) or type(exc).__name__
            return ConnectionFailed(
                f"Cannot reach Redis at {self.masked_url} while {doing} "
                f"({mask_url(reason)}). Is the server running and the URL right?"
            )
        if isinstance(exc, rexc.OutOfMemoryError) or (
                isinstance(exc, rexc.ResponseError) and (
                    str(exc).startswith("OOM") or "used memory > 'maxmemory'" in str(exc))):
            return OutOfMemory(
                f"Redis at {self.masked_url} is out of memory (maxmemory reached) while "
                f"{doing}; nothing was written. Free memory or raise maxmemory, then retry."
            )
        if isinstance(exc, rexc.RedisError):
            return BrokerError(f"Redis at {self.masked_url} failed while {doing}: {exc}")
        return exc

    async def _run(self, call: Callable[[], Awaitable[T]], *, repeatable: bool = True,
                   timeout: float | None = None) -> T:
        """Run ``call`` (a redis-py call, raising redis-py errors) within one deadline of
        ``timeout`` (default ``socket_timeout``), retries included.

        - A dead connection (server restarted, ``CLIENT KILL``, idle ``timeout``) makes a
          ``repeatable`` call run again at once on a fresh connection, then with short
          pauses: a Redis that is up again never shows the caller an error.
        - NOGROUP, wherever it is met, recreates the consumer group and runs the call once
          more. Every call that can meet it is safe to run again: reads, renewals, claims
          (the new group has nothing pending) and the fenced outcome scripts, which record
          an outcome whose group vanished under it (see complete.lua).
        """
        pauses = iter(_RETRY_PAUSES[:self._retries] if repeatable else ())
        regrouped = False
        async with Deadline(self.socket_timeout if timeout is None else timeout):
            while True:
                try:
                    return await call()
                except rexc.ResponseError as exc:
                    if regrouped or not _no_group(exc):
                        raise
                    regrouped = True
                    await self._create_group()
                except (rexc.ConnectionError, ConnectionError) as exc:
                    pause = next(pauses, None)
                    if pause is None or not _dead_connection(exc):
                        raise
                    await self._drop_idle_connections()
                    await asyncio.sleep(pause)

    async def _drop_idle_connections(self) -> None:
        # What killed one pooled connection (a restart, the idle timeout) most likely killed
        # the idle others too: reconnecting them costs less than failing on each in turn.
        with contextlib.suppress(Exception):
            await self._redis.connection_pool.disconnect(inuse_connections=False)

    async def _guard(self, doing: str, call: Callable[[], Awaitable[T]], *,
                     repeatable: bool = True, timeout: float | None = None) -> T:
        try:
            return await self._run(call, repeatable=repeatable, timeout=timeout)
        except (rexc.RedisError, OSError) as exc:
            raise self.translate(exc, doing) from exc

    async def script(self, name: str, keys: Sequence[str], args: Sequence[Encodable]) -> Any:
        """Run a bundled script; concurrent calls share one pipelined round trip."""
        return await self._coalescer.call(name, keys, args)

    async def script_now(self, name: str, keys: Sequence[str], args: Sequence[Encodable],
                         timeout: float | None = None) -> Any:
        """Run a bundled script in its own round trip (for rarely called, larger scripts)."""
        try:
            return await self._run(lambda: self._evalsha(name, keys, args),
                                   repeatable=name not in _UNREPEATABLE, timeout=timeout)
        except (rexc.RedisError, OSError) as exc:
            raise self.translate(exc, f"running {name}") from exc

    async def _evalsha(self, name: str, keys: Sequence[str], args: Sequence[Encodable]) -> Any:
        if name.startswith("!"):  # a plain command (see Coalescer)
            return await self._redis.execute_command(  # type: ignore[no-untyped-call]
                name[1:], *keys, *args)
        source, sha = _SCRIPTS[name]
        try:
            return await self._redis.evalsha(sha, len(keys), *keys, *args)
        except rexc.NoScriptError:
            # A new server, or it lost its script cache (restart, SCRIPT FLUSH).
            await self._redis.script_load(source)
            return await self._redis.evalsha(sha, len(keys), *keys, *args)

    async def scripts_pipelined(
        self, calls: Sequence[tuple[str, Sequence[str], Sequence[Encodable]]]
    ) -> list[Any]:
        """Run many script calls in one round trip; results (or exceptions) in order."""
        repeatable = not any(name in _UNREPEATABLE for name, _k, _a in calls)
        if len(calls) == 1:
            # One call: a plain command is cheaper than a pipeline of one.
            name, keys, args = calls[0]
            try:
                return [await self._run(lambda: self._evalsha(name, keys, args),
                                        repeatable=repeatable)]
            except (rexc.ConnectionError, rexc.TimeoutError, OSError):
                raise
            except rexc.RedisError as exc:
                return [exc]
        return await self._run(lambda: self._pipelined(calls), repeatable=repeatable)

    async def _pipelined(
        self, calls: Sequence[tuple[str, Sequence[str], Sequence[Encodable]]]
    ) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        regrouped = False
        for attempt in range(3):
            pipe = self._redis.pipeline(transaction=False)
            for i in pending:
                name, keys, args = calls[i]
                if name.startswith("!"):
                    pipe.execute_command(name[1:], *keys, *args)
                else:
                    pipe.evalsha(_SCRIPTS[name][1], len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
            missing, again = set(), []
            for i, reply in zip(pending, replies, strict=True):
                if isinstance(reply, rexc.NoScriptError) and attempt < 2:
                    missing.add(calls[i][0])
                    again.append(i)
                elif _no_group(reply) and not regrouped and attempt < 2:
                    again.append(i)  # see _run: every call that meets NOGROUP may run again
                else:
                    results[i] = reply
            if not again:
                break
            if any(_no_group(r) for r in replies):
                regrouped = True
                await self._create_group()
            # The server lost its script cache (restart, SCRIPT FLUSH): load and redo those.
            for name in missing:
                await self._redis.script_load(_SCRIPTS[name][0])
            pending = again
        return results

    # -- producer side ----------------------------------------------------------------------

    async def enqueue(self, job_id: str, envelope: bytes) -> None:
        await self.script("enqueue", (self.keys.queue, self.keys.job(job_id)), (envelope,))

    def enqueue_threadsafe(self, loop: asyncio.AbstractEventLoop, job_id: str,
                           envelope: bytes) -> None:
        """:meth:`enqueue` from another thread, joining the loop's coalesced pipelines."""
        self._coalescer.submit_threadsafe(loop, "enqueue", (self.keys.queue,
                                                            self.keys.job(job_id)), (envelope,))

    async def enqueue_many(self, jobs: Sequence[tuple[str, bytes]], chunk: int = 250) -> None:
        """Enqueue many jobs: one ``enqueue_many`` script call per ``chunk`` jobs, four calls in
        flight at a time, so Redis runs one chunk while the next is being packed and sent."""
        prefix = self.keys.job("")
        calls = []
        for start in range(0, len(jobs), chunk):
            args: list[Encodable] = [prefix]
            for job_id, env in jobs[start:start + chunk]:
                args.append(job_id)
                args.append(env)
            calls.append(("enqueue_many", (self.keys.queue,), args))
        # A few calls in flight keep Redis and this client busy at once without opening a
        # connection per chunk.
        window = asyncio.Semaphore(4)

        async def send(call: tuple[str, Sequence[str], Sequence[Encodable]]) -> Any:
            async with window:
                (reply,) = await self.scripts_pipelined([call])
                return reply

        try:
            replies = await asyncio.gather(*(send(c) for c in calls))
        except (rexc.RedisError, OSError) as exc:
            raise self.translate(exc, "enqueueing jobs") from exc
        for reply in replies:
            if isinstance(reply, BaseException):
                raise self.translate(reply, "enqueueing jobs") from reply

    async def job_states(self, job_ids: Sequence[str]) -> list[list[bytes | None]]:
        """``[status, result, error]`` of each job. Reads made in the same loop turn, by any
        number of waiters, share one pipelined round trip."""
        return list(await asyncio.gather(*(
            self._coalescer.call("!HMGET", (self.keys.job(job_id),), _STATE_FIELDS)
            for job_id in job_ids
        )))

    async def watch_jobs(self, job_ids: Sequence[str], channel: str) -> list[list[Any]]:
        """``[status, result, error]`` of each job, and ``channel`` registered on each one not
        finished, in one atomic step (see watch.lua): its outcome is then published there too,
        whoever enqueued it. Calls made in the same loop turn share one pipelined round trip."""
        return list(await self._coalescer.call(
            "watch", [self.keys.job(j) for j in job_ids], (channel,)))

    async def count_jobs(self, job_ids: Sequence[str]) -> int:
        """How many of these jobs still have a record, in one command."""
        return int(await self._coalescer.call(
            "!EXISTS", [self.keys.job(j) for j in job_ids], ()))

    async def subscribe(self, channel: str) -> PubSub:
        """A pub/sub connection subscribed to ``channel``, returned once Redis confirmed the
        subscription: from then on every message published there reaches it. A dead pooled
        connection is replaced at once, as for any call that is safe to repeat."""

        async def attempt() -> PubSub:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=False)
            try:
                await pubsub.subscribe(channel)
                while True:
                    msg = await pubsub.get_message(timeout=self.socket_timeout)
                    if msg is not None and msg.get("type") == "subscribe":
                        return pubsub
            except BaseException:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise

        try:
            return await self._run(attempt)
        except (rexc.RedisError, OSError) as exc:
            raise self.translate(exc, "subscribing to job completions") from exc

    async def ping(self) -> None:
        await self._guard("connecting", self._redis.ping)

    # -- consumer side ----------------------------------------------------------------------

    async def ensure_group(self, timeout: float | None = None) -> None:
        """Create the consumer group at id 0 (and the stream) unless it exists, within
        ``timeout`` seconds (default ``socket_timeout``)."""
        await self._guard("creating the consumer group", self._create_group, timeout=timeout)

    async def _create_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.keys.queue, GROUP, id="0", mkstream=True)
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, consumer: str, count: int, block_ms: int) -> list[DeliveredEntry]:
        """New entries for ``consumer`` (at most ``count``), waiting up to ``block_ms``.

        Recreates the consumer group if it vanished (Redis restarted without persistence).
        """
        return await self._read_group(consumer, ">", count, block_ms, "reading the queue")

    async def own_pending(self, consumer: str, count: int = 1000) -> list[DeliveredEntry]:
        """Entries delivered to ``consumer`` and not yet acknowledged, with their envelopes."""
        return await self._read_group(consumer, "0", count, None, "reading pending entries")

    async def _read_group(self, consumer: str, start: str, count: int, block_ms: int | None,
                          doing: str) -> list[DeliveredEntry]:
        try:
            # Not repeated on a dead connection: entries delivered to a read whose reply was
            # lost are found by adopt_orphans, not by reading again.
            reply: Any = await self._run(
                lambda: self._redis.xreadgroup(GROUP, consumer, {self.keys.queue: start},
                                               count=count, block=block_ms),
                repeatable=start != ">",
                timeout=self.socket_timeout + (block_ms or 0) / 1000)
        except (rexc.RedisError, OSError) as exc:
            raise self.translate(exc, doing) from exc
        return [
            DeliveredEntry(eid.decode(), fields.get(b"j") if fields else None)
            for _stream, entries in reply or () for eid, fields in entries
        ]

    async def hand_back(self, consumer: str, entry: DeliveredEntry) -> bool:
        """Requeue an unfinished entry at once (graceful shutdown); no retry is used."""
        if entry.envelope is None:
            # Deleted meanwhile: nothing to run, just clear it from our pending list.
            await self._guard("acknowledging", lambda: self._redis.xack(
                self.keys.queue, GROUP, entry.entry_id))
            return False
        job_key = self.keys.job(_job_id_of(entry.envelope))
        return bool(await self.script_now(
            "handback", (self.keys.queue, job_key),
            (GROUP, consumer, entry.entry_id, entry.envelope),
        ))

    async def succeed(self, consumer: str, entry_id: str, job_id: str, result: bytes,
                      reply_to: str, ttl: int) -> int:
        """Record one job's success (no callbacks); successes finishing in the same loop turn
        share one ``succeed_many`` call. Returns 1, 0 (fenced out) or -1 (already recorded)."""
        return int(await self._successes.add(consumer, ttl, (entry_id, job_id, result, reply_to)))

    @property
    def lease_clock(self) -> str:
        """Hash stamped with Redis TIME by every renewal and reclaim (see renew.lua)."""
        return self.keys.prefix + "lease"

    async def renew(self, consumer: str, entry_ids: Sequence[str], stall_ms: int,
                    timeout: float | None = None) -> set[str]:
        """Renew leases; returns the entries this consumer no longer owns. ``timeout``
        bounds the call (retries included) instead of ``socket_timeout``: the lease keeper
        derives it from the lease, so a hung call cannot outlast it."""
        lost = await self.script_now("renew", (self.keys.queue, self.lease_clock),
                                     (GROUP, consumer, stall_ms, *entry_ids), timeout=timeout)
        return {e.decode() for e in lost}

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int, stall_ms: int,
                      max_deliveries: int, empty: bool) -> tuple[list[DeliveredEntry], int]:
        """Entries idle for ``min_idle_ms`` (their worker died), now owned by ``consumer``,
        and how many *suspects* wait (see reclaim.lua): those are only taken one at a time,
        by a worker that may take one (``empty``: it holds no suspect).

        Nothing is taken within one lease after Redis was unreachable or paused for longer
        than ``stall_ms``.
        """
        reply = await self.script_now(
            "reclaim", (self.keys.queue, self.lease_clock),
            (GROUP, consumer, min_idle_ms, count, stall_ms, max_deliveries,
             "1" if empty else "0"),
        )
        entries, waiting = reply
        return _entries(entries), int(waiting)

    async def adopt_orphans(self, consumer: str, min_idle_ms: int, known: set[str],
                            count: int) -> list[DeliveredEntry]:
        """Entries delivered to ``consumer`` that it never saw (a read's reply was lost),
        idle for ``min_idle_ms``: claimed again, with their envelopes and delivery counts."""
        rows: Any = await self._guard("reading pending entries", lambda: self._redis.xpending_range(
            self.keys.queue, GROUP, "-", "+", count + len(known), consumername=consumer,
            idle=min_idle_ms,
        ))
        ids = [r["message_id"].decode() for r in rows]
        orphans = [i for i in ids if i not in known][:count]
        if not orphans:
            return []
        reply = await self.script_now("adopt", (self.keys.queue,),
                                      (GROUP, consumer, min_idle_ms, *orphans))
        return _entries(reply)

    async def heartbeat(self, consumer: str, info: bytes, dead_after: float,
                        forget_idle_ms: int) -> list[str]:
        """Stamp ``consumer`` alive, drop workers silent for ``dead_after`` seconds, and
        remove consumers of dead workers idle for ``forget_idle_ms`` that own nothing
        pending, all in one atomic step (see heartbeat.lua). Returns those removed."""
        k = self.keys
        removed = await self.script_now(
            "heartbeat", (k.queue, k.workers, k.worker_info),
            (GROUP, consumer, info, dead_after, forget_idle_ms))
        return [r.decode() for r in removed]

    async def promote_due(self, batch: int = 500) -> int:
        return int(await self.script_now(
            "promote", (self.keys.schedule, self.keys.queue), (self.keys.job(""), batch)
        ))

    # -- admin ------------------------------------------------------------------------------

    async def dead_entries(self, count: int = 1000) -> list[tuple[str, dict[bytes, bytes]]]:
        """Every entry of the dead-letter stream, oldest first."""
        out: list[tuple[str, dict[bytes, bytes]]] = []
        start = "-"
        while True:
            batch: Any = await self._guard("reading the dead-letter queue", functools.partial(
                self._redis.xrange, self.keys.dead, min=start, max="+", count=count))
            for entry_id, fields in batch:
                out.append((entry_id.decode(), fields))
            if len(batch) < count:
                return out
            last = batch[-1][0].decode()
            ms, seq = last.split("-")
            start = f"{ms}-{int(seq) + 1}"

    async def replay(self, entry_id: str, job_id: str, envelope: bytes) -> bool:
        return bool(await self.script(
            "replay", (self.keys.dead, self.keys.queue, self.keys.job(job_id)),
            (entry_id, envelope),
        ))

    async def purge(self, entry_ids: Sequence[str]) -> list[bool]:
        """Delete DLQ entries in one round trip; which of them this call deleted."""
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xdel(self.keys.dead, entry_id)
        # Not repeated: a second XDEL would report a purged entry as not purged.
        replies = await self._guard("purging the dead-letter queue", pipe.execute,
                                    repeatable=False)
        return [bool(n) for n in replies]

    async def queue_stats(self) -> QueueStats:
        """The app's queue figures, read from Redis in one round trip."""
        k = self.keys

        async def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.time()
            pipe.xlen(k.queue)
            pipe.xpending(k.queue, GROUP)
            pipe.zcard(k.schedule)
            pipe.xlen(k.dead)
            pipe.zrange(k.workers, 0, -1, withscores=True)
            pipe.hgetall(k.worker_info)
            return await pipe.execute(raise_on_error=False)

        try:
            now, depth, pending, scheduled, dead, beats, infos = await self._run(read)
        except (rexc.RedisError, OSError) as exc:
            raise self.translate(exc, "reading queue statistics") from exc
        if isinstance(now, BaseException):
            raise self.translate(now, "reading queue statistics")
        group = not isinstance(pending, BaseException)
        workers = {}
        for name, score in beats if not isinstance(beats, BaseException) else ():
            info = infos.get(name) if isinstance(infos, dict) else None
            workers[name.decode()] = {
                "seen_ago": max(0.0, now[0] + now[1] / 1e6 - score),
                **(orjson.loads(info) if info else {}),
            }
        in_flight = int(pending["pending"]) if group else 0
        return QueueStats(
            # Acknowledged entries are deleted, so the stream holds ready + in-flight jobs.
            queue=max(0, int(depth) - in_flight) if not isinstance(depth, BaseException) else 0,
            pending=in_flight,
            scheduled=int(scheduled),
            dead=int(dead) if not isinstance(dead, BaseException) else 0,
            group_exists=group,
            workers=workers,
        )

    async def call(self, doing: str, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run an arbitrary command with error translation (admin and stats)."""
        return await self._guard(doing, lambda: fn(self._redis))

    async def mark_executing(self, consumer: str, started: Sequence[tuple[str, str]]) -> None:
        """Mark ``(job id, entry id)`` jobs EXECUTING, each only while ``consumer`` owns its
        entry (see start.lua); calls made in the same loop turn share one round trip."""
        await self.script("start", [self.keys.queue, *(self.keys.job(j) for j, _e in started)],
                          (GROUP, consumer, *(e for _j, e in started)))

    async def replay_raw(self, entry_id: str, job_id: str, raw: bytes) -> bool:
        """Put an undecodable dead entry's bytes back on the queue as they are (its job hash,
        when it names one, back to SENT); True if this call took it from the DLQ."""
        return bool(await self.script(
            "replay", (self.keys.dead, self.keys.queue, self.keys.job(job_id)),
            (entry_id, raw, "1" if job_id else "0"),
        ))


_STATE_FIELDS = ("status", "result", "error")

def _entries(reply: Any) -> list[DeliveredEntry]:
    return [DeliveredEntry(eid.decode(), env if env else None, int(n)) for eid, env, n in reply]


def _job_id_of(envelope: bytes) -> str:
    try:
        value = orjson.loads(envelope).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
