"""How Fennel logs as a library: structured events through the standard ``logging`` tree.

Every module takes its logger from :func:`get_logger`. Events are structlog-style (an event
name and keyword fields) but each becomes an ordinary record of the stdlib logger of the same
name (``fennel.worker``, ``fennel.client``, ...), so the host application decides where they
go and at which level, exactly as for any other library. structlog's global configuration is
never touched.

A record's message is the event itself, an :class:`Event`: a plain formatter prints it as
``job.started job_id=... task=...`` (with the traceback, if any, from the record), while
structlog's ``ProcessorFormatter`` (which the ``fennel`` command uses) renders it field by
field as JSON or console output.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from fennel._redis_url import mask_url

__all__ = ["Event", "FennelLogger", "get_logger", "mask_secrets"]


_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def _mask_match(match: re.Match[str]) -> str:
    return mask_url(match.group(0))


def mask_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Processor: mask passwords in every URL in every field (also inside longer text).

    An exception passed as ``error`` becomes the fields every error has: ``error_type`` and
    ``error`` (its message).
    """
    error = event.get("error")
    if isinstance(error, BaseException):
        event["error"] = str(error)
        event.setdefault("error_type", type(error).__name__)
    for key, value in event.items():
        if isinstance(value, str) and "://" in value:
            event[key] = _URL.sub(_mask_match, value)
    return event


class Event(dict[str, Any]):
    """One structured event, carried as the ``msg`` of a stdlib ``LogRecord``."""

    __slots__ = ()

    def __str__(self) -> str:
        parts = [str(self.get("event", ""))]
        for key, value in self.items():
            if key == "event" or key == "exc_info":
                continue
            if isinstance(value, str):
                quote = not value or any(c in value for c in " \t\n=\"'")
                text = repr(value) if quote else value
            else:
                text = repr(value)
            parts.append(f"{key}={text}")
        return " ".join(parts)


class FennelLogger(structlog.BoundLoggerBase):
    """A structlog bound logger that hands each event to a stdlib logger as one record.

    A level the stdlib logger does not emit costs one cached ``isEnabledFor`` call.
    """

    _logger: logging.Logger

    def is_enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` would be emitted (the stdlib logger's decision)."""
        return self._logger.isEnabledFor(level)

    def debug(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.DEBUG):
            self._emit(logging.DEBUG, "debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.INFO):
            self._emit(logging.INFO, "info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.WARNING):
            self._emit(logging.WARNING, "warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.ERROR):
            self._emit(logging.ERROR, "error", event, kw)

    def critical(self, event: str, **kw: Any) -> None:
        if self._logger.isEnabledFor(logging.CRITICAL):
            self._emit(logging.CRITICAL, "critical", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        """An error with the exception being handled (its traceback goes with the record)."""
        if self._logger.isEnabledFor(logging.ERROR):
            kw.setdefault("exc_info", True)
            self._emit(logging.ERROR, "exception", event, kw)

    def _emit(self, level: int, method: str, event: str, kw: dict[str, Any]) -> None:
        std = self._logger
        ev = Event(self._context)
        ev.update(kw)
        ev["event"] = event
        for processor in self._processors:
            processor(std, method, ev)
        exc = ev.get("exc_info")
        if exc is not None:
            # Resolved here, in the thread that is handling the exception: handlers may
            # format the record later, elsewhere.
            exc = _exc_info(exc)
            if exc is None:
                del ev["exc_info"]
            else:
                ev["exc_info"] = exc
        # The record is made directly: the caller's file and line, which the stdlib would
        # look up by walking the stack, would only ever name this module.
        record = std.makeRecord(std.name, level, "(unknown file)", 0, ev, (), exc)
        # What structlog's ProcessorFormatter looks for to treat the message as an event.
        record._logger = std
        record._name = method
        std.handle(record)


def _exc_info(value: Any) -> Any:
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple):
        return value if value[0] is not None else None
    if value:
        info = sys.exc_info()
        return info if info[0] is not None else None
    return None


#: each updates the event in place (so that it stays an Event)
_PROCESSORS: Sequence[Any] = (structlog.contextvars.merge_contextvars, mask_secrets)


def get_logger(name: str, **initial: Any) -> FennelLogger:
    """The logger of a Fennel module: events go to ``logging.getLogger(name)``.

    >>> log = get_logger("fennel.worker")
    >>> log.info("worker.started", concurrency=8)  # a record of logger 'fennel.worker'
    """
    return FennelLogger(logging.getLogger(name), list(_PROCESSORS), dict(initial))
