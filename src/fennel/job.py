"""The job record and its JSON envelope.

A job is one call of a task: its id, the task's registered name, the arguments, and how many
attempts it has used. It travels through Redis as a compact JSON *envelope* (orjson), which is
the only wire format: no pickle, and no field is ever used to import code.
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import itertools
import math
import operator
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from fennel.exceptions import PayloadTooLarge, SerializationError

__all__ = ["Job", "MalformedEnvelope", "Status", "decode", "encode_value"]

#: Failed attempts whose records an envelope keeps (the newest); ``failures`` counts them all.
MAX_ERRORS = 10
#: Characters of a traceback kept per error record (its end, where the raise is).
MAX_TRACEBACK = 4000
#: Bytes of an error record's JSON ``args`` kept; longer ones become one truncated string.
MAX_ERROR_ARGS = 2000
#: Upper bound of the envelope's counters; anything larger is a forged or corrupt envelope.
_MAX_COUNT = 2**31

# datetime, date, time, dataclasses and subclasses of str/int/dict/list are handed to
# ``default`` (absent, so they raise) instead of being turned into strings and dicts.
_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
           | orjson.OPT_PASSTHROUGH_SUBCLASS)
_SCALARS = frozenset({str, int, bool, type(None)})
_CONTAINERS = frozenset({list, dict, tuple})
_FAITHFUL = _SCALARS | _CONTAINERS | {float}


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
    ``at``), the newest :data:`MAX_ERRORS` of them, and ``failures`` how many attempts
    failed in all.
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
    #: Failed attempts in all, replays included; ``errors`` keeps only the newest records.
    failures: int = 0

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
        if self.failures:
            d["failures"] = self.failures
        return d

    def encode(self, max_payload: int | None = None) -> bytes:
        """The JSON envelope. Raises :class:`SerializationError` or :class:`PayloadTooLarge`.

        Strict: a value JSON cannot carry faithfully (``NaN``, a ``datetime``, a ``UUID``, an
        enum member, a dataclass, a subclass of a JSON type...) is refused, never converted.
        """
        try:
            data = orjson.dumps(self.to_dict(), option=_STRICT)
            values = self.args
            if self.kwargs:
                values = [*values, *self.kwargs.values()]
            if self.on_success or self.on_failure or self.headers:
                values = [*values, self.on_success, self.on_failure, self.headers]
            unfaithful(values, data)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"Arguments of task {self.task!r} are not JSON-serialisable ({exc}). "
                "Pass plain data (str, int, finite float, bool, None, list, dict) such as ids, "
                "not objects: e.g. str(uuid), dt.isoformat(), member.value."
            ) from exc
        if max_payload is not None and len(data) > max_payload:
            raise PayloadTooLarge(
                f"Job for task {self.task!r} is {len(data)} bytes, over the max_payload limit of "
                f"{max_payload} bytes. Pass a reference (an id, a URL) instead of the data, or "
                "raise the max_payload setting."
            )
        return data

    def with_error(self, record: dict[str, Any]) -> Job:
        """The next attempt's job: one more try, ``record`` appended to a bounded history."""
        return dataclasses.replace(self, tries=self.tries + 1, failures=self.attempts_failed + 1,
                                   errors=[*self.errors, record][-MAX_ERRORS:])

    @property
    def attempts_failed(self) -> int:
        """Failed attempts in all (envelopes written before ``failures`` existed count their
        error records)."""
        return max(self.failures, len(self.errors))

    def encode_fitting(self, max_payload: int) -> bytes:
        """The envelope, within ``max_payload`` at the cost of Fennel's own bookkeeping.

        The error history is Fennel's, not the caller's: it must never push a job that was
        accepted at enqueue over the limit. Older records go first, then the tracebacks of
        the rest, then the history altogether (``failures`` still counts every attempt).
        Raises :class:`PayloadTooLarge` only if the job does not fit without any history.
        """
        data = self.encode()
        if len(data) <= max_payload:
            return data
        bare = [{**e, "traceback": ""} for e in self.errors]
        for errors in (bare, bare[-1:], []) if self.errors else ():
            data = dataclasses.replace(self, errors=errors).encode()
            if len(data) <= max_payload:
                return data
        return dataclasses.replace(self, errors=[]).encode(max_payload)  # PayloadTooLarge

    @property
    def last_error(self) -> dict[str, Any] | None:
        return self.errors[-1] if self.errors else None

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.task} tries={self.tries}>"


