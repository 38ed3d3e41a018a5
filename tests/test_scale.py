"""Many jobs across several worker processes: correct results, each body run exactly once."""

from __future__ import annotations

import asyncio
import collections

from fennel.client import gather
from fennel.client.aio import gather as agather
from tests.apps import aio, basic


def test_2000_jobs_across_two_workers_each_run_exactly_once(start_worker, marks):
    env = {"FENNEL_TEST_MARKS": str(marks)}
    workers = [start_worker("tests.apps.basic:app", env=env) for _ in range(2)]
    bulk = basic.count.map([(str(i),) for i in range(1000)])
    single = [basic.count.delay(str(i)) for i in range(1000, 2000)]
    results = gather(bulk + single, timeout=120)
    assert results == [str(i) for i in range(2000)]

    runs = collections.Counter(
        line.split(" ", 1)[1] for line in marks.read_text().splitlines() if line.startswith("run ")
    )
    assert len(runs) == 2000
    assert set(runs) == {str(i) for i in range(2000)}
    assert [k for k, n in runs.items() if n != 1] == []
    # Both workers took part.
    for w in workers:
        assert w.named("job.succeeded"), "a worker ran nothing"


def test_process_pool(start_worker):
    start_worker("tests.apps.basic:app", "--pool", "process", "--concurrency", "2")
    assert gather([basic.add.delay(i, i) for i in range(6)], timeout=60) == [
        2 * i for i in range(6)]
    assert basic.afoo.delay(0.01).get(timeout=30) == 0.01  # async tasks still run on the loop


def test_async_tasks_at_scale(start_worker):
    start_worker("tests.apps.aio:app", "--concurrency", "50")

    async def main() -> list[float]:
        try:
            handles = await aio.foo.map([(0.1,) for _ in range(200)])
            return await agather(handles, timeout=60)
        finally:
            await aio.app.aclose()

    assert asyncio.run(main()) == [0.1] * 200
