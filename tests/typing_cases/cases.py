"""Correct uses of the public API: mypy --strict must report nothing here."""

from __future__ import annotations

import fennel
from fennel import App
from fennel.client import AsyncResult, Result, gather, read_dead, replay_dead, wait
from fennel.client import aio as client_aio
from fennel.exceptions import TaskFailed
from fennel.job import Job, Status

app = App(name="typing", redis_url="redis://127.0.0.1")
aapp = App(name="typing-aio", redis_url="redis://127.0.0.1", interface="async")


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task(retries=3, name="typing.greet")
def greet(name: str, *, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@aapp.task
async def double(n: float) -> float:
    return n * 2


@aapp.task(retries=0)
def shout(text: str) -> str:
    return text.upper()


def sync_use() -> None:
    x: Result[int] = add.delay(1, 2)
    total: int = x.get()
    timed: int = x.get(timeout=1.5)
    status: Status = x.status()
    hi: str = greet.delay("you", punctuation="?").get()
    direct: int = add(1, 2)
    many: list[Result[int]] = add.map([(1, 2), (3, 4)])
    values: list[int] = gather(many)
    done, pending = wait(many, timeout=10)
    dead: list[Job] = read_dead(app)
    replayed: list[Job] = replay_dead(app, filter=lambda job: job.task == "typing.greet")
    kw = greet.map([fennel.call("a", punctuation=".")])
    try:
        add.delay(2, 2).get()
    except TaskFailed as e:
        kind: str = e.original_type
        args: list[object] = e.original_args
        print(kind, args)
    print(total, timed, status, hi, direct, values, done, pending, dead, replayed, kw)


async def async_use() -> None:
    x: AsyncResult[float] = await double.delay(2.0)
    value: float = await x.get()
    status: Status = await x.status()
    y = await shout.delay("hi")
    loud: str = await y.get(timeout=3)
    many = await double.map([(1.0,), (2.0,)])
    values: list[float] = await client_aio.gather(many)
    done, pending = await client_aio.wait(many, timeout=10)
    dead: list[Job] = await client_aio.read_dead(aapp)
    purged: list[Job] = await client_aio.purge_dead(app, filter=lambda job: job.tries > 0)
    print(value, status, loud, values, done, pending, dead, purged)
