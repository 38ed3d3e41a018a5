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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from fennel.app import App
    from fennel.job import Job

__all__ = ["Middleware"]

log = structlog.get_logger("fennel.middleware")


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


def overrides(mw: Middleware, hook: str) -> bool:
    """Whether ``mw`` defines ``hook`` itself (so no-op hooks cost nothing to skip)."""
    return getattr(type(mw), hook) is not getattr(Middleware, hook)


async def run_hooks(middleware: Sequence[Middleware], hook: str, *args: Any) -> None:
    """Run a hook of every middleware, awaiting async ones; a failing hook is logged."""
    for mw in middleware:
        if not overrides(mw, hook):
            continue
        try:
            res = getattr(mw, hook)(*args)
            if inspect.isawaitable(res):
                await res
        except Exception:
            log.exception("fennel.middleware.hook_failed", hook=hook,
                          middleware=type(mw).__name__)
