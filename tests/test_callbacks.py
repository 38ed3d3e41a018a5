"""Completion callbacks and chains, against real workers."""

from __future__ import annotations

import signal
import time

import pytest

from fennel import chain
from fennel.exceptions import TaskFailed
from tests.apps.ops import add_one, concat, double, explode, handle_error, slow

OPS = "tests.apps.ops:app"


def test_on_success_gets_the_result(start_worker):
    start_worker(OPS)
    x = double.options(on_success=concat.s("result=")).delay(21)
    assert x.get(timeout=20) == 42
    assert x.followup(0).get(timeout=20) == "result=42"


def test_on_failure_runs_once_retries_are_spent(start_worker, marks):
    start_worker(OPS, env={"FENNEL_TEST_MARKS": str(marks)})
    x = explode.options(on_success=double, on_failure=handle_error.s("oops")).delay(7)
    with pytest.raises(TaskFailed):
        x.get(timeout=20)
    assert x.followup(0, failed=True).get(timeout=20) == "oops:ValueError"
    lines = marks.read_text().splitlines()
    assert lines.count("run explode 7") == 2  # one retry
    assert lines.count("run handle_error oops ValueError") == 1
    assert not any(line.startswith("run double") for line in lines)


def test_chain_of_three_steps(start_worker):
    start_worker(OPS)
    x = chain(double.s(5), add_one, concat.s("n=")).delay()
    assert x.get(timeout=20) == 10
    assert x.followup().get(timeout=20) == 11
    assert x.followup().followup().get(timeout=20) == "n=11"


def test_callback_survives_worker_sigkill(start_worker, marks):
    """The callback is enqueued by the same script that records the outcome: killing the
    worker mid-job loses neither; the job reruns elsewhere and its callback runs once."""
    env = {"FENNEL_TEST_MARKS": str(marks), "FENNEL_LEASE_TIMEOUT": "1.5"}
    first = start_worker(OPS, env=env)
    x = slow.options(on_success=concat.s("done:")).delay(1.0)
    deadline = time.monotonic() + 20
    while "start slow 1.0" not in marks.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    first.signal(signal.SIGKILL)
    first.wait(10)
    start_worker(OPS, env=env)
    assert x.get(timeout=30) == 1.0
    assert x.followup().get(timeout=20) == "done:1.0"
    lines = marks.read_text().splitlines()
    assert lines.count("start slow 1.0") == 2  # killed once, then ran again
    assert lines.count("end slow 1.0") == 1
    assert lines.count("run concat done: 1.0") == 1


def test_waiting_on_a_callback_that_will_never_run_fails_clearly(start_worker):
    from fennel.exceptions import ResultMissing

    x = explode.options(on_success=double).delay(1)  # enqueued before any worker runs
    start_worker(OPS)
    with pytest.raises(ResultMissing, match="did not end in the outcome"):
        x.followup().get(timeout=20)
