"""Replaying and purging thousands of dead jobs: pipelined, with progress reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fennel.client import purge_dead, read_dead, replay_dead, wait
from tests.apps.ops import app, explode

ROOT = Path(__file__).resolve().parent.parent


def test_thousands_of_dead_jobs(start_worker):
    w = start_worker("tests.apps.ops:app", "--concurrency", "64",
                     env={"FENNEL_LOG_LEVEL": "critical"}, ready=False)
    handles = explode.map([(i,) for i in range(1200)])
    _done, pending = wait(handles, timeout=120)
    assert not pending
    w.stop()
    assert len(read_dead(app)) == 1200

    calls: list[tuple[int, int]] = []
    replayed = replay_dead(app, filter=lambda job: job.args[0] % 2 == 0,
                           progress=lambda done, total: calls.append((done, total)))
    assert len(replayed) == 600
    assert calls == [(500, 600), (600, 600)]
    assert len(read_dead(app)) == 600

    out = subprocess.run(
        [sys.executable, "-m", "fennel", "dlq", "purge", "--app", "tests.apps.ops:app",
         "--yes"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("600 job(s) purged.")
    assert read_dead(app) == []
    assert purge_dead(app) == []
