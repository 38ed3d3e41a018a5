"""Async tasks run in a clean context in a real ``fennel worker``: no exception is being handled
while they run, so their tracebacks (in the DLQ and in ``TaskFailed``) start at the task."""

from __future__ import annotations

import pytest

from fennel.client import read_dead
from fennel.exceptions import TaskFailed
from tests.apps import context


def test_async_task_sees_no_handled_exception(start_worker):
    start_worker("tests.apps.context:app")
    assert context.handled_exception.delay().get(timeout=30) == "None"


def test_async_task_traceback_starts_at_the_task(start_worker):
    start_worker("tests.apps.context:app")
    with pytest.raises(TaskFailed) as info:
        context.fail.delay().get(timeout=30)
    (dead,) = read_dead(context.app)
    for tb in (info.value.traceback, dead.errors[-1]["traceback"]):
        assert "planned failure" in tb
        assert "uvloop" not in tb and "During handling" not in tb, tb