_REQUIRED = {"id": str, "task": str, "args": list, "kwargs": dict}
# The id of an envelope that is not valid JSON (or too large to parse), read from its start:
# Fennel writes ``id`` first.
_LEADING_ID = re.compile(rb'\A\s*\{\s*"id"\s*:\s*"([^"\\]{1,200})"')


class MalformedEnvelope(ValueError):
    """An envelope that is not a job. ``job_id`` and ``reply_to`` are set when they could be
    read anyway, so the job's own record and its waiter can still be told."""

    def __init__(self, message: str, job_id: str = "", reply_to: str = "") -> None:
        super().__init__(message)
        self.job_id = job_id
        self.reply_to = reply_to


def leading_id(data: bytes) -> str:
    """The job id at the start of an envelope that cannot be parsed, or ``''``."""
    m = _LEADING_ID.match(data[:512])
    return m.group(1).decode(errors="replace") if m else ""


def decode(data: bytes | str) -> Job:
    """Parse an envelope. Raises :class:`MalformedEnvelope` (a ``ValueError``) saying why,
    for anything malformed."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        head = data.encode() if isinstance(data, str) else data
        raise MalformedEnvelope(f"envelope is not valid JSON: {exc}", leading_id(head)) from None
    if not isinstance(raw, Mapping):
        raise MalformedEnvelope("envelope is not a JSON object")
    job_id = _str_or_empty(raw.get("id"))
    reply_to = _str_or_empty(raw.get("reply_to"))
    for key, typ in _REQUIRED.items():
        if not isinstance(raw.get(key), typ):
            raise MalformedEnvelope(f"envelope field {key!r} is missing or not a {typ.__name__}",
                                    job_id, reply_to)
    try:
        errors = raw.get("errors", [])
        for key in ("errors", "on_success", "on_failure"):
            if not isinstance(raw.get(key, []), list):
                raise ValueError(f"{key!r} is not a list")
        for key in ("on_success", "on_failure"):
            for sig in raw.get(key, []):
                _check_signature(sig, key)
        headers = raw.get("headers", {})
        if not isinstance(headers, dict):
            raise ValueError("'headers' is not an object")
        return Job(
            id=raw["id"],
            task=raw["task"],
            args=raw["args"],
            kwargs=raw["kwargs"],
            tries=_count(raw, "tries"),
            max_retries=_count(raw, "max_retries"),
            timeout=_opt_float(raw.get("timeout")),
            enqueued_at=float(raw.get("enqueued_at", 0.0)),
            reply_to=reply_to or None,
            errors=[e if isinstance(e, dict) else _foreign_error(e) for e in errors],
            on_success=list(raw.get("on_success", [])),
            on_failure=list(raw.get("on_failure", [])),
            headers=headers,
            failures=_count(raw, "failures"),
        )
    except (TypeError, ValueError) as exc:
        raise MalformedEnvelope(f"envelope has a malformed field: {exc}", job_id,
                                reply_to) from None


def _str_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(raw: Mapping[str, Any], key: str) -> int:
    """A counter field: an int within bounds. Floats (orjson reads integers over 64 bits as
    floats) and bools are refused, so a forged count can never make an unencodable job."""
    value = raw.get(key, 0)
    if type(value) is not int or not 0 <= value < _MAX_COUNT:
        raise ValueError(f"{key!r} is not an integer between 0 and {_MAX_COUNT - 1}")
    return value


def _check_signature(sig: Any, key: str) -> None:
    if not (isinstance(sig, dict) and isinstance(sig.get("task"), str)
            and isinstance(sig.get("args", []), list) and isinstance(sig.get("kwargs", {}), dict)
            and isinstance(sig.get("on_success", []), list)
            and isinstance(sig.get("on_failure", []), list)):
        raise ValueError(f"an entry of {key!r} is not a task signature")
    _count(sig, "max_retries")
    _opt_float(sig.get("timeout"))


def _foreign_error(value: Any) -> dict[str, Any]:
    """An error record that is not one (written around Fennel), kept readable."""
    return {"type": "MalformedErrorRecord", "args": [value], "traceback": ""}


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{v!r} is not a number")
    return float(v)


def unfaithful(level: list[Any], data: bytes) -> None:
    """Raise ``TypeError``/``ValueError`` if a value of ``level`` would not come back from
    JSON as it is; ``data`` is their encoding by ``orjson.dumps(..., option=_STRICT)``.

    orjson refuses datetimes, dataclasses and subclasses of the JSON types under ``_STRICT``
    but converts some values silently: ``NaN`` and infinities (written as ``null``), UUIDs
    and enum members (written as strings and their values). This walk finds those. It runs
    breadth-first in C (``map``, ``gc.get_referents``, ``itertools.compress``), one level of
    nesting per Python step, so flat arguments cost one set of types. orjson has refused
    cycles and over-deep nesting already.
    """
    nan_possible: bool | None = None
    while level:
        types = set(map(type, level))
        if types <= _SCALARS:
            return
        if not types <= _FAITHFUL:
            odd = next(t for t in types if t not in _FAITHFUL)
            raise TypeError(f"Type is not JSON serializable faithfully: "
                            f"{odd.__module__}.{odd.__qualname__}")
        if float in types:
            if nan_possible is None:
                # orjson writes NaN and infinities as null: without one, every float is
                # finite, and searching the bytes once is cheaper than testing each float.
                nan_possible = b"null" in data
            if nan_possible and not all(map(math.isfinite, itertools.compress(
                    level, map(operator.is_, map(type, level), itertools.repeat(float))))):
                raise ValueError("NaN and infinity are not JSON (they would arrive as null)")
        if types.isdisjoint(_CONTAINERS):
            return
        level = gc.get_referents(*level)


def encode_value(value: Any, what: str) -> bytes:
    """JSON-encode a task's return value; :class:`SerializationError` names ``what``."""
    try:
        data = orjson.dumps(value, option=_STRICT)
        if type(value) not in _SCALARS:
            unfaithful([value], data)
        return data
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"The return value of {what} is not JSON-serialisable ({exc}). Return plain data."
        ) from exc


def error_record(exc: BaseException, attempt: int, tb: str) -> dict[str, Any]:
    """The JSON-safe description of one failed attempt, bounded in size."""
    args = _json_safe_args(exc.args)
    encoded = orjson.dumps(args)
    if len(encoded) > MAX_ERROR_ARGS:
        args = [encoded[:MAX_ERROR_ARGS].decode(errors="ignore") + "... (truncated)"]
    return {
        "type": type(exc).__name__,
        "args": args,
        "traceback": tb[-MAX_TRACEBACK:],
        "attempt": attempt,
        "at": time.time(),
    }


def _json_safe_args(args: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for a in args:
        try:
            unfaithful([a], orjson.dumps(a, option=_STRICT))
            out.append(a)
        except (TypeError, ValueError):
            out.append(safe_repr(a))
    return out


def safe_repr(value: Any, limit: int = MAX_ERROR_ARGS) -> str:
    """``repr(value)``, bounded, and never raising (a broken ``__repr__`` is reported)."""
    try:
        text = repr(value)
    except Exception as exc:  # a user's __repr__ may raise anything
        text = f"<{type(value).__name__} object; repr() raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[:limit] + "... (truncated)"
