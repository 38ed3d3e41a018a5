"""Every error Fennel raises.

The tree::

    FennelError
    ├── ConfigurationError (also ValueError)     a setting has an invalid value
    ├── AppNotFound                              ``--app mod:app`` could not be loaded
    ├── SerializationError (also TypeError)      arguments/result are not JSON-serialisable
    ├── PayloadTooLarge (also ValueError)        an envelope is larger than ``max_payload``
    ├── UnknownTask                              a task name is not in the app's registry
    ├── BrokerError                              Redis refused or could not be reached
    │   ├── ConnectionFailed (also ConnectionError)
    │   │   └── AuthenticationFailed             Redis refused the URL's credentials
    │   └── OutOfMemory                          Redis is at ``maxmemory``; nothing was written
    ├── ResultError
    │   ├── TaskFailed                           the task failed for good (DLQ)
    │   ├── ResultsDisabled                      ``results_enabled=False``
    │   └── ResultMissing (also LookupError)     Redis no longer knows the job
    ├── Timeout (also TimeoutError)              waiting ran out of time
    └── SyncCallInEventLoop (also RuntimeError)  the sync API was called where it would
                                                 block a running event loop

Third-party errors (redis-py's) are translated at one boundary, the broker, and chained with
``raise ... from exc`` so the original stays visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AppNotFound",
    "AuthenticationFailed",
    "BrokerError",
    "ConfigurationError",
    "ConnectionFailed",
    "FennelError",
    "OutOfMemory",
    "PayloadTooLarge",
    "ResultError",
    "ResultMissing",
    "ResultsDisabled",
    "SerializationError",
    "SyncCallInEventLoop",
    "TaskFailed",
    "Timeout",
    "UnknownTask",
]


class FennelError(Exception):
    """Base class of every error raised by Fennel."""


class ConfigurationError(FennelError, ValueError):
    """A setting has an invalid value. The message names the setting and what is accepted."""

    def __init__(self, setting: str, value: Any, expected: str) -> None:
        self.setting = setting
        self.value = value
        self.expected = expected
        super().__init__(f"Invalid value for setting {setting!r}: {value!r}. Expected {expected}.")


class AppNotFound(FennelError):
    """The ``module:attribute`` given to ``--app`` could not be imported or is not an App."""


class SerializationError(FennelError, TypeError):
    """A value could not be encoded as JSON. Nothing was written to Redis."""


class PayloadTooLarge(FennelError, ValueError):
    """The encoded job is larger than the ``max_payload`` setting. Nothing was written."""


class UnknownTask(FennelError):
    """A job names a task that is not registered on this app."""


class BrokerError(FennelError):
    """Redis returned an error or could not be reached."""


class ConnectionFailed(BrokerError, ConnectionError):
    """Redis could not be reached (refused, timed out, or the connection dropped)."""


class AuthenticationFailed(ConnectionFailed):
    """Redis refused the username or password of the URL (or the user may not run a command
    Fennel needs). Waiting does not help: fix the credentials or the ACL."""


class OutOfMemory(BrokerError):
    """Redis is at its ``maxmemory`` limit with ``noeviction``; the write was refused."""


class ResultError(FennelError):
    """Base class for errors when fetching a job's result."""


class TaskFailed(ResultError):
    """The task raised on every attempt and its job is in the dead-letter queue.

    ``original_type`` is the exception's class name, ``original_args`` its ``args`` (as JSON
    would carry them) and ``traceback`` the formatted traceback of the last attempt.
    """

    def __init__(
        self,
        job_id: str,
        original_type: str,
        original_args: Sequence[Any],
        traceback: str = "",
    ) -> None:
        self.job_id = job_id
        self.original_type = original_type
        self.original_args = list(original_args)
        self.traceback = traceback
        args = ", ".join(repr(a) for a in self.original_args)
        super().__init__(f"Job {job_id} failed: {original_type}({args})")


class ResultsDisabled(ResultError):
    """The app runs with ``results_enabled=False``, so results are not stored."""


class ResultMissing(ResultError, LookupError):
    """Redis does not know the job: its status and result expired (``results_ttl``) or the
    id was never enqueued on this app."""


class Timeout(FennelError, TimeoutError):
    """Waiting for a result (or for Redis) took longer than the given timeout."""


class SyncCallInEventLoop(FennelError, RuntimeError):
    """A sync API call (``delay()``, ``.get()``, ``gather``...) was made from a thread that
    runs an event loop: an ``async def`` function, a task or a hook. Waiting there would
    freeze that loop (and on Fennel's own loop thread, deadlock), so Fennel refuses at once.
    Use the async API there, or run the sync call in a thread (``asyncio.to_thread``)."""
