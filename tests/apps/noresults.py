"""An app that does not store results."""

from __future__ import annotations

from fennel import App

app = App(name="tests-noresults", results_enabled=False, default_retries=0)


@app.task
def double(n: int) -> int:
    return 2 * n
