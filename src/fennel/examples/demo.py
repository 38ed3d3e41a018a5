"""The app behind ``fennel demo``. Its Redis URL comes from ``FENNEL_REDIS_URL``."""

from __future__ import annotations

import asyncio

from fennel import App

app = App(name="fennel-demo", default_retries=0)


@app.task
def square(n: int) -> int:
    return n * n


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task
async def greet(name: str) -> str:
    await asyncio.sleep(0.01)
    return f"hello, {name}"


@app.task(retries=0)
def divide(a: float, b: float) -> float:
    return a / b
