"""An app with default retries and a custom backoff that records each call."""

from __future__ import annotations

import os
from pathlib import Path

from fennel import App


def recorded_backoff(retries: int) -> float:
    """Custom ``retry_backoff``: 0.3 s, and a line in the marks file per call."""
    path = os.environ.get("FENNEL_TEST_MARKS")
    if path:
        with Path(path).open("a") as f:
            f.write(f"backoff {retries}\n")
    return 0.3


app = App(name="tests-retrying", default_retries=2, retry_backoff=recorded_backoff)


def _attempt(key: str) -> int:
    path = os.environ["FENNEL_TEST_MARKS"]
    with Path(path).open("a") as f:
        f.write(f"try {key}\n")
    return sum(1 for line in Path(path).read_text().splitlines() if line == f"try {key}")


@app.task
def uses_default(key: str) -> None:
    """Always fails; no per-task retries, so the app's default_retries (2) apply."""
    raise ValueError(f"{key} attempt {_attempt(key)}")


@app.task(retries=1)
def overrides(key: str) -> None:
    """Always fails; retries=1 overrides default_retries."""
    raise ValueError(f"{key} attempt {_attempt(key)}")


@app.task(retries=0)
def no_retries(key: str) -> None:
    raise ValueError(f"{key} attempt {_attempt(key)}")


@app.task
def flaky(key: str) -> str:
    """Fails twice, succeeds on the third attempt."""
    n = _attempt(key)
    if n < 3:
        raise ValueError(f"attempt {n}")
    return f"{key} ok on {n}"
