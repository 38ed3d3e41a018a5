"""The guide's async examples, almost verbatim, against a real worker (interface='async')."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fennel.client.aio import gather, wait
from fennel.exceptions import TaskFailed, Timeout
from fennel.job import Status
from tests.apps.aio import app, boom, foo, sync_square

WORKER = "tests.apps.aio:app"


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` on a fresh loop and close the app's client of that loop afterwards."""

    async def wrapper() -> Any:
        try:
            return await main()
        finally:
            await app.aclose()

    return asyncio.run(wrapper())


def test_await_delay_and_get(start_worker):
    start_worker(WORKER)

    async def main() -> None:
        x = await foo.delay(0.2)  # Enqueue a task to be executed in the background.
        assert await x.get() == 0.2  # Waits for completion and returns the value.
        assert await x.status() is Status.SUCCESS

    run(main)


def test_gather_returns_results_in_order(start_worker):
    start_worker(WORKER)

    async def main() -> None:
        results = [await foo.delay(i / 10) for i in range(6)]
        assert await gather(results) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]

    run(main)


def test_wait_returns_done_and_pending(start_worker):
    start_worker(WORKER)

    async def main() -> None:
        results = [await foo.delay(0.05) for _ in range(3)] + [await foo.delay(30)]
        done, pending = await wait(results, timeout=3)
        assert done == set(results[:3])
        assert pending == {results[3]}

    run(main)


def test_task_failed_carries_original_exception(start_worker):
    start_worker(WORKER)

    async def main() -> None:
        x = await boom.delay(3)
        try:
            await x.get(timeout=20)
        except TaskFailed as e:
            assert e.original_type == "Exception"
            assert e.original_args == ["baz"]
        else:
            pytest.fail("TaskFailed not raised")
        assert await x.status() is Status.DEAD

    run(main)


def test_gather_raises_first_failure_unless_return_exceptions(start_worker):
    start_worker(WORKER)

    async def main() -> None:
        ok, bad = await foo.delay(0.01), await boom.delay(1)
        with pytest.raises(TaskFailed):
            await gather([ok, bad], timeout=20)
        values = await gather([ok, bad], timeout=20, return_exceptions=True)
        assert values[0] == 0.01
        assert isinstance(values[1], TaskFailed)

    run(main)


def test_sync_function_as_task_of_async_app(start_worker):
    start_worker(WORKER)

    async def main() -> None:
        x = await sync_square.delay(7)
        assert await x.get(timeout=20) == 49

    run(main)


def test_get_timeout_is_a_timeout_error():
    async def main() -> None:
        x = await foo.delay(0)  # no worker running
        with pytest.raises(Timeout):
            await x.get(timeout=0.3)
        with pytest.raises(TimeoutError):
            await x.get(timeout=0.1)
        assert await x.status() is Status.SENT

    run(main)


def test_async_map_bulk_enqueue(start_worker):
    start_worker(WORKER)

    async def main() -> None:
        results = await sync_square.map([(i,) for i in range(50)])
        assert await gather(results, timeout=30) == [i * i for i in range(50)]

    run(main)


def test_direct_call_returns_coroutine():
    assert asyncio.run(foo(0)) == 0
