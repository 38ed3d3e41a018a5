"""Async-interface app: the guide's async examples."""

from __future__ import annotations

import asyncio

from fennel import App

app = App(name="tests-aio", interface="async", default_retries=0)


@app.task
async def foo(n: float) -> float:
    await asyncio.sleep(n)
    return n


@app.task(retries=0)
async def boom(n: int) -> None:
    raise Exception("baz")


@app.task
def sync_square(n: int) -> int:
    return n * n


@app.task(retries=0)
async def afails_unless_file(path: str) -> str:
    """Async twin of basic.fails_unless_file, for DLQ replays through fennel.client.aio."""
    import anyio

    if not await anyio.Path(path).exists():
        raise RuntimeError(f"missing {path}")
    return await anyio.Path(path).read_text()
