"""The dead-letter queue: read, replay and purge from the sync and async clients and the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fennel.client import aio as aclient
from fennel.client import purge_dead, read_dead, replay_dead
from fennel.exceptions import TaskFailed
from fennel.job import Job, Status
from tests.apps import aio, basic
from tests.conftest import ROOT


def kill_two(tmp_path: Path) -> tuple[Path, object, object]:
    """Two dead jobs of different tasks on the basic app; returns the marker path and handles."""
    marker = tmp_path / "fixed.txt"
    repairable = basic.fails_unless_file.delay(str(marker))
    hopeless = basic.fail.delay("nope")
    for h in (repairable, hopeless):
        with pytest.raises(TaskFailed):
            h.get(timeout=20)
    return marker, repairable, hopeless


def test_sync_read_replay_purge_with_filter(start_worker, tmp_path):
    start_worker()
    marker, repairable, hopeless = kill_two(tmp_path)

    dead = read_dead(basic.app)
    assert all(isinstance(j, Job) for j in dead)
    assert {j.id for j in dead} == {repairable.job_id, hopeless.job_id}
    by_task = {j.task: j for j in dead}
    assert by_task["tests.apps.basic.fail"].errors[-1]["type"] == "Exception"
    assert by_task["tests.apps.basic.fail"].errors[-1]["args"] == ["nope"]

    marker.write_text("fixed")  # "redeploy the fix"
    replayed = replay_dead(basic.app,
                           filter=lambda job: job.task == "tests.apps.basic.fails_unless_file")
    assert [j.id for j in replayed] == [repairable.job_id]
    # The original handle sees the new outcome.
    assert repairable.get(timeout=20) == "fixed"
    assert repairable.status() is Status.SUCCESS
    assert [j.id for j in read_dead(basic.app)] == [hopeless.job_id]

    assert replay_dead(basic.app, filter=lambda job: job.task == "no.such.task") == []
    purged = purge_dead(basic.app, filter=lambda job: job.task == "tests.apps.basic.fail")
    assert [j.id for j in purged] == [hopeless.job_id]
    assert read_dead(basic.app) == []


def test_replay_gives_a_fresh_retry_budget(start_worker, marks):
    start_worker(env={"FENNEL_TEST_MARKS": str(marks)})
    x = basic.always_fails.delay(5)  # retries=2: three attempts
    with pytest.raises(TaskFailed):
        x.get(timeout=20)
    (job,) = read_dead(basic.app)
    assert len(job.errors) == 3
    assert replay_dead(basic.app)[0].id == x.job_id
    with pytest.raises(TaskFailed) as info:
        x.get(timeout=20)
    assert info.value.original_type == "KeyError"
    (again,) = read_dead(basic.app)
    # Three more attempts after the replay, not one: the budget was reset.
    assert [e["attempt"] for e in again.errors][-3:] == [1, 2, 3]
    assert len(again.errors) == 6


def test_async_client_with_async_app(start_worker, tmp_path):
    start_worker("tests.apps.aio:app")
    marker = tmp_path / "fixed.txt"

    async def main() -> None:
        try:
            x = await aio.afails_unless_file.delay(str(marker))
            y = await aio.boom.delay(1)
            for h in (x, y):
                with pytest.raises(TaskFailed):
                    await h.get(timeout=20)
            dead = await aclient.read_dead(aio.app)
            assert {j.id for j in dead} == {x.job_id, y.job_id}
            marker.write_text("async fixed")
            replayed = await aclient.replay_dead(
                aio.app, filter=lambda job: job.task == "tests.apps.aio.afails_unless_file")
            assert [j.id for j in replayed] == [x.job_id]
            assert await x.get(timeout=20) == "async fixed"
            purged = await aclient.purge_dead(aio.app,
                                              filter=lambda job: job.task == "tests.apps.aio.boom")
            assert [j.id for j in purged] == [y.job_id]
            assert await aclient.read_dead(aio.app) == []
        finally:
            await aio.app.aclose()

    asyncio.run(main())


def test_async_client_with_sync_app(start_worker, tmp_path):
    start_worker()
    marker, repairable, hopeless = kill_two(tmp_path)

    async def main() -> None:
        try:
            assert len(await aclient.read_dead(basic.app)) == 2
            marker.write_text("from aio")
            replayed = await aclient.replay_dead(
                basic.app, filter=lambda job: job.task == "tests.apps.basic.fails_unless_file")
            assert [j.id for j in replayed] == [repairable.job_id]
            assert await repairable.aio().get(timeout=20) == "from aio"
            assert [j.id for j in await aclient.purge_dead(basic.app)] == [hopeless.job_id]
        finally:
            await basic.app.aclose()

    asyncio.run(main())
    assert repairable.get(timeout=5) == "from aio"  # the sync handle agrees


def test_sync_client_with_async_app(start_worker):
    start_worker("tests.apps.aio:app")

    async def enqueue() -> str:
        try:
            x = await aio.boom.delay(2)
            with pytest.raises(TaskFailed):
                await x.get(timeout=20)
            return x.job_id
        finally:
            await aio.app.aclose()

    job_id = asyncio.run(enqueue())
    assert [j.id for j in read_dead(aio.app)] == [job_id]
    assert [j.id for j in purge_dead(aio.app)] == [job_id]
    assert read_dead(aio.app) == []


def fennel_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fennel", *args], cwd=ROOT, env=os.environ,
                          capture_output=True, text=True, timeout=60)


def test_cli_read_replay_purge(start_worker, tmp_path):
    start_worker()
    marker, repairable, hopeless = kill_two(tmp_path)

    read = fennel_cli("dlq", "read", "--app", "tests.apps.basic:app")
    assert read.returncode == 0, read.stderr
    out = read.stdout
    for task, job_id in (("tests.apps.basic.fail", hopeless.job_id),
                         ("tests.apps.basic.fails_unless_file", repairable.job_id)):
        assert task in out
        assert job_id in out
    assert '["nope"]' in out  # args
    assert "Exception('nope')" in out  # the error
    assert "RuntimeError" in out

    marker.write_text("cli")
    replay = fennel_cli("dlq", "replay", "--app", "tests.apps.basic:app",
                        "--task", "tests.apps.basic.fails_unless_file")
    assert replay.returncode == 0, replay.stderr
    assert repairable.job_id in replay.stdout
    assert repairable.get(timeout=20) == "cli"

    purge = fennel_cli("dlq", "purge", "--app", "tests.apps.basic:app", "--yes")
    assert purge.returncode == 0, purge.stderr
    assert hopeless.job_id in purge.stdout
    assert read_dead(basic.app) == []

    empty = fennel_cli("dlq", "read", "--app", "tests.apps.basic:app")
    assert empty.returncode == 0
    assert "empty" in empty.stdout


def test_cli_replay_without_filter_replays_everything(start_worker, tmp_path):
    start_worker()
    marker, repairable, hopeless = kill_two(tmp_path)
    marker.write_text("all")
    replay = fennel_cli("dlq", "replay", "--app", "tests.apps.basic:app")
    assert replay.returncode == 0, replay.stderr
    assert "2 job(s) replayed" in replay.stdout
    assert repairable.get(timeout=20) == "all"
    with pytest.raises(TaskFailed):
        hopeless.get(timeout=20)
