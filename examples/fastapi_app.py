"""FastAPI with an async Fennel app: endpoints that ``await foo.delay(...)``.

Run it next to a Redis::

    export FENNEL_REDIS_URL=redis://127.0.0.1:6379/0
    fennel worker --app examples.fastapi_app:app &
    uvicorn examples.fastapi_app:api
    curl 'localhost:8000/square/7'          # waits for the worker: {"n": 7, "square": 49}
    curl -X POST 'localhost:8000/thumbnails/cat.png'   # fire-and-forget: {"job_id": "..."}
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI, HTTPException

from fennel import App
from fennel.client.aio import gather
from fennel.exceptions import TaskFailed

# The worker and the web process share this module: same app name, same task names.
app = App(name="example-fastapi", redis_url=os.environ.get("FENNEL_REDIS_URL"),
          interface="async", default_retries=0)
api = FastAPI(title="Fennel FastAPI example")


@app.task
async def square(n: int) -> int:
    await asyncio.sleep(0.01)  # pretend to do I/O
    return n * n


@app.task
def make_thumbnail(path: str) -> str:
    """A sync task in an async app: the worker runs it in its thread pool."""
    return f"thumbnails/{path}"


@app.task(retries=0)
async def divide(a: float, b: float) -> float:
    return a / b


@api.get("/square/{n}")
async def get_square(n: int) -> dict[str, int]:
    x = await square.delay(n)
    return {"n": n, "square": await x.get(timeout=30)}


@api.get("/squares/{count}")
async def get_squares(count: int) -> dict[str, list[int]]:
    handles = [await square.delay(i) for i in range(count)]
    return {"squares": await gather(handles, timeout=30)}


@api.post("/thumbnails/{path}")
async def post_thumbnail(path: str) -> dict[str, str]:
    x = await make_thumbnail.delay(path)  # do not wait: the user gets an answer now
    return {"job_id": x.job_id}


@api.get("/divide/{a}/{b}")
async def get_divide(a: float, b: float) -> dict[str, float]:
    x = await divide.delay(a, b)
    try:
        return {"result": await x.get(timeout=30)}
    except TaskFailed as exc:
        raise HTTPException(status_code=422, detail=f"{exc.original_type}: "
                                                    f"{exc.original_args}") from None
