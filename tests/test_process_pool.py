"""The process pool's children: one that is not ready in time is replaced, never trusted."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest

from fennel.worker import processes
from fennel.worker.processes import ChildNotReady, ProcessPool

SPEC = "tests.apps.slow_child:app"
DOUBLE = "tests.apps.slow_child.double"


def _envelope(x: int) -> bytes:
    return orjson.dumps({"args": [x], "kwargs": {}})


def test_a_child_not_ready_in_time_is_replaced_and_replies_stay_with_their_jobs(monkeypatch):
    # A late "ready" must never be read as a job's reply (which would shift every later
    # reply on that pipe to the wrong job).
    monkeypatch.setattr(processes, "_READY_TIMEOUT", 0.5)
    monkeypatch.setenv("FENNEL_TEST_SLOW_CHILD", "3")

    async def main() -> None:
        pool = ProcessPool(1, SPEC)
        await pool.start()  # its child is not ready in time: killed, the slot left empty
        try:
            with pytest.raises(ChildNotReady, match="did not load the app"):
                await pool.run(DOUBLE, _envelope(21), None)
            os.environ.pop("FENNEL_TEST_SLOW_CHILD")  # the next child starts at once
            assert await pool.run(DOUBLE, _envelope(21), None) == 42
            assert await pool.run(DOUBLE, _envelope(5), None) == 10
        finally:
            await pool.aclose()

    asyncio.run(main())
