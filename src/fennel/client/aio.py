"""The async client: waiting on many jobs, and the dead-letter queue.

Every function here works with any :class:`~fennel.App`, whatever its ``interface``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from fennel.client._core import Progress, raise_or_value
from fennel.client._results import AsyncResult, Result
from fennel.exceptions import Timeout
from fennel.job import Job

if TYPE_CHECKING:
    from fennel.app import App

__all__ = ["AsyncResult", "gather", "purge_dead", "read_dead", "replay_dead", "wait"]

R = TypeVar("R")
Handle = AsyncResult[R] | Result[R]


async def gather(
    results: Iterable[Handle[R]],
    timeout: float | None = None,
    return_exceptions: bool = False,
) -> list[R]:
    """Wait for every job and return their values in order.

    Raises the first failure (in the given order) unless ``return_exceptions=True``, in which
    case errors take the place of values. Thousands of handles share one subscription and one
    pipelined status read per app. Raises :class:`~fennel.exceptions.Timeout` if ``timeout``
    seconds pass before all are done.
    """
    handles = list(results)
    outcomes = await _outcomes(handles, timeout)
    missing = [h.job_id for h, o in zip(handles, outcomes, strict=True) if o is None]
    if missing:
        raise Timeout(f"{len(missing)} of {len(handles)} jobs did not finish within {timeout} "
                      f"seconds (first: {missing[0]}).")
    values: list[Any] = []
    for h, outcome in zip(handles, outcomes, strict=True):
        assert outcome is not None
        try:
            values.append(raise_or_value(h.job_id, outcome))
        except Exception as exc:
            if not return_exceptions:
                raise
            values.append(exc)
    return values


async def wait(
    results: Iterable[Handle[R]], timeout: float | None = None
) -> tuple[set[Handle[R]], set[Handle[R]]]:
    """Wait up to ``timeout`` seconds; return ``(done, pending)`` sets of the given handles."""
    handles = list(results)
    outcomes = await _outcomes(handles, timeout)
    done = {h for h, o in zip(handles, outcomes, strict=True) if o is not None}
    return done, {h for h in handles if h not in done}


async def _outcomes(handles: list[Handle[Any]], timeout: float | None) -> list[Any]:
    """The outcome of each handle, or ``None`` where it is not done after ``timeout``."""
    by_app: dict[int, list[int]] = {}
    for i, h in enumerate(handles):
        by_app.setdefault(id(h.app), []).append(i)
    out: list[Any] = [None] * len(handles)

    async def one_app(indexes: list[int]) -> None:
        client = handles[indexes[0]].app.client()
        futures = await client.outcomes([handles[i].job_id for i in indexes], timeout)
        for i, fut in zip(indexes, futures, strict=True):
            if fut.done():
                out[i] = fut.result()

    await asyncio.gather(*(one_app(ix) for ix in by_app.values()))
    return out


async def read_dead(app: App[Any]) -> list[Job]:
    """Every job in the app's dead-letter queue, oldest first, each with all its errors."""
    return [job for _entry, job in await app.client().dead()]


async def replay_dead(app: App[Any], filter: Callable[[Job], bool] | None = None, *,
                      progress: Progress | None = None) -> list[Job]:
    """Put dead jobs (those matching ``filter``) back on the queue with a fresh retry budget.

    Each dead job is replayed exactly once even when several processes replay at once. The
    original handle's ``.get()`` then returns the new outcome.
    """
    return await app.client().replay(filter, progress)


async def purge_dead(app: App[Any], filter: Callable[[Job], bool] | None = None, *,
                     progress: Progress | None = None) -> list[Job]:
    """Delete dead jobs (those matching ``filter``) from the dead-letter queue for good.

    ``progress(done, total)``, if given, is called as the work advances (here and in
    :func:`replay_dead`).
    """
    return await app.client().purge(filter, progress)
