"""Sync-interface app with the guide's tasks and the edge cases the tests need."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from fennel import App

app = App(name="tests", default_retries=0, retry_backoff=lambda retries: 0.05)


def _mark(kind: str, key: str) -> None:
    """Append to a file so tests can count executions across worker processes."""
    path = os.environ.get("FENNEL_TEST_MARKS")
    if path:
        with Path(path).open("a") as f:
            f.write(f"{kind} {key}\n")


@app.task
def foo(n: float) -> float:
    time.sleep(n)
    return n


@app.task
async def afoo(n: float) -> float:
    await asyncio.sleep(n)
    return n


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task
def echo(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@app.task
def count(key: str) -> str:
    _mark("run", key)
    return key


@app.task(retries=0)
def fail(message: str) -> None:
    raise Exception(message)


@app.task(retries=2)
def flaky_then_ok(key: str) -> str:
    """Fails on the first two attempts, succeeds on the third."""
    _mark("try", key)
    path = os.environ.get("FENNEL_TEST_MARKS")
    tries = sum(1 for line in Path(path).read_text().splitlines()
                if line == f"try {key}") if path else 3
    if tries < 3:
        raise ValueError(f"attempt {tries}")
    return key


@app.task(retries=2)
def always_fails(x: int) -> None:
    raise KeyError(x)


@app.task
def unserialisable() -> object:
    return object()


@app.task(name="custom.name")
def renamed() -> str:
    return "renamed"


@app.task(retries=0)
def fails_unless_file(path: str) -> str:
    """Fails until the file at ``path`` exists: lets a DLQ replay succeed after a "fix"."""
    if not Path(path).exists():
        raise RuntimeError(f"missing {path}")
    return Path(path).read_text()


@app.task(name="shared.whoami")
def whoami() -> str:
    """Same task name as in tests/apps/twin.py: apps must not run each other's jobs."""
    return app.name
