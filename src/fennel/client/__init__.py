"""The sync client: the same functions as :mod:`fennel.client.aio`, blocking.

Each call runs the async implementation on Fennel's loop thread, so these are safe from any
number of threads (Flask, Django, Celery-style worker threads).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from fennel import _portal
from fennel.client import aio
from fennel.client._core import Progress
from fennel.client._results import AsyncResult, Result
from fennel.job import Job

if TYPE_CHECKING:
    from fennel.app import App

__all__ = ["AsyncResult", "Result", "gather", "purge_dead", "read_dead", "replay_dead", "wait"]

R = TypeVar("R")


def gather(
    results: Iterable[Result[R] | AsyncResult[R]],
    timeout: float | None = None,
    return_exceptions: bool = False,
) -> list[R]:
    """Block until every job is done; return their values in order (see :func:`aio.gather`)."""
    return _portal.call(aio.gather, list(results), timeout, return_exceptions)


def wait(
    results: Iterable[Result[R] | AsyncResult[R]], timeout: float | None = None
) -> tuple[set[Result[R] | AsyncResult[R]], set[Result[R] | AsyncResult[R]]]:
    """Block up to ``timeout`` seconds; return ``(done, pending)`` sets of the given handles."""
    return _portal.call(aio.wait, list(results), timeout)


def read_dead(app: App[Any]) -> list[Job]:
    """Every job in the app's dead-letter queue (see :func:`aio.read_dead`)."""
    return _portal.call(aio.read_dead, app)


def replay_dead(app: App[Any], filter: Callable[[Job], bool] | None = None, *,
                progress: Progress | None = None) -> list[Job]:
    """Replay dead jobs matching ``filter`` (see :func:`aio.replay_dead`)."""
    return _portal.call(functools.partial(aio.replay_dead, app, filter, progress=progress))


def purge_dead(app: App[Any], filter: Callable[[Job], bool] | None = None, *,
               progress: Progress | None = None) -> list[Job]:
    """Delete dead jobs matching ``filter`` (see :func:`aio.purge_dead`)."""
    return _portal.call(functools.partial(aio.purge_dead, app, filter, progress=progress))
