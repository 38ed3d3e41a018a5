"""Async tasks that look at the context they run in (the worker must give them a clean one)."""

from __future__ import annotations

import sys

from fennel import App

app = App(name="tests-context", default_retries=0)


@app.task
async def handled_exception() -> str:
    """The exception being handled where the task runs: there should be none."""
    return repr(sys.exc_info()[1])


@app.task
async def fail() -> None:
    raise ValueError("planned failure")
