"""Result handles: :class:`AsyncResult` (async interface) and :class:`Result` (sync)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fennel import _portal
from fennel.job import Status

if TYPE_CHECKING:
    from fennel.app import App

__all__ = ["AsyncResult", "Result"]

R = TypeVar("R")


class _Handle(Generic[R]):
    __slots__ = ("app", "job_id")

    def __init__(self, app: App[Any], job_id: str) -> None:
        self.app = app
        self.job_id = job_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.job_id} app={self.app.name!r}>"

    def followup(self, index: int = 0, *, failed: bool = False) -> Any:
        """The handle of this job's ``index``-th ``on_success`` callback job (``on_failure``
        with ``failed=True``); for a chain, ``x.followup().followup()`` is the third step."""
        return type(self)(self.app, f"{self.job_id}.{'f' if failed else 's'}{index}")

    def __hash__(self) -> int:
        return hash((type(self), self.job_id))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Handle) and type(other) is type(self) and (
            other.job_id == self.job_id)


class AsyncResult(_Handle[R]):
    """Handle of an enqueued job, for async code. ``await x.get()`` waits for the value."""

    __slots__ = ()

    async def get(self, timeout: float | None = None) -> R:
        """Wait for the job and return its value.

        Raises :class:`~fennel.exceptions.TaskFailed` if it failed for good,
        :class:`~fennel.exceptions.Timeout` (a ``TimeoutError``) if ``timeout`` seconds pass
        first, and :class:`~fennel.exceptions.ResultMissing` if Redis has no record of it.
        """
        value: R = await self.app.client().result(self.job_id, timeout)
        return value

    async def status(self) -> Status:
        """SENT, EXECUTING, RETRY, SUCCESS, DEAD, or UNKNOWN."""
        return await self.app.client().status(self.job_id)


class Result(_Handle[R]):
    """Handle of an enqueued job, for sync code. ``x.get()`` blocks for the value.

    Safe to use from any thread; the waiting happens on Fennel's loop thread.
    """

    __slots__ = ()

    def get(self, timeout: float | None = None) -> R:
        """Block until the job finishes and return its value (see :meth:`AsyncResult.get`)."""
        return _portal.call(self.aio().get, timeout)

    def status(self) -> Status:
        """SENT, EXECUTING, RETRY, SUCCESS, DEAD, or UNKNOWN."""
        return _portal.call(self.aio().status)

    def aio(self) -> AsyncResult[R]:
        """The async handle of the same job."""
        return AsyncResult(self.app, self.job_id)
