"""Behaviour at the edges: bad arguments and results, Redis down, settings, isolation, threads,
fork."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest
import redis

from fennel import App
from fennel.client import gather, purge_dead, read_dead, wait
from fennel.client._results import Result
from fennel.exceptions import (
    ConfigurationError,
    ConnectionFailed,
    PayloadTooLarge,
    ResultMissing,
    ResultsDisabled,
    SerializationError,
    TaskFailed,
)
from fennel.job import Status
from fennel.testing import free_port
from tests.apps import basic, noresults, twin


def dbsize(redis_server) -> int:
    return int(redis_server.command("DBSIZE"))


def keys(redis_server) -> list[str]:
    with redis.Redis.from_url(redis_server.url) as r:
        return [k.decode() for k in r.keys("*")]


# -- arguments and return values --------------------------------------------------------------

def test_unserialisable_args_fail_at_delay_before_anything_is_written(redis_server):
    basic.add.delay(1, 2)  # connect and create the queue first
    before = dbsize(redis_server)
    with pytest.raises(SerializationError) as info:
        basic.echo.delay(object())
    assert isinstance(info.value, TypeError)
    assert "tests.apps.basic.echo" in str(info.value)
    with pytest.raises(SerializationError):
        basic.echo.delay(1, when={1, 2})
    with pytest.raises(SerializationError):
        basic.echo.map([(1,), (object(),)])  # one bad item fails the whole batch
    assert dbsize(redis_server) == before
    assert int(redis_server.command("XLEN", basic.app.keys.queue)) == 1


def test_payload_too_large(redis_server):
    small = App(name="tests-small", max_payload=300)

    @small.task
    def take(s: str) -> int:
        return len(s)

    take.delay("x" * 10)
    before = dbsize(redis_server)
    with pytest.raises(PayloadTooLarge) as info:
        take.delay("x" * 1000)
    assert isinstance(info.value, ValueError)
    assert "max_payload" in str(info.value)
    assert dbsize(redis_server) == before


def test_unserialisable_return_value_is_a_recorded_failure(start_worker):
    w = start_worker()
    x = basic.unserialisable.delay()
    with pytest.raises(TaskFailed) as info:
        x.get(timeout=20)
    assert info.value.original_type == "SerializationError"
    assert x.status() is Status.DEAD
    # The worker is still alive and working.
    assert basic.add.delay(2, 2).get(timeout=20) == 4
    assert w.proc.poll() is None


# -- Redis unreachable --------------------------------------------------------------------------

def test_unreachable_redis_fails_fast_with_masked_url():
    port = free_port()
    app = App(name="tests-down", redis_url=f"redis://user:secret@127.0.0.1:{port}/0")

    @app.task
    def nothing() -> None:
        return None

    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        nothing.delay()
    assert time.monotonic() - started < 8
    message = str(info.value)
    assert "secret" not in message
    assert f"redis://user:***@127.0.0.1:{port}" in message
    assert isinstance(info.value, ConnectionError)
    assert "secret" not in repr(app)


# -- settings -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("setting", "value", "choices"), [
    ("interface", "bogus", ["'sync'", "'async'"]),
    ("log_format", "xml", ["'console'", "'json'"]),
    ("pool", "fiber", ["'thread'", "'process'"]),
])
def test_invalid_choice_names_setting_and_choices(setting, value, choices):
    with pytest.raises(ConfigurationError) as info:
        App(name="tests-bad", **{setting: value})
    message = str(info.value)
    assert repr(setting) in message
    assert repr(value) in message
    for c in choices:
        assert c in message
    assert info.value.setting == setting
    assert isinstance(info.value, ValueError)


def test_unknown_setting_is_named():
    with pytest.raises(ConfigurationError) as info:
        App(name="tests-bad", retires=3)
    assert "retires" in str(info.value)
    assert "default_retries" in str(info.value)  # lists the real ones


@pytest.mark.parametrize(("setting", "value"), [
    ("default_retries", -1), ("concurrency", 0), ("grace_period", 0), ("results_ttl", "1d"),
    ("retry_backoff", 5), ("redis_url", "http://x"),
])
def test_invalid_values_fail_at_construction(setting, value):
    with pytest.raises(ConfigurationError) as info:
        App(name="tests-bad", **{setting: value})
    assert setting in str(info.value)


def test_env_vars_are_read_and_keywords_win(monkeypatch):
    monkeypatch.setenv("FENNEL_DEFAULT_RETRIES", "7")
    monkeypatch.setenv("FENNEL_LOG_FORMAT", "JSON")
    monkeypatch.setenv("FENNEL_RESULTS_ENABLED", "false")
    monkeypatch.setenv("FENNEL_GRACE_PERIOD", "2.5")
    monkeypatch.setenv("FENNEL_INTERFACE", "async")
    s = App(name="tests-env").settings
    assert (s.default_retries, s.log_format, s.results_enabled, s.grace_period, s.interface) == (
        7, "json", False, 2.5, "async")
    assert s.redis_url == os.environ["FENNEL_REDIS_URL"]
    s = App(name="tests-env", default_retries=1, log_format="console", interface="sync").settings
    assert (s.default_retries, s.log_format, s.interface) == (1, "console", "sync")
    monkeypatch.setenv("FENNEL_CONCURRENCY", "many")
    with pytest.raises(ConfigurationError) as info:
        App(name="tests-env")
    assert "concurrency" in str(info.value)


# -- results ------------------------------------------------------------------------------------

def test_status_of_unknown_id():
    x: Result[int] = Result(basic.app, "0" * 32)
    assert x.status() is Status.UNKNOWN
    with pytest.raises(ResultMissing):
        x.get(timeout=5)


def test_results_disabled(start_worker):
    start_worker("tests.apps.noresults:app")
    x = noresults.double.delay(21)
    with pytest.raises(ResultsDisabled):
        x.get()
    deadline = time.monotonic() + 20
    while x.status() is not Status.SUCCESS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert x.status() is Status.SUCCESS
    done, pending = wait([x], timeout=5)
    assert done == {x} and not pending


# -- two apps on one Redis ----------------------------------------------------------------------

def test_two_apps_never_see_each_others_jobs(start_worker, redis_server):
    start_worker()  # only the basic app's worker
    mine = basic.whoami.delay()
    theirs = twin.whoami.delay()
    assert basic.whoami.name == twin.whoami.name == "shared.whoami"
    assert mine.get(timeout=20) == "tests"
    time.sleep(0.5)
    assert theirs.status() is Status.SENT  # not run by the other app's worker
    start_worker("tests.apps.twin:app")
    assert theirs.get(timeout=20) == "tests-twin"
    assert gather([basic.whoami.delay() for _ in range(20)], timeout=20) == ["tests"] * 20
    assert gather([twin.whoami.delay() for _ in range(20)], timeout=20) == ["tests-twin"] * 20

    # Each app's keys live under its own prefix.
    for k in keys(redis_server):
        assert k.startswith(("fennel:{tests}:", "fennel:{tests-twin}:")), k

    # DLQ operations touch only the app's own dead jobs.
    a, b = basic.fail.delay("a"), twin.twin_fail.delay(1)
    for h in (a, b):
        with pytest.raises(TaskFailed):
            h.get(timeout=20)
    assert [j.id for j in read_dead(basic.app)] == [a.job_id]
    assert [j.id for j in read_dead(twin.app)] == [b.job_id]
    assert [j.id for j in purge_dead(twin.app)] == [b.job_id]
    assert [j.id for j in read_dead(basic.app)] == [a.job_id]


# -- threads and fork ---------------------------------------------------------------------------

def test_sync_facade_is_thread_safe(start_worker):
    start_worker()
    errors: list[BaseException] = []
    wrong: list[tuple[int, int, object]] = []

    def client(t: int) -> None:
        try:
            for i in range(50):
                value = basic.add.delay(t * 1000, i).get(timeout=60)
                if value != t * 1000 + i:
                    wrong.append((t, i, value))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors
    assert not wrong


def _child(q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        q.put(basic.add.delay(20, 22).get(timeout=30))
    except BaseException as exc:
        q.put(repr(exc))


def test_fork_child_can_use_the_same_sync_app(start_worker):
    start_worker()
    assert basic.add.delay(1, 1).get(timeout=20) == 2  # the parent's loop and connections exist
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=_child, args=(q,))
    child.start()
    assert q.get(timeout=60) == 42
    child.join(timeout=30)
    assert child.exitcode == 0
    assert basic.add.delay(2, 3).get(timeout=20) == 5  # and the parent still works


def test_fork_with_os_fork(start_worker):
    start_worker()
    assert basic.add.delay(1, 1).get(timeout=20) == 2
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            code = 0 if basic.add.delay(3, 4).get(timeout=30) == 7 else 3
        finally:
            os._exit(code)
    assert basic.add.delay(5, 5).get(timeout=20) == 10
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
