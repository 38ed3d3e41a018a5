"""Logging set-up for the CLI. The library itself never configures logging.

Every record, Fennel's and any other library's (redis-py, asyncio, the app's own), goes
through the root logger to one handler and comes out in one format: JSON lines or console.

The worker must never depend on its log sink. A record is written at once only when that
cannot block: nothing is waiting before it, no other thread is writing, the sink reports room
for it, and the line fits in one atomic pipe write. Otherwise it goes on a bounded queue
(dropped and counted when that is full) that a background thread writes out, ignoring write
errors. So a closed pipe (``| head -1``), a full pipe nobody reads or a slow disk can cost log
lines, but never blocks the event loop, a signal handler or a job; and in the common case each
line is out before the next statement runs, so the last lines of a worker killed by a job
(``job.started`` of that job) are not lost with it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import os
import queue
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from fennel._log import Event, mask_secrets

__all__ = ["configure", "flush_logs"]

#: records waiting to be written; beyond this, new records are dropped (and counted)
QUEUE_SIZE = 10_000
#: most records formatted and written in one system call
_BATCH = 1024
#: seconds the writer lets records gather after the first one arrives
_GATHER = 0.01

_writer: _Writer | None = None
#: the format configure() set up for this process, if it was called
_format: str | None = None


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Queues records for the writer thread; never blocks and never raises."""

    def __init__(self, q: queue.SimpleQueue[Any], limit: int,
                 direct: Callable[[logging.LogRecord], bool], wake: threading.Event) -> None:
        super().__init__(q)
        self._queue = q
        self.limit = limit
        self._direct = direct
        self._wake = wake
        #: records dropped because the writer was too far behind
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not self._direct(record):
                self.enqueue(self.prepare(record))
        except Exception:
            self.handleError(record)

    def handle(self, record: logging.LogRecord) -> Any:
        if self.filters:
            return super().handle(record)
        # The queue is thread-safe: this hot path needs no handler lock.
        self.emit(record)
        return True

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The queue stays in this process, so the record needs no pickling-safe copy, and
        # formatting is left to the writer thread. Only %-arguments are merged now, as they
        # may change after this call returns.
        if record.args:
            try:
                record.msg = record.getMessage()
            except Exception:
                record.msg = f"{record.msg!r} % {record.args!r} (arguments do not match)"
            record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        if self._queue.qsize() >= self.limit:
            self.dropped += 1
        else:
            self._queue.put_nowait(record)
            self._wake.set()

    def handleError(self, record: logging.LogRecord) -> None:
        # The stdlib would print to sys.stderr, which is the very sink that may be blocked.
        self.dropped += 1


class _Writer:
    """The thread that formats queued records and writes them to a file descriptor.

    It writes with ``os.write`` on the raw descriptor, which shares no lock with
    ``sys.stderr``: a writer stuck on a full pipe blocks nobody else. Write errors (EPIPE once
    the reader is gone, ENOSPC, ...) lose the lines and nothing more; SIGPIPE is ignored, so
    a closed pipe is an error, not a death.
    """

    def __init__(self, fd: int, formatter: logging.Formatter) -> None:
        self.fd = fd
        self.formatter = formatter
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake = threading.Event()
        #: held while writing; whoever holds it writes everything taken off the queue first,
        #: so lines come out in the order they were logged
        self._io = threading.Lock()
        self.handler = _DroppingQueueHandler(self.queue, QUEUE_SIZE, self._direct, self._wake)
        #: records taken off the queue (written or not)
        self.done = 0
        #: records that could not be rendered, and writes that failed
        self.failed = 0
        self._reported = 0
        self._thread = threading.Thread(target=self._run, name="fennel-log-writer",
                                        daemon=True)
        self._thread.start()

    def _direct(self, record: logging.LogRecord) -> bool:
        """Write ``record`` now if that cannot block (see the module docstring); else False."""
        if not self.queue.empty() or not self._io.acquire(blocking=False):
            return False
        try:
            if not self.queue.empty():
                return False
            try:
                _r, ready, _x = select.select((), (self.fd,), (), 0)
            except (OSError, ValueError):
                return False
            if not ready:
                return False  # a full pipe: the writer thread waits for room instead
            try:
                line = (self.formatter.format(record) + "\n").encode("utf-8", "replace")
            except Exception:
                self.failed += 1
                return True
            if len(line) > select.PIPE_BUF:
                return False  # might not fit at once
            self._write(line)
            return True
        finally:
            self._io.release()

    def _run(self) -> None:
        q = self.queue
        while True:
            self._wake.wait()
            self._wake.clear()
            # Let a burst gather rather than waking up for every record: each wake-up takes
            # the GIL from the event loop in the middle of its work.
            time.sleep(_GATHER)
            with self._io:
                while not q.empty():
                    self._write_batch(q)

    def _write_batch(self, q: queue.SimpleQueue[Any]) -> None:
        batch: list[Any] = []
        while len(batch) < _BATCH:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
        if batch:
            lines: list[str] = []
            for item in batch:
                if isinstance(item, logging.LogRecord):
                    try:
                        lines.append(self.formatter.format(item))
                    except Exception:
                        self.failed += 1  # a record no formatter can render
            dropped = self.handler.dropped
            if dropped > self._reported:
                lines.append(self._dropped_line(dropped - self._reported))
                self._reported = dropped
            if lines:
                self._write(("\n".join(lines) + "\n").encode("utf-8", "replace"))
            self.done += len(batch)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            self.failed += 1

    def _dropped_line(self, count: int) -> str:
        record = logging.LogRecord("fennel", logging.WARNING, "(unknown file)", 0,
                                   Event(event="logging.dropped", count=count,
                                         detail="the log output could not keep up"), None, None)
        record._logger = None
        record._name = "warning"
        return self.formatter.format(record)

    def flush(self, timeout: float) -> bool:
        """Wait until what is queued now is written, or the writer makes no progress."""
        mark = threading.Event()
        self.queue.put(mark)
        self._wake.set()
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            if mark.wait(0.25):
                return True
            if self.done == seen:
                return False  # stuck on a sink nobody reads: do not wait on it
            seen = self.done
        return False


