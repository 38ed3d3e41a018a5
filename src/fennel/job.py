"""The job record and its JSON envelope.

A job is one call of a task: its id, the task's registered name, the arguments, and how many
attempts it has used. It travels through Redis as a compact JSON *envelope* (orjson), which is
the only wire format: no pickle, and no field is ever used to import code.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from fennel.exceptions import PayloadTooLarge, SerializationError

__all__ = ["Job", "Status", "decode", "encode_value"]


class Status(str, enum.Enum):
    """Where a job is in its life.

    ``SENT`` enqueued, ``EXECUTING`` running on a worker, ``RETRY`` failed and waiting for its
    next attempt, ``SUCCESS`` finished, ``DEAD`` failed for good (in the dead-letter queue),
    ``UNKNOWN`` Redis has no record of it (never enqueued, or expired after ``results_ttl``).
    """

    SENT = "SENT"
    EXECUTING = "EXECUTING"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    DEAD = "DEAD"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


TERMINAL = frozenset({Status.SUCCESS, Status.DEAD})


@dataclasses.dataclass(slots=True)
class Job:
    """One enqueued call of a task.

    ``task`` is the registered task name (``"module.function"`` by default), ``tries`` the
    number of failed attempts so far, ``max_retries`` how many retries it may use, and
    ``errors`` one entry per failed attempt (``type``, ``args``, ``traceback``, ``attempt``,
    ``at``).
    """

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    tries: int = 0
    max_retries: int = 0
    timeout: float | None = None
    enqueued_at: float = dataclasses.field(default_factory=time.time)
    #: Pub/sub channel of the producer waiting for this job, if any.
    reply_to: str | None = None
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: Follow-up jobs, as envelopes ready to enqueue, for success and final failure.
    on_success: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    on_failure: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: Free-form headers carried with the job (trace context, middleware data).
    headers: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "tries": self.tries,
            "max_retries": self.max_retries,
            "enqueued_at": self.enqueued_at,
        }
        # Optional fields are left out when empty to keep the common envelope small.
        if self.timeout is not None:
            d["timeout"] = self.timeout
        if self.reply_to:
            d["reply_to"] = self.reply_to
        if self.errors:
            d["errors"] = self.errors
        if self.on_success:
            d["on_success"] = self.on_success
        if self.on_failure:
            d["on_failure"] = self.on_failure
        if self.headers:
            d["headers"] = self.headers
        return d

    def encode(self, max_payload: int | None = None) -> bytes:
        """The JSON envelope. Raises :class:`SerializationError` or :class:`PayloadTooLarge`."""
        try:
            data = orjson.dumps(self.to_dict())
        except TypeError as exc:
            raise SerializationError(
                f"Arguments of task {self.task!r} are not JSON-serialisable ({exc}). "
                "Pass plain data (str, int, float, bool, None, list, dict) such as ids, "
                "not objects."
            ) from exc
        if max_payload is not None and len(data) > max_payload:
            raise PayloadTooLarge(
                f"Job for task {self.task!r} is {len(data)} bytes, over the max_payload limit of "
                f"{max_payload} bytes. Pass a reference (an id, a URL) instead of the data, or "
                "raise the max_payload setting."
            )
        return data

    @property
    def last_error(self) -> dict[str, Any] | None:
        return self.errors[-1] if self.errors else None

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.task} tries={self.tries}>"


_REQUIRED = {"id": str, "task": str, "args": list, "kwargs": dict}


def decode(data: bytes | str) -> Job:
    """Parse an envelope. Raises ``ValueError`` saying why, for anything malformed."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"envelope is not valid JSON: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ValueError("envelope is not a JSON object")
    for key, typ in _REQUIRED.items():
        if not isinstance(raw.get(key), typ):
            raise ValueError(f"envelope field {key!r} is missing or not a {typ.__name__}")
    try:
        return Job(
            id=raw["id"],
            task=raw["task"],
            args=raw["args"],
            kwargs=raw["kwargs"],
            tries=int(raw.get("tries", 0)),
            max_retries=int(raw.get("max_retries", 0)),
            timeout=_opt_float(raw.get("timeout")),
            enqueued_at=float(raw.get("enqueued_at", 0.0)),
            reply_to=raw.get("reply_to") if isinstance(raw.get("reply_to"), str) else None,
            errors=list(raw.get("errors", [])),
            on_success=list(raw.get("on_success", [])),
            on_failure=list(raw.get("on_failure", [])),
            headers=dict(raw.get("headers", {})),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"envelope has a malformed field: {exc}") from None


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def encode_value(value: Any, what: str) -> bytes:
    """JSON-encode a task's return value; :class:`SerializationError` names ``what``."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise SerializationError(
            f"The return value of {what} is not JSON-serialisable ({exc}). Return plain data."
        ) from exc


def error_record(exc: BaseException, attempt: int, tb: str) -> dict[str, Any]:
    """The JSON-safe description of one failed attempt."""
    return {
        "type": type(exc).__name__,
        "args": _json_safe_args(exc.args),
        "traceback": tb[-8000:],
        "attempt": attempt,
        "at": time.time(),
    }


def _json_safe_args(args: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for a in args:
        try:
            orjson.dumps(a)
            out.append(a)
        except TypeError:
            out.append(repr(a))
    return out
