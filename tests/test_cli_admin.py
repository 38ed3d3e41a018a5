"""Safe admin commands: ``fennel dlq purge`` shows the count and asks (or needs ``--yes``), and
``--dry-run`` lists what purge or replay would touch without changing anything."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from fennel.client import read_dead
from tests.apps import basic
from tests.conftest import ROOT
from tests.reliability.conftest import wait_until

APP = ("--app", "tests.apps.basic:app")


def _two_dead(start_worker) -> set[str]:
    start_worker()
    ids = {basic.fail.delay(f"doomed {i}").job_id for i in range(2)}
    wait_until(lambda: len(read_dead(basic.app)) == 2, 30, what="two dead jobs")
    return ids


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """``fennel ...`` with no terminal: stdin from /dev/null, output to pipes."""
    return subprocess.run([sys.executable, "-m", "fennel", *args], cwd=ROOT, env=os.environ,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def _run_in_terminal(answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``fennel ...`` whose stdin is a terminal (a pty) on which ``answer`` is typed."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fennel", *args], cwd=ROOT,
                                env=os.environ, stdin=follower, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        os.write(leader, answer.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _dead_ids() -> set[str]:
    return {j.id for j in read_dead(basic.app)}


def test_purge_without_a_terminal_refuses_unless_yes(start_worker):
    ids = _two_dead(start_worker)
    out = _run("dlq", "purge", *APP)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    assert "2 dead job(s)" in lines[0] and "--yes" in lines[0]
    assert _dead_ids() == ids

    out = _run("dlq", "purge", *APP, "--yes")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("2 job(s) purged.")
    assert _dead_ids() == set()


def test_purge_asks_on_a_terminal(start_worker):
    ids = _two_dead(start_worker)
    no = _run_in_terminal("n\n", "dlq", "purge", *APP)
    assert no.returncode == 1, no.stdout + no.stderr
    assert "Purge 2 dead job(s)" in no.stdout and "Nothing purged." in no.stdout
    assert _dead_ids() == ids

    yes = _run_in_terminal("y\n", "dlq", "purge", *APP)
    assert yes.returncode == 0, yes.stdout + yes.stderr
    assert "2 job(s) purged." in yes.stdout
    assert _dead_ids() == set()


def test_dry_run_changes_nothing(start_worker):
    ids = _two_dead(start_worker)
    for command in ("purge", "replay"):
        out = _run("dlq", command, *APP, "--dry-run")
        assert out.returncode == 0, out.stderr
        for job_id in ids:
            assert job_id in out.stdout
        verb = "purged" if command == "purge" else "replayed"
        assert out.stdout.strip().endswith(f"2 job(s) would be {verb}."), out.stdout
        assert _dead_ids() == ids
    one = sorted(ids)[0]
    out = _run("dlq", "purge", *APP, "--dry-run", "--id", one)
    assert out.stdout.strip().endswith("1 job(s) would be purged.")
    assert _dead_ids() == ids


def test_read_with_a_filter_that_matches_nothing_does_not_call_the_dlq_empty(start_worker):
    _two_dead(start_worker)
    out = _run("dlq", "read", *APP, "--task", "no.such.task")
    assert out.returncode == 0, out.stderr
    assert "is empty" not in out.stdout, out.stdout
    assert "No dead job" in out.stdout and "of 2 in the dead-letter queue" in out.stdout
