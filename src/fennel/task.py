"""Typed task handles.

``@app.task`` turns a function into a :class:`SyncTask` (``interface='sync'``) or an
:class:`AsyncTask` (``interface='async'``). Both are generic in the function's parameters
``P`` and return type ``R``, so type checkers verify ``foo.delay(...)`` against the function's
signature and know that ``.get()`` returns ``R``. Calling the handle itself runs the function
in-process, as if it were not a task.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from fennel import _portal
from fennel.client._results import AsyncResult, Result
from fennel.job import Job

if TYPE_CHECKING:
    from fennel.app import App

__all__ = ["AsyncTask", "SyncTask", "Task"]

P = ParamSpec("P")
R = TypeVar("R")

#: One bulk item: a tuple of positional arguments, or ``(args, kwargs)`` via :func:`call`.
BulkItem = Sequence[Any]


class Task(Generic[P, R]):
    """A registered task: the function, its name, and its retry and timeout policy."""

    def __init__(
        self,
        app: App[Any],
        fn: Callable[..., Any],
        name: str,
        retries: int | None,
        timeout: float | None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self._retries = retries
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def retries(self) -> int:
        """Retries this task may use: its own ``retries``, else the app's ``default_retries``."""
        return self.app.settings.default_retries if self._retries is None else self._retries

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function here and now (returns a coroutine for an ``async def`` task)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def make_job(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Job:
        return Job(
            id=uuid.uuid4().hex,
            task=self.name,
            args=list(args),
            kwargs=kwargs,
            max_retries=self.retries,
            timeout=self.timeout,
        )

    def _bulk_jobs(self, arguments: Iterable[BulkItem]) -> list[Job]:
        return [self.make_job(*_split(item)) for item in arguments]


class AsyncTask(Task[P, R]):
    """Task handle of an app with ``interface='async'``."""

    async def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Enqueue a call; returns its :class:`AsyncResult` once Redis has it."""
        job = self.make_job(args, kwargs)
        await self.app.client().enqueue(job)
        return AsyncResult(self.app, job.id)

    async def map(self, arguments: Iterable[BulkItem]) -> list[AsyncResult[R]]:
        """Enqueue one call per item of ``arguments`` (each a tuple of positional arguments,
        or ``(args, kwargs)`` made with :func:`fennel.call`), thousands per round trip."""
        jobs = self._bulk_jobs(arguments)
        await self.app.client().enqueue_many(jobs)
        return [AsyncResult(self.app, job.id) for job in jobs]


class SyncTask(Task[P, R]):
    """Task handle of an app with ``interface='sync'``."""

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Result[R]:
        """Enqueue a call; returns its :class:`Result` once Redis has it."""
        job = self.make_job(args, kwargs)
        _portal.call(_enqueue, self.app, job)
        return Result(self.app, job.id)

    def map(self, arguments: Iterable[BulkItem]) -> list[Result[R]]:
        """Enqueue one call per item of ``arguments`` (see :meth:`AsyncTask.map`)."""
        jobs = self._bulk_jobs(arguments)
        _portal.call(_enqueue_many, self.app, jobs)
        return [Result(self.app, job.id) for job in jobs]


class Call:
    """Arguments of one call for the bulk APIs: ``foo.map([call(1, x=2), ...])``."""

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


call = Call


def _split(item: Any) -> tuple[Sequence[Any], dict[str, Any]]:
    if isinstance(item, Call):
        return item.args, item.kwargs
    if isinstance(item, (tuple, list)):
        return item, {}
    raise TypeError(
        f"Each bulk item must be a tuple of positional arguments or a fennel.call(...), "
        f"got {type(item).__name__}: {item!r}"
    )


async def _enqueue(app: App[Any], job: Job) -> None:
    await app.client().enqueue(job)


async def _enqueue_many(app: App[Any], jobs: list[Job]) -> None:
    await app.client().enqueue_many(jobs)
