"""The guide's "Common questions" examples against a real worker: looking a job up later by
its id (sync and async), and closing an app's connections."""

from __future__ import annotations

import asyncio

from fennel import Status
from fennel.client import AsyncResult, Result
from tests.apps import aio, basic


def test_sync_job_looked_up_by_id(start_worker):
    start_worker()
    job_id = basic.add.delay(20, 22).job_id  # e.g. returned from an API
    handle = Result(basic.app, job_id)
    assert handle.get(timeout=20) == 42
    assert handle.status() is Status.SUCCESS
    basic.app.close()
    # The app reconnects on next use after close().
    assert Result(basic.app, job_id).get(timeout=5) == 42


def test_async_job_looked_up_by_id(start_worker):
    start_worker("tests.apps.aio:app")

    async def main() -> None:
        try:
            job_id = (await aio.foo.delay(0.1)).job_id
            assert await AsyncResult(aio.app, job_id).get(timeout=20) == 0.1
        finally:
            await aio.app.aclose()

    asyncio.run(main())
