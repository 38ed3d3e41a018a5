"""A second sync app on the same Redis, with a task name that also exists in basic.py."""

from __future__ import annotations

from fennel import App

app = App(name="tests-twin", default_retries=0)


@app.task(name="shared.whoami")
def whoami() -> str:
    return app.name


@app.task(retries=0)
def twin_fail(x: int) -> None:
    raise ValueError(x)
