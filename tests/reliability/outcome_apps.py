"""Tasks whose outcomes are hard to record: scenario 30 (see test_outcomes.py).

Built like ``tests.reliability.apps`` (same app name, same marks file), so a test's client
and the worker subprocess (``--app tests.reliability.outcome_apps:app``) share task names.
"""

from __future__ import annotations

import os
from typing import Any

from fennel import App, Middleware
from fennel.job import Job
from tests.reliability.apps import mark, quick_backoff, runs_so_far, work


class BadRepr:
    """An exception argument whose ``repr()`` raises."""

    def __repr__(self) -> str:
        raise RuntimeError("repr refused")


def fail_once_loudly(key: str, blob: str) -> str:
    """Fails its first attempt with a long message (a long traceback too), then succeeds."""
    n = runs_so_far("run", key)
    mark("run", key)
    if n == 0:
        raise RuntimeError("x" * 3000)
    return key


def always_fails_loudly(key: str, blob: str) -> None:
    mark("run", key)
    raise RuntimeError("y" * 3000)


def bad_repr_error(key: str) -> None:
    mark("run", key)
    raise ValueError(BadRepr())


def nan_result(key: str) -> float:
    mark("run", key)
    return float("nan")


def inf_in_result(key: str) -> dict[str, Any]:
    mark("run", key)
    return {"values": [1.0, float("-inf")]}


def always_fails(key: str) -> None:
    mark("run", key)
    raise RuntimeError("nope")


def spoiled_by_middleware(key: str) -> None:
    mark("run", key)
    raise RuntimeError("fails, then a middleware spoils the job's headers")


class SpoilHeaders(Middleware):
    """Puts a value no envelope can carry into a failed job's headers (a buggy middleware):
    its retry cannot be encoded."""

    def on_failure(self, app: App[Any], job: Job, error: BaseException) -> None:
        if job.task == "rel.out.spoiled_by_middleware":
            job.headers["spoiled"] = object()


def build(url: str | None = None, name: str | None = None, **settings: Any) -> App[Any]:
    settings.setdefault("retry_backoff", quick_backoff)
    app: App[Any] = App(name or os.environ.get("FENNEL_TEST_APP", "rel"), redis_url=url,
                        default_retries=0, **settings)
    app.task(name="rel.work")(work)
    app.task(name="rel.out.fail_once_loudly", retries=1)(fail_once_loudly)
    app.task(name="rel.out.always_fails_loudly", retries=3)(always_fails_loudly)
    app.task(name="rel.out.bad_repr_error")(bad_repr_error)
    app.task(name="rel.out.nan_result")(nan_result)
    app.task(name="rel.out.inf_in_result")(inf_in_result)
    app.task(name="rel.out.always_fails", retries=1)(always_fails)
    app.task(name="rel.out.spoiled_by_middleware", retries=2)(spoiled_by_middleware)
    app.add_middleware(SpoilHeaders())
    return app


app = build()
