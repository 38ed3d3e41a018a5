"""The :class:`App`: settings, the task registry, and the per-loop clients."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from fennel import _portal
from fennel._redis_url import mask_url
from fennel.client._core import AsyncClient
from fennel.client._results import AsyncResult, Result
from fennel.exceptions import ConfigurationError
from fennel.job import Job
from fennel.keys import Keys
from fennel.middleware import Middleware
from fennel.settings import Settings
from fennel.task import AsyncTask, SyncTask, Task

__all__ = ["App"]

P = ParamSpec("P")
R = TypeVar("R")
I = TypeVar("I", bound=str)  # noqa: E741 - the interface literal

SyncI = Literal["sync"]
AsyncI = Literal["async"]


class _SyncDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> SyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> SyncTask[P, R]: ...


class _AsyncDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> AsyncTask[P, R]: ...


class App(Generic[I]):
    """A Fennel application: a name (its namespace in Redis), settings, and tasks.

    ::

        app = App(name="myapp", redis_url="redis://127.0.0.1")

        @app.task
        def add(a: int, b: int) -> int:
            return a + b

        add.delay(1, 2).get()  # 3, computed by a `fennel worker --app mymodule:app`

    ``interface='async'`` makes ``delay()`` awaitable and ``.get()`` a coroutine. Any other
    keyword is a setting of :class:`fennel.settings.Settings`, which can also come from a
    ``FENNEL_<SETTING>`` environment variable (keywords win).
    """

    @overload
    def __init__(
        self: App[SyncI],
        name: str,
        redis_url: str | None = None,
        interface: SyncI = "sync",
        *,
        middleware: Sequence[Middleware] = (),
        **settings: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: App[AsyncI],
        name: str,
        redis_url: str | None = None,
        interface: AsyncI = ...,
        *,
        middleware: Sequence[Middleware] = (),
        **settings: Any,
    ) -> None: ...
    @overload
    def __init__(
        self: App[Any],
        name: str,
        redis_url: str | None = None,
        interface: str = ...,
        *,
        middleware: Sequence[Middleware] = (),
        **settings: Any,
    ) -> None: ...

    def __init__(
        self,
        name: str,
        redis_url: str | None = None,
        interface: str | None = None,
        *,
        middleware: Sequence[Middleware] = (),
        **settings: Any,
    ) -> None:
        if not isinstance(name, str) or not name or any(c in name for c in "{}: \n"):
            raise ConfigurationError("name", name, "a non-empty string without '{', '}', ':' "
                                     "or whitespace")
        if redis_url is not None:
            settings["redis_url"] = redis_url
        if interface is not None:
            settings["interface"] = interface
        self.name = name
        self.settings = Settings.resolve(settings)
        self.keys = Keys(name)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.middleware: list[Middleware] = list(middleware)
        self._sync_client: AsyncClient | None = None
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return (f"App(name={self.name!r}, redis_url={mask_url(self.settings.redis_url)!r}, "
                f"interface={self.settings.interface!r})")

    # -- tasks ------------------------------------------------------------------------------

    @overload
    def task(self: App[SyncI], fn: Callable[P, Coroutine[Any, Any, R]], /) -> SyncTask[P, R]: ...
    @overload
    def task(self: App[SyncI], fn: Callable[P, R], /) -> SyncTask[P, R]: ...
    @overload
    def task(
        self: App[AsyncI], fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def task(self: App[AsyncI], fn: Callable[P, R], /) -> AsyncTask[P, R]: ...
    @overload
    def task(
        self: App[SyncI], /, *, retries: int | None = None, name: str | None = None,
        timeout: float | None = None,
    ) -> _SyncDecorator: ...
    @overload
    def task(
        self: App[AsyncI], /, *, retries: int | None = None, name: str | None = None,
        timeout: float | None = None,
    ) -> _AsyncDecorator: ...
    @overload
    def task(self: App[Any], fn: Callable[..., Any], /) -> Any: ...
    @overload
    def task(
        self: App[Any], /, *, retries: int | None = None, name: str | None = None,
        timeout: float | None = None,
    ) -> Any: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        retries: int | None = None,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(retries=3, ...)``.

        ``name`` defaults to ``"module.function"``; ``retries`` to the app's
        ``default_retries``; ``timeout`` (seconds) to the ``task_timeout`` setting.
        """
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise ConfigurationError("retries", retries, "an int >= 0")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ConfigurationError("timeout", timeout, "a number > 0")

        def register(f: Callable[..., Any]) -> Task[Any, Any]:
            task_name = name or default_task_name(f)
            cls = AsyncTask if self.settings.interface == "async" else SyncTask
            handle: Task[Any, Any] = cls(self, f, task_name, retries,
                                         timeout if timeout is not None
                                         else self.settings.task_timeout)
            existing = self.tasks.get(task_name)
            if existing is not None and existing.fn is not f:
                raise ConfigurationError("name", task_name, "a task name not already "
                                         f"registered on app {self.name!r}")
            self.tasks[task_name] = handle
            return handle

        return register if fn is None else register(fn)

    @overload
    def delay_many(
        self: App[SyncI], calls: Iterable[tuple[Task[Any, Any], Sequence[Any], dict[str, Any]]]
    ) -> list[Result[Any]]: ...
    @overload
    def delay_many(
        self: App[AsyncI], calls: Iterable[tuple[Task[Any, Any], Sequence[Any], dict[str, Any]]]
    ) -> Coroutine[Any, Any, list[AsyncResult[Any]]]: ...
    @overload
    def delay_many(
        self: App[Any], calls: Iterable[tuple[Task[Any, Any], Sequence[Any], dict[str, Any]]]
    ) -> Any: ...

    def delay_many(
        self, calls: Iterable[tuple[Task[Any, Any], Sequence[Any], dict[str, Any]]]
    ) -> Any:
        """Enqueue ``(task, args, kwargs)`` calls of any tasks, thousands per round trip.

        Returns handles in order (awaitable under ``interface='async'``).
        """
        jobs: list[Job] = [t.make_job(a, kw) for t, a, kw in calls]
        if self.settings.interface == "async":
            async def run() -> list[AsyncResult[Any]]:
                await self.client().enqueue_many(jobs)
                return [AsyncResult(self, j.id) for j in jobs]
            return run()
        _portal.call(_enqueue_many, self, jobs)
        return [Result(self, j.id) for j in jobs]

    def add_middleware(self, middleware: Middleware) -> None:
        """Register a :class:`~fennel.middleware.Middleware` (hooks run in registration order)."""
        self.middleware.append(middleware)

    def close(self) -> None:
        """Close this app's connections on the sync loop thread (sync code)."""
        _portal.call(self.aclose)

    async def aclose(self) -> None:
        """Close this app's connections on the running event loop (async code).

        Optional: a loop's client is closed anyway when ``asyncio.run()`` (or any runner)
        finishes the loop. A later call on the loop opens a new client.
        """
        client = self._clients.get(asyncio.get_running_loop())
        if client is not None:
            self.forget_client(client)
            await client.aclose()

    async def __aenter__(self) -> App[I]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """``async with app:`` closes the app's connections on this loop at the end."""
        await self.aclose()

    def forget_client(self, client: AsyncClient) -> None:
        """Stop handing out ``client`` (it is being closed)."""
        loop = client.loop
        if loop is not None and self._clients.get(loop) is client:
            del self._clients[loop]
        if client is self._sync_client:
            self._sync_client = None

    # -- plumbing ---------------------------------------------------------------------------

    def sync_client(self) -> AsyncClient:
        """The client living on the sync facade's loop thread (for the sync fast paths)."""
        client = self._sync_client
        if client is None or client.pid != os.getpid() or client.loop is not _portal.loop():
            client = self._sync_client = _portal.call(_client_of, self)
        return client

    def client(self) -> AsyncClient:
        """The async client of this app on the running event loop (created on first use)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.pid != os.getpid():
            client = AsyncClient(self)
            self._clients[loop] = client
        return client

    def update_settings(self, **changes: Any) -> None:
        """Replace some settings after construction, e.g. ``redis_url`` from the command line.

        Call it before the app is used: clients already created keep the settings they were
        made with. Values are validated as at construction (:class:`ConfigurationError`).
        """
        fields = {f.name for f in dataclasses.fields(Settings)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ConfigurationError(unknown[0], changes[unknown[0]],
                                     "one of the settings " + ", ".join(sorted(fields)))
        self.settings = dataclasses.replace(self.settings, **changes)


async def _client_of(app: App[Any]) -> AsyncClient:
    return app.client()


async def _enqueue_many(app: App[Any], jobs: list[Job]) -> None:
    await app.client().enqueue_many(jobs)


def default_task_name(fn: Callable[..., Any]) -> str:
    """``"module.function"``, with the real module name even when run as ``__main__``."""
    module = fn.__module__
    if module == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
        elif main is not None and isinstance(getattr(main, "__file__", None), str):
            module = os.path.splitext(os.path.basename(str(main.__file__)))[0]
    return f"{module}.{fn.__qualname__}"
