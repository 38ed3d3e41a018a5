"""Typed task handles.

``@app.task`` turns a function into a :class:`SyncTask` (``interface='sync'``) or an
:class:`AsyncTask` (``interface='async'``). Both are generic in the function's parameters
``P`` and return type ``R``, so type checkers verify ``foo.delay(...)`` against the function's
signature and know that ``.get()`` returns ``R``. Calling the handle itself runs the function
in-process, as if it were not a task.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeAlias, TypeVar

from fennel import _portal
from fennel.client._results import AsyncResult, Result
from fennel.job import Job

if TYPE_CHECKING:
    from fennel.app import App

__all__ = ["AsyncTask", "Signature", "SyncTask", "Task", "chain"]

P = ParamSpec("P")
R = TypeVar("R")

#: One bulk item: a tuple of positional arguments, or ``(args, kwargs)`` via :func:`call`.
BulkItem: TypeAlias = "Sequence[Any] | Call"


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
        self._params: _Parameters | None = None

    def check_arguments(self, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` if the function cannot be called with these arguments, as
        Python would, so a bad call fails at ``delay()`` and not later in a worker."""
        params = self._parameters()
        if not params.accepts(args, kwargs):
            params.explain(self.name, args, kwargs)

    def _parameters(self) -> _Parameters:
        """The function's parameters, digested on first use."""
        params = self._params
        if params is None:
            params = self._params = _Parameters(self.fn)
        return params

    @property
    def retries(self) -> int:
        """Retries this task may use: its own ``retries``, else the app's ``default_retries``."""
        return self.app.settings.default_retries if self._retries is None else self._retries

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function here and now (returns a coroutine for an ``async def`` task)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def make_job(self, args: Sequence[Any], kwargs: dict[str, Any],
                 on_success: Sequence[Callback] = (),
                 on_failure: Sequence[Callback] = ()) -> Job:
        self.check_arguments(args, kwargs)
        for cb in (*on_success, *on_failure):
            as_signature(cb).check_as_callback()
        return Job(
            id=uuid.uuid4().hex,
            task=self.name,
            args=list(args),
            kwargs=kwargs,
            max_retries=self.retries,
            timeout=self.timeout,
            on_success=[as_signature(cb).to_dict() for cb in on_success],
            on_failure=[as_signature(cb).to_dict() for cb in on_failure],
        )

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A call of this task to make later, as a callback or a chain step.

        When it runs as a callback, the finished job's result (``on_success``) or error record
        (``on_failure``) is passed after ``args``: ``notify.s("ops@example.com")`` runs as
        ``notify("ops@example.com", result)``. Arguments the function cannot take at all raise
        ``TypeError`` here; missing ones when the call is enqueued.
        """
        self._parameters().check_partial(self.name, args, kwargs)
        return Signature(self, args, kwargs)

    def _bulk_jobs(self, arguments: Iterable[BulkItem]) -> list[Job]:
        items = [_split(item) for item in arguments]
        for args, kwargs in items:
            self.check_arguments(args, kwargs)
        # One read of the OS's random source for the whole batch, not one per job.
        ids = os.urandom(16 * len(items)).hex()
        retries = self.retries
        return [Job(id=ids[32 * i:32 * i + 32], task=self.name, args=list(args),
                    kwargs=kwargs, max_retries=retries, timeout=self.timeout)
                for i, (args, kwargs) in enumerate(items)]


class Signature:
    """A task call to make later: a completion callback, or a step of a :func:`chain`.

    Made with ``task.s(*args, **kwargs)``. ``sig.then(other)`` runs ``other`` with this step's
    result when it succeeds; ``sig.on_error(handler)`` runs ``handler`` with the error record
    when it fails for good. Callbacks are enqueued by the same atomic Redis script that records
    the outcome, so a crash can never record one without the other.
    """

    __slots__ = ("args", "failure", "kwargs", "success", "task")

    def __init__(self, task: Task[Any, Any], args: Sequence[Any] = (),
                 kwargs: dict[str, Any] | None = None, success: Sequence[Signature] = (),
                 failure: Sequence[Signature] = ()) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.success = tuple(success)
        self.failure = tuple(failure)

    def then(self, nxt: Callback) -> Signature:
        """This call, followed by ``nxt`` (given this call's result) when it succeeds."""
        return Signature(self.task, self.args, self.kwargs, (*self.success, as_signature(nxt)),
                         self.failure)

    def on_error(self, handler: Callback) -> Signature:
        """This call, followed by ``handler`` (given the error record) if it fails for good."""
        return Signature(self.task, self.args, self.kwargs, self.success,
                         (*self.failure, as_signature(handler)))

    def check_as_callback(self) -> None:
        """Raise ``TypeError`` unless the task can take this call's arguments followed by the
        result (or error record) it is given as a callback, and so on down its callbacks."""
        self.task.check_arguments((*self.args, None), self.kwargs)
        for cb in (*self.success, *self.failure):
            cb.check_as_callback()

    def to_dict(self) -> dict[str, Any]:
        """The envelope fragment a worker turns into the follow-up job."""
        d: dict[str, Any] = {"task": self.task.name, "args": list(self.args),
                             "kwargs": self.kwargs, "max_retries": self.task.retries}
        if self.task.timeout is not None:
            d["timeout"] = self.task.timeout
        if self.success:
            d["on_success"] = [cb.to_dict() for cb in self.success]
        if self.failure:
            d["on_failure"] = [cb.to_dict() for cb in self.failure]
        return d

    def delay(self) -> Any:
        """Enqueue this call (with its callbacks); returns the handle of its first job.

        Awaitable under ``interface='async'``. The handles of follow-up jobs are reachable
        with ``handle.followup(i)``.
        """
        t = self.task
        job = t.make_job(self.args, self.kwargs, self.success, self.failure)
        if t.app.settings.interface == "async":
            async def run() -> AsyncResult[Any]:
                await t.app.client().enqueue(job)
                return AsyncResult(t.app, job.id)
            return run()
        _portal.call(_enqueue, t.app, job)
        return Result(t.app, job.id)

    def __repr__(self) -> str:
        return f"<Signature {self.task.name} args={self.args!r}>"


Callback = Task[Any, Any] | Signature


def as_signature(cb: Callback) -> Signature:
    if isinstance(cb, Signature):
        return cb
    if isinstance(cb, Task):
        return Signature(cb)
    raise TypeError(f"A callback must be a task or task.s(...), got {type(cb).__name__}")


def chain(first: Callback, *rest: Callback) -> Signature:
    """``chain(a.s(1), b, c)``: run ``a(1)``, then ``b(result of a)``, then ``c(result of b)``.

    Each step runs only if the previous one succeeded; ``.delay()`` starts it.
    """
    sig: Signature | None = None
    for step in reversed((first, *rest)):
        s = as_signature(step)
        sig = s if sig is None else s.then(sig)
    assert sig is not None
    return sig


class _Options(Generic[P, R]):
    def __init__(self, task: Task[P, R], on_success: Sequence[Callback],
                 on_failure: Sequence[Callback]) -> None:
        self._task = task
        self._on_success = on_success
        self._on_failure = on_failure

    def _job(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Job:
        return self._task.make_job(args, kwargs, self._on_success, self._on_failure)


class SyncOptions(_Options[P, R]):
    """``task.options(...)`` of a sync app: ``.delay(...)`` enqueues with those options."""

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Result[R]:
        job = self._job(args, kwargs)
        _portal.call(_enqueue, self._task.app, job)
        return Result(self._task.app, job.id)


class AsyncOptions(_Options[P, R]):
    """``task.options(...)`` of an async app: ``await .delay(...)`` enqueues with them."""

    async def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        job = self._job(args, kwargs)
        await self._task.app.client().enqueue(job)
        return AsyncResult(self._task.app, job.id)


def _callbacks(cb: Callback | Sequence[Callback] | None) -> list[Callback]:
    if cb is None:
        return []
    if isinstance(cb, (Task, Signature)):
        return [cb]
    return list(cb)


class AsyncTask(Task[P, R]):
    """Task handle of an app with ``interface='async'``."""

    def options(self, *, on_success: Callback | Sequence[Callback] | None = None,
                on_failure: Callback | Sequence[Callback] | None = None) -> AsyncOptions[P, R]:
        """Enqueue with completion callbacks: ``await foo.options(on_success=bar).delay(1)``.

        ``on_success`` tasks get the result as their last argument, ``on_failure`` tasks the
        error record (``type``, ``args``, ``traceback``, ``attempt``) once retries are spent.
        """
        return AsyncOptions(self, _callbacks(on_success), _callbacks(on_failure))

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

    def options(self, *, on_success: Callback | Sequence[Callback] | None = None,
                on_failure: Callback | Sequence[Callback] | None = None) -> SyncOptions[P, R]:
        """Enqueue with completion callbacks: ``foo.options(on_success=bar).delay(1)``
        (see :meth:`AsyncTask.options`)."""
        return SyncOptions(self, _callbacks(on_success), _callbacks(on_failure))

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Result[R]:
        """Enqueue a call; returns its :class:`Result` once Redis has it."""
        job = self.make_job(args, kwargs)
        app = self.app
        if app.middleware:
            _portal.call(_enqueue, app, job)  # hooks may be coroutines: run them on the loop
        else:
            # Fast path: encode here, then join the loop's next pipelined round trip.
            client = app.sync_client()
            client.broker.enqueue_threadsafe(_portal.loop(), job.id, client.encode(job))
        return Result(app, job.id)

    def map(self, arguments: Iterable[BulkItem]) -> list[Result[R]]:
        """Enqueue one call per item of ``arguments`` (see :meth:`AsyncTask.map`)."""
        jobs = self._bulk_jobs(arguments)
        _portal.call(_enqueue_many, self.app, jobs)
        return [Result(self.app, job.id) for job in jobs]


class _Parameters:
    """A task function's parameters, digested once so that checking a call is a few set
    operations; ``inspect.Signature.bind`` (slow, pure Python) only words the error."""

    __slots__ = ("keywords", "max_args", "min_args", "positional", "required", "sig",
                 "var_keyword", "var_positional")

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            self.sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # no signature to check against (some builtins)
            self.sig = None
            return
        kinds = inspect.Parameter
        params = list(self.sig.parameters.values())
        self.positional = [p.name for p in params
                           if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
        self.keywords = frozenset(p.name for p in params
                                  if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY))
        self.required = frozenset(p.name for p in params if p.default is p.empty and p.kind
                                  not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD))
        self.var_positional = any(p.kind is kinds.VAR_POSITIONAL for p in params)
        self.var_keyword = any(p.kind is kinds.VAR_KEYWORD for p in params)
        # Positional arguments alone: their count decides (parameters without defaults come
        # first); a required keyword-only parameter means they never suffice.
        required_positional = sum(1 for name in self.positional if name in self.required)
        self.min_args = (required_positional if required_positional == len(self.required)
                         else -1)
        self.max_args = -1 if self.var_positional else len(self.positional)

    def accepts(self, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
        if self.sig is None:
            return True
        n = len(args)
        if not kwargs:
            return 0 <= self.min_args <= n and (n <= self.max_args or self.max_args < 0)
        if n > len(self.positional) and not self.var_positional:
            return False
        if not self.var_keyword and not self.keywords.issuperset(kwargs):
            return False
        given = self.positional[:n]
        if not given:
            return self.required.issubset(kwargs)
        given_set = set(given)
        if not given_set.isdisjoint(kwargs):
            return False  # the same parameter twice
        return self.required <= given_set.union(kwargs)

    def explain(self, name: str, args: Sequence[Any], kwargs: dict[str, Any],
                partial: bool = False) -> None:
        """Raise the ``TypeError`` Python would raise for this call, naming the task."""
        assert self.sig is not None
        try:
            (self.sig.bind_partial if partial else self.sig.bind)(*args, **kwargs)
        except TypeError as exc:
            plain = self.sig.replace(
                parameters=[p.replace(annotation=p.empty) for p in self.sig.parameters.values()],
                return_annotation=inspect.Signature.empty)
            raise TypeError(f"Task {name!r} cannot be called with these arguments: {exc} "
                            f"(it takes {plain}). Nothing was enqueued.") from None

    def check_partial(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        """For ``task.s(...)``: the arguments given must fit; more may follow."""
        if self.sig is not None:
            self.explain(name, args, kwargs, partial=True)


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
