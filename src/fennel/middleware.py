"""Hooks into a job's life, on the producer and on the worker.

Subclass :class:`Middleware`, override the hooks you need (plain or ``async def``), and
register an instance with ``App(..., middleware=[...])`` or ``app.add_middleware(...)``. Every
hook is a no-op by default. An exception raised by a hook is logged and otherwise ignored: a
broken hook never loses or fails a job.

Order: hooks run in registration order; ``after_*`` hooks too (each is independent).

Example::

    class Audit(Middleware):
        def on_success(self, app, job, result, duration):
            print(f"{job.task} took {duration:.3f}s")

    app.add_middleware(Audit())
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fennel._log import get_logger

if TYPE_CHECKING:
    from fennel.app import App
    from fennel.job import Job

__all__ = ["LoggingMiddleware", "Middleware"]

log = get_logger("fennel.middleware")


class Middleware:
    """Base class: every hook does nothing. Hooks may be ``def`` or ``async def``.

    Producer side (run in the process calling ``.delay()``): ``before_enqueue`` (may edit
    ``job.headers``), ``after_enqueue``. Worker side: ``on_worker_start``, ``on_worker_stop``,
    ``before_execute``, ``after_execute`` (always, with ``error`` or ``None``), ``on_success``,
    ``on_failure`` (every failed attempt), ``on_retry`` (a retry was scheduled after ``delay``
    seconds), ``on_dead`` (the job went to the dead-letter queue).
    """

    def before_enqueue(self, app: App[Any], job: Job) -> Any: ...

    def after_enqueue(self, app: App[Any], job: Job) -> Any: ...

    def on_worker_start(self, app: App[Any], worker: Any) -> Any: ...

    def on_worker_stop(self, app: App[Any], worker: Any) -> Any: ...

    def before_execute(self, app: App[Any], job: Job) -> Any: ...

    def after_execute(
        self, app: App[Any], job: Job, error: BaseException | None, duration: float
    ) -> Any: ...

    def on_success(self, app: App[Any], job: Job, result: Any, duration: float) -> Any: ...

    def on_failure(self, app: App[Any], job: Job, error: BaseException) -> Any: ...

    def on_retry(self, app: App[Any], job: Job, error: BaseException, delay: float) -> Any: ...

    def on_dead(self, app: App[Any], job: Job, reason: str) -> Any: ...

    def active(self, hook: str) -> bool:
        """Whether ``hook`` does anything now; a worker skips hooks that do not, per job."""
        return True


def overrides(mw: Middleware, hook: str) -> bool:
    """Whether ``mw`` defines ``hook`` itself (so no-op hooks cost nothing to skip)."""
    return getattr(type(mw), hook) is not getattr(Middleware, hook) and mw.active(hook)


class Hooks:
    """Per hook, the middleware that do something for it, resolved once (and again only if
    middleware is added), so a job pays nothing for hooks that do nothing."""

    def __init__(self, middleware: list[Middleware]) -> None:
        self._middleware = middleware
        self._resolved: dict[str, list[Middleware]] = {}
        self._size = -1

    def __call__(self, hook: str) -> list[Middleware]:
        if self._size != len(self._middleware):
            self._resolved.clear()
            self._size = len(self._middleware)
        found = self._resolved.get(hook)
        if found is None:
            found = self._resolved[hook] = [m for m in self._middleware if overrides(m, hook)]
        return found


async def run_hooks(middleware: Sequence[Middleware], hook: str, *args: Any) -> None:
    """Run a hook of every middleware, awaiting async ones; a failing hook is logged."""
    await call_hooks([mw for mw in middleware if overrides(mw, hook)], hook, *args)


async def call_hooks(middleware: Sequence[Middleware], hook: str, *args: Any) -> None:
    """Run ``hook`` of each of ``middleware`` (already resolved, see :class:`Hooks`)."""
    for mw in middleware:
        try:
            res = getattr(mw, hook)(*args)
            if res is not None and inspect.isawaitable(res):
                await res
        except Exception:
            log.exception("fennel.middleware.hook_failed", hook=hook,
                          middleware=type(mw).__name__)


class LoggingMiddleware(Middleware):
    """The worker's job log: one structured event per lifecycle step, each with the job id,
    task name and attempt. Installed first by every worker; the CLI chooses the format.

    Errors have the same fields in every event: ``error_type``, ``error`` (the message) and,
    on ``job.failed``, ``traceback`` (always on a job's last attempt, on every attempt when
    the ``fennel.worker`` logger is at debug level).
    """

    #: the level each hook logs at (after_execute logs failures only)
    _LEVELS = {"before_execute": logging.INFO, "on_success": logging.INFO,
               "after_execute": logging.WARNING, "on_retry": logging.WARNING,
               "on_dead": logging.ERROR}

    def __init__(self) -> None:
        self.log = get_logger("fennel.worker")

    def active(self, hook: str) -> bool:
        """Hooks whose events the configured level drops cost nothing (see :class:`Hooks`)."""
        level = self._LEVELS.get(hook)
        return level is None or self.log.is_enabled_for(level)

    def before_execute(self, app: App[Any], job: Job) -> None:
        self.log.info("job.started", job_id=job.id, task=job.task, attempt=job.tries + 1)

    def on_success(self, app: App[Any], job: Job, result: Any, duration: float) -> None:
        self.log.info("job.succeeded", job_id=job.id, task=job.task, attempt=job.tries + 1,
                      duration=round(duration, 6))

    def after_execute(
        self, app: App[Any], job: Job, error: BaseException | None, duration: float
    ) -> None:
        if error is None:
            return
        fields: dict[str, Any] = {"error_type": _type_name(error), "error": str(error)}
        if job.tries >= job.max_retries or self.log.is_enabled_for(logging.DEBUG):
            fields["traceback"] = _traceback(error)
        self.log.warning("job.failed", job_id=job.id, task=job.task, attempt=job.tries + 1,
                         duration=round(duration, 6), **fields)

    def on_retry(self, app: App[Any], job: Job, error: BaseException, delay: float) -> None:
        self.log.warning("job.retrying", job_id=job.id, task=job.task, attempt=job.tries + 1,
                         error_type=_type_name(error), error=str(error),
                         retry_in=round(delay, 3))

    def on_dead(self, app: App[Any], job: Job, reason: str) -> None:
        last = job.errors[-1] if job.errors else {}
        args = last.get("args") or []
        # What str() of the exception said: its one argument, or all of them as a tuple.
        message = str(args[0]) if len(args) == 1 else str(tuple(args)) if args else ""
        self.log.error("job.dead", job_id=job.id, task=job.task, attempt=job.tries + 1,
                       reason=reason, error_type=last.get("type"), error=message)


def _type_name(error: BaseException) -> str:
    # A task that failed in a child process arrives as a RemoteError naming the real type.
    return str(getattr(error, "type_name", None) or type(error).__name__)


def _traceback(error: BaseException) -> str:
    remote = getattr(error, "remote_traceback", None)
    if isinstance(remote, str) and remote:
        return remote
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
