"""How Fennel logs: through the stdlib ``logging`` tree as a library, and from the ``fennel``
command as one format (JSON or console) written by a thread that never holds up the worker."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from fennel._log import Event, get_logger
from fennel.cli._logging import _DroppingQueueHandler, _Writer, formatter
from fennel.exceptions import TaskFailed
from fennel.middleware import LoggingMiddleware
from tests.apps.basic import add, always_fails
from tests.apps.logs import CARD, TOKEN, charge, crash_a_thread, say

ROOT = Path(__file__).resolve().parent.parent
BASIC = "tests.apps.basic:app"
LOGS = "tests.apps.logs:app"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _fennel_records(level: int) -> Iterator[_Records]:
    """What a host application sees: a handler and a level on the ``fennel`` logger."""
    handler = _Records()
    logger = logging.getLogger("fennel")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def _spawn(app: str, *extra: str, stdout: Any, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "FENNEL_LOG_FORMAT": "json", "FENNEL_LOG_LEVEL": "info",
                "FENNEL_GRACE_PERIOD": "5", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "fennel", "worker", "--app", app, *extra], cwd=ROOT,
        env=full_env, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _wait_raw(w: Any, needle: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(needle in line for line in list(w.raw)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in worker output:\n" + "\n".join(w.raw[-40:]))
        time.sleep(0.05)


# -- 1. the worker never depends on its log sink -------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_keeps_working_and_stops_on_a_signal_after_its_log_pipe_closes(sig):
    # `fennel worker ... 2>&1 | head -1`: the reader takes one line and goes away.
    proc = _spawn(BASIC, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        handles = [add.delay(i, 1) for i in range(20)]
        assert [h.get(timeout=60) for h in handles] == [i + 1 for i in range(20)]
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
    finally:
        _kill(proc)



def _close_stdout_and_stderr() -> None:
    os.close(1)
    os.close(2)


def test_worker_started_without_stdout_and_stderr_runs_jobs_and_stops():
    # A supervisor that closes both: the worker has nowhere to log, and works all the same.
    full_env = {**os.environ, "FENNEL_LOG_FORMAT": "json", "FENNEL_GRACE_PERIOD": "5"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fennel", "worker", "--app", BASIC], cwd=ROOT, env=full_env,
        stdin=subprocess.DEVNULL, preexec_fn=_close_stdout_and_stderr,
        start_new_session=True)
    try:
        handles = [add.delay(i, 4) for i in range(20)]
        assert [h.get(timeout=60) for h in handles] == [i + 4 for i in range(20)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        _kill(proc)

def _unread(fd: int) -> int:
    buf = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", buf)[0])


def test_worker_keeps_working_and_stops_on_sigterm_with_a_full_log_pipe():
    r, w = os.pipe()
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)  # Linux: fill it with a few lines
    proc = _spawn(BASIC, stdout=w)
    os.close(w)
    try:
        # Nobody reads: every job adds two lines until the pipe is full, which shows as
        # the unread bytes no longer growing while jobs keep completing.
        deadline = time.monotonic() + 180
        sizes = [-1]
        while len(sizes) < 4 or sizes[-1] != sizes[-4] or sizes[-1] <= 0:
            assert time.monotonic() < deadline, f"pipe never filled ({sizes[-1]} bytes)"
            handles = [add.delay(i, 2) for i in range(20)]
            assert [h.get(timeout=60) for h in handles] == [i + 2 for i in range(20)]
            time.sleep(0.2)  # let the writer catch up, if it can
            sizes.append(_unread(r))
        handles = [add.delay(i, 3) for i in range(30)]
        assert [h.get(timeout=60) for h in handles] == [i + 3 for i in range(30)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        _kill(proc)
        os.close(r)


def test_log_records_beyond_the_queue_limit_are_dropped_and_counted():
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    handler = _DroppingQueueHandler(q, limit=2, direct=lambda _record: False,
                                    wake=threading.Event())
    logger = logging.Logger("fennel.test.drop")
    logger.addHandler(handler)
    for i in range(5):
        logger.warning("line %d", i)
    assert q.qsize() == 2 and handler.dropped == 3
    assert [q.get().msg for _ in range(2)] == ["line 0", "line 1"]  # arguments merged early


def test_a_line_the_sink_can_take_is_written_before_the_call_returns():
    # A worker killed by its job right after logging must not lose what it logged last.
    r, w = os.pipe()
    writer = _Writer(w, formatter("json"))
    try:
        logger = logging.Logger("fennel.test.direct")
        logger.addHandler(writer.handler)
        logger.warning("job.started")
        os.set_blocking(r, False)
        assert b'"job.started"' in os.read(r, 65536)
    finally:
        os.close(r)
        os.close(w)


def test_the_writer_survives_a_closed_pipe():
    r, w = os.pipe()
    os.close(r)
    writer = _Writer(w, formatter("json"))
    try:
        logger = logging.Logger("fennel.test.writer")
        logger.addHandler(writer.handler)
        logger.warning("nobody reads this")
        assert writer.flush(timeout=10)
        assert writer.failed >= 1
    finally:
        os.close(w)


# -- 2. library logging respects the host and never prints secrets --------------------------


def test_library_logs_are_stdlib_records_of_fennel_loggers_without_local_variables(capfd):
    with _fennel_records(logging.INFO) as seen:
        charge.delay(CARD)  # LeakyHooks.before_enqueue raises, holding a token in a local
    failures = [r for r in seen.records if r.name == "fennel.middleware"]
    assert len(failures) == 1
    record = failures[0]
    assert record.levelno == logging.ERROR and record.exc_info
    text = seen.format(record)
    assert text.startswith("ERROR fennel.middleware fennel.middleware.hook_failed ")
    assert "hook=before_enqueue middleware=LeakyHooks" in text
    assert "Traceback" in text and "RuntimeError: payment gateway refused" in text
    assert TOKEN not in text
    out, err = capfd.readouterr()
    assert "hook_failed" not in out + err and TOKEN not in out + err
    # The library never configures structlog (the host may, for its own loggers).
    assert not structlog.is_configured()


def test_library_logs_respect_the_hosts_level(capfd):
    with _fennel_records(logging.CRITICAL) as seen:
        charge.delay(CARD)
    assert seen.records == []
    out, err = capfd.readouterr()
    assert "hook_failed" not in out + err


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_worker_tracebacks_never_show_local_variables(start_worker, fmt):
    w = start_worker(LOGS, env={"FENNEL_LOG_FORMAT": fmt, "FENNEL_TEST_LEAKY_WORKER": "1"},
                     ready=False)
    with _fennel_records(logging.CRITICAL):
        assert charge.delay(CARD).get(timeout=60) == CARD[-4:]
    _wait_raw(w, "hook_failed")
    assert w.stop() == 0
    out = "\n".join(w.raw)
    assert "Traceback" in out and "card ending in 1111 declined" in out
    assert CARD not in out


def test_modules_log_through_fennels_stdlib_loggers():
    # structlog.get_logger would print through structlog's global defaults (stdout, rich
    # tracebacks with locals) in every process that has not configured structlog.
    src = ROOT / "src" / "fennel"
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if "structlog.get_logger(" in p.read_text()
                 or ("structlog.configure(" in p.read_text() and p.name != "_logging.py")]
    assert offenders == []


def test_logging_middleware_follows_stdlib_levels():
    mw = LoggingMiddleware()
    logger = logging.getLogger("fennel.worker")
    old = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert not mw.active("before_execute") and not mw.active("on_success")
        assert mw.active("after_execute") and mw.active("on_retry")
        logger.setLevel(logging.INFO)
        assert mw.active("before_execute")
    finally:
        logger.setLevel(old)


def test_an_event_prints_as_key_values_for_plain_formatters():
    ev = Event(event="job.started", job_id="abc", attempt=1, note="two words",
               url="redis://:***@h")
    assert str(ev) == "job.started job_id=abc attempt=1 note='two words' url=redis://:***@h"


def test_library_events_mask_passwords_in_urls_and_split_exceptions():
    with _fennel_records(logging.INFO) as seen:
        get_logger("fennel.test").warning(
            "x.connect_failed", redis="redis://:hunter2@db:6379",
            error=ConnectionError("cannot reach rediss://u:hunter2@db:6380/0 (refused)"))
    fields = seen.records[0].msg
    assert fields["redis"] == "redis://:***@db:6379"
    assert fields["error"] == "cannot reach rediss://u:***@db:6380/0 (refused)"
    assert fields["error_type"] == "ConnectionError"


# -- 3. one format for every line --------------------------------------------------------------


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_json_mode_renders_every_line_as_json(start_worker, pool):
    # With --pool process, task code logs from the pool's children: their lines too.
    w = start_worker(LOGS, "--log-level", "debug", "--pool", pool,
                     env={"FENNEL_TEST_APP_BASICCONFIG": "1"})
    assert say.delay("hello").get(timeout=60) == "hello"
    crash_a_thread.delay().get(timeout=60)
    w.wait_for("saying hello")
    w.wait_for("Exception in thread doomed")
    assert w.stop() == 0
    lines = [line for line in w.raw if line.strip()]
    events = [orjson.loads(line) for line in lines]  # raises on any plain-text line
    for e in events:
        assert {"event", "level", "logger", "timestamp"} <= set(e), e
    assert any(e["logger"] == "asyncio" for e in events)  # "Using selector: ..." at debug
    said = next(e for e in events if e["event"] == "saying hello")
    assert said["logger"] == "tests.apps.logs" and said["level"] == "info"
    crashed = next(e for e in events if e["event"] == "Exception in thread doomed")
    assert crashed["error_type"] == "ZeroDivisionError" and "1 / 0" in crashed["traceback"]


def test_console_mode_renders_foreign_records_like_fennels_own(start_worker):
    w = start_worker(LOGS, env={"FENNEL_LOG_FORMAT": "console",
                                "FENNEL_TEST_APP_BASICCONFIG": "1"}, ready=False)
    assert say.delay("hello").get(timeout=60) == "hello"
    _wait_raw(w, "saying hello")
    assert w.stop() == 0
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    lines = [line for line in w.raw if line.strip()]
    assert all(re.match(stamp + r" \[\w+\s*\] ", line) for line in lines), lines
    said = next(line for line in lines if "saying hello" in line)
    assert re.match(stamp + r" \[info\s*\] saying hello\s+\[tests\.apps\.logs\]", said), said


# -- 4. worker logs that say what went wrong ------------------------------------------------


@pytest.mark.parametrize("level", ["info", "debug"])
def test_failed_attempts_log_the_error_and_the_last_one_its_traceback(start_worker, level):
    w = start_worker(BASIC, "--log-level", level)
    h = always_fails.delay(7)  # retries=2: three attempts, then the DLQ
    with pytest.raises(TaskFailed):
        h.get(timeout=60)
    dead = w.wait_for("job.dead", where=lambda e: e["job_id"] == h.job_id)
    assert (dead["error_type"], dead["error"]) == ("KeyError", "7")
    failed = [e for e in w.named("job.failed") if e["job_id"] == h.job_id]
    assert [e["attempt"] for e in failed] == [1, 2, 3]
    for e in failed:
        assert (e["error_type"], e["error"]) == ("KeyError", "7")
        if e["attempt"] == 3 or level == "debug":
            assert "raise KeyError(x)" in e["traceback"]
            assert e["traceback"].rstrip().endswith("KeyError: 7")
        else:
            assert "traceback" not in e
    retrying = [e for e in w.named("job.retrying") if e["job_id"] == h.job_id]
    assert [(e["attempt"], e["error_type"], e["error"], e["retry_in"]) for e in retrying] == [
        (1, "KeyError", "7", 0.05), (2, "KeyError", "7", 0.05)]


def test_logged_exceptions_use_the_same_error_fields(start_worker):
    w = start_worker(LOGS, env={"FENNEL_TEST_LEAKY_WORKER": "1"})
    with _fennel_records(logging.CRITICAL):
        assert charge.delay(CARD).get(timeout=60) == CARD[-4:]
    e = w.wait_for("fennel.middleware.hook_failed")
    assert e["level"] == "error" and e["hook"] == "before_execute"
    assert (e["error_type"], e["error"]) == ("ValueError", "card ending in 1111 declined")
    assert "Traceback" in e["traceback"]