class _Timestamps:
    """Processor: the ISO time the event happened (the record's, not the time the writer got
    to it), with the date and time of day formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        record = event.get("_record")
        created = record.created if record is not None else time.time()
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{int((created - second) * 1e6):06d}Z"
        return event


def _error_fields(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """An exception becomes ``error_type``, ``error`` and ``traceback``, as in job events."""
    exc_info = event.pop("exc_info", None)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        _type, exc, _tb = exc_info
        event.setdefault("error_type", _type.__name__)
        event.setdefault("error", str(exc))
        event.setdefault("traceback", "".join(traceback.format_exception(*exc_info)))
    return event


def _traceback_below(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Console: a ``traceback`` field is printed under the line, not inline."""
    tb = event.get("traceback")
    if isinstance(tb, str) and tb and "exc_info" not in event:
        event["exception"] = event.pop("traceback").rstrip("\n")
    return event


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's ProcessorFormatter with a short cut for Fennel's own events.

    An :class:`~fennel._log.Event` is already a finished event dict (fields masked, exception
    resolved), so it skips the record copy and the stdlib formatting step, which are there for
    foreign records and for handlers that share a record; this one is used by the writer
    thread alone.
    """

    def format(self, record: logging.LogRecord) -> str:
        msg = record.msg
        if type(msg) is not Event:
            return super().format(record)
        event: Any = dict(msg)
        event["_record"] = record
        event["_from_structlog"] = True
        name = getattr(record, "_name", "info")
        for processor in self.processors:
            event = processor(None, name, event)
        return str(event)  # the renderer made it a str


def formatter(log_format: str, *, colors: bool = False) -> logging.Formatter:
    """The formatter that renders every record (Fennel's events and foreign records alike)."""
    common: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _Timestamps(),
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
    ]
    render: list[Any]
    if log_format == "json":
        render = [_error_fields, structlog.processors.JSONRenderer(serializer=_dumps)]
    else:
        # A plain traceback: the rich one prints local variables, which hold secrets.
        render = [_traceback_below, structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback)]
    # Foreign records (redis-py, asyncio, the app's own loggers) become events with the same
    # fields; Fennel's events were masked when they were logged.
    pre_chain: list[Any] = [mask_secrets]
    return _Formatter(processors=[*common, *render], foreign_pre_chain=pre_chain)


def configure(log_format: str, log_level: str) -> None:
    """Structured logs on stderr: human-readable (``console``) or one JSON object per line."""
    global _writer, _format
    level = logging.getLevelName(log_level.upper())
    _format = log_format
    # Process-pool children configure themselves the same way (see configure_child).
    os.environ[_CHILD_ENV] = f"{log_format}:{log_level}"
    flush_logs(timeout=1.0)
    try:
        fd, colors = sys.stderr.fileno(), sys.stderr.isatty()
    except (AttributeError, OSError, ValueError):
        # Started without a stderr (closed by whoever started it, so sys.stderr is None): the
        # lines go nowhere, and the worker runs all the same.
        fd, colors = os.open(os.devnull, os.O_WRONLY), False
    _writer = _Writer(fd, formatter(log_format, colors=colors))
    root = logging.getLogger()
    for old in root.handlers[:]:
        # An app module may have called basicConfig on import: one format for every line.
        root.removeHandler(old)
    root.addHandler(_writer.handler)
    root.setLevel(level)
    # No output format here shows it, and the worker imports multiprocessing, which makes
    # every record look up the current process's name.
    logging.logMultiprocessing = False
    logging.captureWarnings(True)
    # Tracebacks Python would print to stderr itself become records too: one format, and
    # never a write that could block on the sink.
    threading.excepthook = _thread_crashed
    sys.unraisablehook = _unraisable
    with contextlib.suppress(ValueError, OSError, AttributeError):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # The writer is a daemon thread: lines still queued at a normal exit are written first.
    atexit.register(flush_logs)


_CHILD_ENV = "FENNEL_CLI_LOGGING"


def configure_child() -> None:
    """In a worker's process-pool child: log as the worker that started it does, so what task
    code logs there comes out in the same format (JSON lines in JSON mode)."""
    log_format, _, log_level = os.environ.get(_CHILD_ENV, "").partition(":")
    if log_format and log_level:
        configure(log_format, log_level)


def _thread_crashed(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("threading").error(
        "Exception in thread %s", name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback))


def _unraisable(args: Any) -> None:
    exc = args.exc_value if args.exc_value is not None else args.exc_type()
    logging.getLogger("py.unraisable").warning(
        "%s: %r", args.err_msg or "Exception ignored in", args.object,
        exc_info=(args.exc_type, exc, args.exc_traceback))


def json_lines() -> bool:
    """Whether this process writes its log lines as JSON (so every line on stderr must be)."""
    return _format == "json" and _writer is not None


def flush_logs(timeout: float = 5.0) -> None:
    """Write what is queued before the process exits, giving up after ``timeout`` seconds or
    as soon as the writer makes no progress (a full pipe nobody reads): exiting must not wait
    on the log sink either."""
    if _writer is not None:
        _writer.flush(timeout)


def _dumps(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=str).decode()
