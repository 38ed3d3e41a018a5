"""Retries: backoff, exhausted budgets landing in the DLQ, per-task overrides."""

from __future__ import annotations

import random
import time

import pytest

from fennel import App
from fennel.client import read_dead
from fennel.exceptions import TaskFailed
from fennel.job import Status
from fennel.utils import backoff
from tests.apps import basic, retrying

WORKER = "tests.apps.retrying:app"


def lines(marks):
    return marks.read_text().splitlines()


def test_flaky_task_succeeds_on_third_attempt(start_worker, marks):
    w = start_worker(WORKER, env={"FENNEL_TEST_MARKS": str(marks)})
    x = retrying.flaky.delay("k")
    seen = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = x.status()
        seen.add(status)
        if status is Status.SUCCESS:
            break
        time.sleep(0.02)
    assert Status.RETRY in seen
    assert seen <= {Status.SENT, Status.EXECUTING, Status.RETRY, Status.SUCCESS}
    assert x.get(timeout=10) == "k ok on 3"
    assert lines(marks).count("try k") == 3
    assert [e["attempt"] for e in w.named("job.retrying")] == [1, 2]


def test_flaky_task_on_the_basic_app(start_worker, marks):
    start_worker(env={"FENNEL_TEST_MARKS": str(marks)})
    assert basic.flaky_then_ok.delay("z").get(timeout=20) == "z"
    assert lines(marks).count("try z") == 3


def test_exhausted_retries_go_dead_with_every_error(start_worker, marks):
    start_worker(WORKER, env={"FENNEL_TEST_MARKS": str(marks)})
    x = retrying.uses_default.delay("d")
    with pytest.raises(TaskFailed) as info:
        x.get(timeout=20)
    assert info.value.original_type == "ValueError"
    assert info.value.original_args == ["d attempt 3"]
    assert x.status() is Status.DEAD
    (job,) = read_dead(retrying.app)
    assert job.id == x.job_id
    assert job.task == "tests.apps.retrying.uses_default"
    assert job.args == ["d"]
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    assert [e["args"] for e in job.errors] == [[f"d attempt {i}"] for i in (1, 2, 3)]
    assert all(e["type"] == "ValueError" and "raise ValueError" in e["traceback"]
               for e in job.errors)


def test_per_task_retries_override_the_default(start_worker, marks):
    start_worker(WORKER, env={"FENNEL_TEST_MARKS": str(marks)})
    assert retrying.uses_default.retries == 2
    assert retrying.overrides.retries == 1
    assert retrying.no_retries.retries == 0
    handles = [retrying.overrides.delay("o"), retrying.no_retries.delay("n")]
    for h in handles:
        with pytest.raises(TaskFailed):
            h.get(timeout=20)
    assert lines(marks).count("try o") == 2
    assert lines(marks).count("try n") == 1
    dead = {j.task: j for j in read_dead(retrying.app)}
    assert len(dead["tests.apps.retrying.overrides"].errors) == 2
    assert len(dead["tests.apps.retrying.no_retries"].errors) == 1


def test_custom_retry_backoff_is_called_and_respected(start_worker, marks):
    w = start_worker(WORKER, env={"FENNEL_TEST_MARKS": str(marks)})
    started = time.monotonic()
    with pytest.raises(TaskFailed):
        retrying.uses_default.delay("b").get(timeout=20)
    elapsed = time.monotonic() - started
    # Called with the number of retries used so far: 0 before the first retry, then 1.
    assert [ln for ln in lines(marks) if ln.startswith("backoff")] == ["backoff 0", "backoff 1"]
    assert [e["retry_in"] for e in w.named("job.retrying")] == [0.3, 0.3]
    assert elapsed >= 0.6


def test_retry_backoff_setting_accepts_any_callable():
    app = App(name="tests-backoff-setting", retry_backoff=lambda n: 2.0 * n)
    assert app.settings.retry_backoff(3) == 6.0
    assert App(name="tests-backoff-default").settings.retry_backoff is backoff


# -- fennel.utils.backoff (no Redis needed) ---------------------------------------------------

@pytest.mark.parametrize("retries", [0, 1, 2, 5, 10])
def test_backoff_stays_within_exponential_bounds(retries):
    ceiling = 2.0 ** retries
    for _ in range(200):
        assert 0 < backoff(retries) <= ceiling


def test_backoff_is_capped():
    assert all(backoff(100) <= 3600.0 for _ in range(100))
    assert all(backoff(8, base=1.0, cap=10.0) <= 10.0 for _ in range(100))


def test_backoff_has_jitter():
    values = {backoff(6) for _ in range(50)}
    assert len(values) > 40  # random, not lock-step


def test_backoff_grows_on_average():
    rng_state = random.getstate()
    try:
        random.seed(1234)
        small = sum(backoff(1) for _ in range(500)) / 500
        large = sum(backoff(6) for _ in range(500)) / 500
    finally:
        random.setstate(rng_state)
    assert small < 2 < 16 < large


def test_backoff_rejects_negative_retries():
    with pytest.raises(ValueError):
        backoff(-1)
