"""Scenario 26: two apps on one Redis."""

from __future__ import annotations

import pytest
import redis

from fennel.client import purge_dead, read_dead, replay_dead
from fennel.exceptions import TaskFailed
from tests.reliability.conftest import read_marks


def _keys(r: redis.Redis, app: str) -> dict[bytes, bytes]:
    return {k: r.type(k) for k in r.scan_iter(match=f"fennel:{{{app}}}:*")}


def test_26_two_apps_on_one_redis(server, spawn, make_app, marks):
    alpha = make_app(server.url, name="alpha")
    beta = make_app(server.url, name="beta")
    wa = spawn(server.url, "--concurrency", "4", env={"FENNEL_TEST_APP": "alpha"})
    wb = spawn(server.url, "--concurrency", "4", env={"FENNEL_TEST_APP": "beta"})
    ha = alpha.tasks["rel.work"].map([(f"a{i}",) for i in range(30)])
    hb = beta.tasks["rel.work"].map([(f"b{i}",) for i in range(30)])
    assert [h.get(timeout=20) for h in ha] == [f"a{i}" for i in range(30)]
    assert [h.get(timeout=20) for h in hb] == [f"b{i}" for i in range(30)]
    for key, pid, _t in read_marks(marks):
        assert pid == (wa.pid if key.startswith("a") else wb.pid), (key, pid)
    # admin commands touch only their own app's keys
    da = alpha.tasks["rel.bad_result"].delay("da")
    db = beta.tasks["rel.bad_result"].delay("db")
    for h in (da, db):
        with pytest.raises(TaskFailed):
            h.get(timeout=15)
    r = redis.Redis.from_url(server.url)
    beta_before = _keys(r, "beta")
    beta_dead = r.xrange("fennel:{beta}:dead")
    assert [j.id for j in read_dead(alpha)] == [da.job_id]
    assert [j.id for j in purge_dead(alpha)] == [da.job_id]
    assert replay_dead(alpha) == []
    assert _keys(r, "beta") == beta_before
    assert r.xrange("fennel:{beta}:dead") == beta_dead
    assert [j.id for j in read_dead(beta)] == [db.job_id]
    r.close()
