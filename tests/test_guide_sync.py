"""The guide's sync examples, almost verbatim, against a real worker."""

from __future__ import annotations

import pytest

from fennel.client import gather, wait
from fennel.exceptions import TaskFailed, Timeout
from fennel.job import Status
from tests.apps.basic import add, fail, foo


def test_delay_and_get(start_worker):
    start_worker()
    x = foo.delay(0.2)  # Enqueue a task to be executed in the background.
    assert x.get() == 0.2  # Waits for completion and returns the value.
    assert x.status() is Status.SUCCESS


def test_gather_returns_results_in_order(start_worker):
    start_worker()
    results = [foo.delay(i / 10) for i in range(6)]
    assert gather(results) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def test_wait_returns_done_and_pending(start_worker):
    start_worker()
    results = [foo.delay(0.05) for _ in range(3)] + [foo.delay(30)]
    done, pending = wait(results, timeout=3)
    assert done == set(results[:3])
    assert pending == {results[3]}


def test_task_failed_carries_original_exception(start_worker):
    start_worker()
    x = fail.delay("baz")
    with pytest.raises(TaskFailed) as info:
        x.get(timeout=20)
    assert info.value.original_type == "Exception"
    assert info.value.original_args == ["baz"]
    assert "raise Exception(message)" in info.value.traceback
    assert x.status() is Status.DEAD


def test_get_timeout_is_a_timeout_error():
    x = add.delay(1, 2)  # no worker running
    with pytest.raises(Timeout):
        x.get(timeout=0.3)
    with pytest.raises(TimeoutError):
        x.get(timeout=0.1)
    assert x.status() is Status.SENT


def test_direct_call_runs_in_process():
    assert add(2, 3) == 5
