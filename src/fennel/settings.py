"""Resolved configuration of an :class:`~fennel.App`.

Every field can be set three ways, the first found winning: a keyword argument to ``App``, an
environment variable ``FENNEL_<FIELD>`` (``FENNEL_REDIS_URL``, ``FENNEL_DEFAULT_RETRIES``, ...),
or the default below. Invalid values fail at construction with
:class:`~fennel.exceptions.ConfigurationError`, which names the setting and what is accepted.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from fennel.exceptions import ConfigurationError
from fennel.utils import backoff

__all__ = ["Settings"]

Interface = Literal["sync", "async"]
LogFormat = Literal["console", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
PoolKind = Literal["thread", "process"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "interface": get_args(Interface),
    "log_format": get_args(LogFormat),
    "log_level": get_args(LogLevel),
    "pool": get_args(PoolKind),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """All settings of an app. See the module docstring for how they are resolved."""

    #: Where Redis lives: ``redis://``, ``rediss://`` (TLS) or ``unix://``; may carry a
    #: username and password, which are masked in every log line and error.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: ``'sync'``: ``foo.delay()`` returns a handle at once. ``'async'``: it is awaited.
    interface: Interface = "sync"
    #: Retries of a failing task before its job goes to the dead-letter queue.
    default_retries: int = 3
    #: ``(retries) -> seconds`` before the next attempt; exponential with jitter by default.
    retry_backoff: Callable[[int], float] = backoff
    #: Store return values so ``.get()`` can fetch them.
    results_enabled: bool = True
    #: Seconds a finished job's status and result are kept.
    results_ttl: int = 86_400
    log_format: LogFormat = "console"
    log_level: LogLevel = "info"
    #: Jobs one worker process runs at once (async tasks on its loop, sync ones in its pool).
    concurrency: int = 16
    #: Where a worker runs sync tasks: a thread pool, or a process pool for CPU-bound work.
    pool: PoolKind = "thread"
    #: Seconds a worker lets in-flight jobs finish after SIGTERM/SIGINT before handing them back.
    grace_period: float = 30.0
    #: Seconds without a lease renewal after which a dead worker's jobs are redelivered.
    lease_timeout: float = 30.0
    #: Deliveries (worker crashes while running the job) before a job goes to the DLQ.
    max_deliveries: int = 5
    #: Largest encoded job, in bytes, accepted by ``.delay()``.
    max_payload: int = 1_048_576
    #: Default per-task time limit in seconds (``None``: no limit).
    task_timeout: float | None = None
    #: Seconds to establish a connection to Redis before failing.
    connect_timeout: float = 5.0
    #: Seconds any single Redis command may take before failing.
    socket_timeout: float = 10.0
    #: Seconds a starting worker keeps trying to reach Redis before it exits with an error
    #: (``None``: ``3 * connect_timeout``; ``inf``: for ever, for orchestrators that prefer a
    #: waiting worker to a restarting one). Refused credentials are reported as such.
    startup_timeout: float | None = None
    #: Seconds between checks for due retries and delayed jobs.
    schedule_interval: float = 0.1
    #: Port of the worker's HTTP server for ``/livez``, ``/readyz`` and ``/metrics``
    #: (``None``: no server). ``fennel health`` queries it when set.
    health_port: int | None = None
    #: Seconds the worker's event loop or consume loop may stall before ``/livez`` fails.
    liveness_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ConfigurationError(name, value, "one of " + ", ".join(map(repr, choices)))
        _require(self, "default_retries", lambda v: isinstance(v, int) and v >= 0, "an int >= 0")
        _require(self, "results_ttl", lambda v: isinstance(v, int) and v > 0, "an int > 0")
        _require(self, "concurrency", lambda v: isinstance(v, int) and v > 0, "an int > 0")
        _require(self, "max_deliveries", lambda v: isinstance(v, int) and v > 0, "an int > 0")
        _require(self, "max_payload", lambda v: isinstance(v, int) and v > 0, "an int > 0")
        for name in ("grace_period", "lease_timeout", "connect_timeout", "socket_timeout",
                     "schedule_interval", "liveness_timeout"):
            _require(self, name, lambda v: _is_number(v) and v > 0, "a number > 0")
        _require(self, "task_timeout", lambda v: v is None or (_is_number(v) and v > 0),
                 "None or a number > 0")
        _require(self, "startup_timeout", lambda v: v is None or (_is_number(v) and v > 0),
                 "None (3 * connect_timeout), a number > 0, or inf (retry for ever)")
        # Leases are renewed every lease_timeout/3, each renewal bounded by a deadline derived
        # from the lease (never by socket_timeout), so any lease of a second or so holds with
        # every other setting. Below this, a renewal has no time left for a round trip.
        _require(self, "lease_timeout", lambda v: v >= 0.5,
                 "a number >= 0.5: renewals every lease_timeout/3 need time for a round trip")
        _require(self, "health_port",
                 lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)
                                         and 0 <= v < 65536),
                 "None or a port number (0 picks a free port)")
        _require(self, "retry_backoff", callable, "a callable (retries) -> seconds")
        _require(self, "results_enabled", lambda v: isinstance(v, bool), "True or False")
        from fennel._redis_url import mask_url, url_problem

        if not isinstance(self.redis_url, str):
            raise ConfigurationError("redis_url", "<masked>", "a URL starting with redis://, "
                                     "rediss:// or unix://")
        problem = url_problem(self.redis_url)
        if problem is not None:
            # The value is shown masked: a malformed URL is often one whose password broke it.
            raise ConfigurationError("redis_url", mask_url(self.redis_url), problem)

    @property
    def startup_deadline(self) -> float:
        """Seconds a starting worker tries to reach Redis (see ``startup_timeout``)."""
        if self.startup_timeout is None:
            return 3 * self.connect_timeout
        return self.startup_timeout

    @classmethod
    def resolve(
        cls, overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from keyword ``overrides``, then ``FENNEL_*`` variables, then defaults."""
        environ = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ConfigurationError(unknown[0], overrides[unknown[0]],
                                     "one of the settings " + ", ".join(sorted(fields)))
        values: dict[str, Any] = {}
        for name, f in fields.items():
            env_name = "FENNEL_" + name.upper()
            if name in overrides:
                values[name] = overrides[name]
            elif env_name in environ:
                values[name] = _parse_env(name, f.default, environ[env_name])
        return cls(**values)

    def __repr__(self) -> str:
        from fennel._redis_url import mask_url

        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "redis_url":
                value = mask_url(value)
            elif callable(value):
                value = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
                parts.append(f"{f.name}={value}")
                continue
            parts.append(f"{f.name}={value!r}")
        return "Settings(" + ", ".join(parts) + ")"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _require(s: Settings, name: str, ok: Callable[[Any], bool], expected: str) -> None:
    value = getattr(s, name)
    if not ok(value):
        raise ConfigurationError(name, value, expected)


def _parse_env(name: str, default: Any, raw: str) -> Any:
    """Turn the text of a ``FENNEL_*`` variable into the type of the field's default."""
    text = raw.strip()
    if name == "retry_backoff":
        module, _, attr = text.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigurationError(name, raw, "'module:function' naming an importable "
                                     "callable") from exc
    if name in ("task_timeout", "health_port", "startup_timeout") and text.lower() in (
            "", "none"):
        return None
    if name == "health_port":
        try:
            return int(text)
        except ValueError:
            raise ConfigurationError(name, raw, "a port number") from None
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(name, raw, "true or false")
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(text)
        except ValueError:
            raise ConfigurationError(name, raw, "an integer") from None
    if isinstance(default, float) or default is None:
        try:
            return float(text)
        except ValueError:
            raise ConfigurationError(name, raw, "a number") from None
    return text.lower() if name in _CHOICES else text
