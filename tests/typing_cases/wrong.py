"""Wrong uses: each line marked ``# E`` must be reported by mypy --strict."""

from __future__ import annotations

from fennel import App

app = App(name="typing", redis_url="redis://127.0.0.1")
aapp = App(name="typing-aio", redis_url="redis://127.0.0.1", interface="async")


@app.task
def add(a: int, b: int) -> int:
    return a + b


@aapp.task
async def double(n: float) -> float:
    return n * 2


def sync_misuse() -> None:
    add.delay("1", 2)  # E: wrong argument type
    add.delay(1)  # E: missing argument
    add.delay(1, 2, c=3)  # E: unexpected keyword
    text: str = add.delay(1, 2).get()  # E: wrong return type
    print(text)


async def async_misuse() -> None:
    await double.delay("two")  # E: wrong argument type
    text: str = await (await double.delay(2.0)).get()  # E: wrong return type
    not_awaited: int = double.delay(1.0)  # E: delay returns a coroutine
    print(text, not_awaited)
