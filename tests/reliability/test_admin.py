"""Scenarios 21-23: skewed worker clocks, concurrent DLQ replays, results that expire while
a client waits."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
import redis

from fennel.client import read_dead
from fennel.exceptions import ResultMissing, TaskFailed
from tests.conftest import ROOT
from tests.reliability.conftest import WORKER_APP, read_marks, wait_until

APP = "rel"


def test_21_skewed_worker_clocks_do_not_move_retries(server, spawn, make_app, marks):
    app = make_app(server.url)
    env = {"FENNEL_RETRY_BACKOFF": "tests.reliability.apps:one_second_backoff"}
    spawn(server.url, "--concurrency", "4", env={**env, "FENNEL_TEST_CLOCK_SKEW": "300"})
    spawn(server.url, "--concurrency", "4", env={**env, "FENNEL_TEST_CLOCK_SKEW": "-300"})
    handles = app.tasks["rel.fail_first"].map([(f"k{i}",) for i in range(8)])
    assert [h.get(timeout=30) for h in handles] == [f"k{i}" for i in range(8)]
    runs: dict[str, list[float]] = defaultdict(list)
    for key, _pid, t in read_marks(marks):
        runs[key].append(t)
    for key, times in runs.items():
        assert len(times) == 2, (key, times)  # exactly once more
        gap = times[1] - times[0]
        assert 0.95 <= gap < 3.0, (key, gap)  # never early (1 s backoff), not minutes late


def test_22_dlq_replay_by_several_processes_at_once(server, spawn, make_app, marks):
    app = make_app(server.url)
    w = spawn(server.url, "--concurrency", "8")
    handles = app.tasks["rel.bad_result"].map([(f"k{i}",) for i in range(40)])
    for h in handles:
        with pytest.raises(TaskFailed):
            h.get(timeout=20)
    w.stop()
    assert len(read_dead(app)) == 40
    env = {**__import__("os").environ, "FENNEL_REDIS_URL": server.url}
    procs = [subprocess.Popen([sys.executable, "-m", "fennel", "dlq", "replay", "--app",
                               WORKER_APP], cwd=ROOT, env=env, stdout=subprocess.PIPE)
             for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    replayed = [line.split()[2] for out in outs for line in out.splitlines()
                if line.startswith("replayed ")]
    assert sorted(replayed) == sorted(h.job_id for h in handles), outs
    r = redis.Redis.from_url(server.url)
    assert r.xlen(f"fennel:{{{APP}}}:queue") == 40
    assert r.xlen(f"fennel:{{{APP}}}:dead") == 0
    spawn(server.url, "--concurrency", "8")
    for h in handles:
        with pytest.raises(TaskFailed):
            h.get(timeout=20)
    counts = defaultdict(int)
    for key, _pid, _t in read_marks(marks):
        counts[key] += 1
    assert set(counts.values()) == {2}  # the first run and exactly one replayed run
    r.close()


def test_23_result_expiring_while_a_client_waits(server, spawn, make_app, marks):
    app = make_app(server.url)
    r = redis.Redis.from_url(server.url)
    h = app.tasks["rel.work"].delay("never-run")  # no worker yet
    box: dict[str, object] = {}

    def waiter() -> None:
        t0 = time.monotonic()
        try:
            h.get()  # no timeout: must still end
        except Exception as exc:
            box["error"] = exc
        box["took"] = time.monotonic() - t0

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    r.pexpire(f"fennel:{{{APP}}}:job:{h.job_id}", 200)
    t.join(10)
    assert not t.is_alive(), "the waiter hung"
    assert isinstance(box["error"], ResultMissing) and "results_ttl" in str(box["error"])
    assert box["took"] < 5
    # A result read after it expired: the same clear error, at once.
    spawn(server.url, env={"FENNEL_RESULTS_TTL": "1"})
    done = app.tasks["rel.work"].delay("short-lived")
    assert done.get(timeout=10) == "short-lived"
    wait_until(lambda: not r.exists(f"fennel:{{{APP}}}:job:{done.job_id}"), 5)
    t0 = time.monotonic()
    with pytest.raises(ResultMissing):
        done.get()
    assert time.monotonic() - t0 < 1
    r.close()
