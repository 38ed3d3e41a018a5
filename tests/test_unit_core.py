"""The pure core, without Redis: settings, the job envelope, URL masking, task naming."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from fennel import App, Task
from fennel._redis_url import mask_url
from fennel.exceptions import ConfigurationError, PayloadTooLarge, SerializationError
from fennel.job import Job, decode
from fennel.settings import Settings
from fennel.utils import backoff
from tests.apps import basic

# -- settings -----------------------------------------------------------------------------------

def test_defaults():
    s = Settings.resolve({}, environ={})
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.interface, s.default_retries, s.results_enabled) == ("sync", 3, True)
    assert (s.log_format, s.log_level, s.pool) == ("console", "info", "thread")
    assert s.retry_backoff is backoff


def test_keywords_beat_environment_beat_defaults():
    env = {"FENNEL_DEFAULT_RETRIES": "5", "FENNEL_RESULTS_TTL": "60", "FENNEL_POOL": "Process",
           "FENNEL_TASK_TIMEOUT": "none", "FENNEL_RETRY_BACKOFF": "fennel.utils:backoff"}
    s = Settings.resolve({"results_ttl": 10}, environ=env)
    assert (s.default_retries, s.results_ttl, s.pool, s.task_timeout) == (5, 10, "process", None)
    assert s.retry_backoff is backoff


@pytest.mark.parametrize(("env", "setting"), [
    ({"FENNEL_DEFAULT_RETRIES": "three"}, "default_retries"),
    ({"FENNEL_RESULTS_ENABLED": "maybe"}, "results_enabled"),
    ({"FENNEL_LOG_LEVEL": "loud"}, "log_level"),
    ({"FENNEL_RETRY_BACKOFF": "no.such.module:fn"}, "retry_backoff"),
])
def test_bad_environment_values(env, setting):
    with pytest.raises(ConfigurationError) as info:
        Settings.resolve({}, environ=env)
    assert info.value.setting == setting


def test_settings_are_frozen_and_repr_masks_the_password():
    s = Settings.resolve({"redis_url": "redis://u:hunter2@host:6379/0"}, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.default_retries = 1  # type: ignore[misc]
    assert "hunter2" not in repr(s)
    assert "redis://u:***@host:6379/0" in repr(s)


def test_invalid_redis_url_message_does_not_leak_it():
    with pytest.raises(ConfigurationError) as info:
        Settings.resolve({"redis_url": "http://u:hunter2@host"}, environ={})
    assert "hunter2" not in str(info.value)
    assert "redis://" in str(info.value)


@pytest.mark.parametrize("name", ["", "a b", "a:b", "{x}"])
def test_invalid_app_names(name):
    with pytest.raises(ConfigurationError):
        App(name=name)


# -- the job envelope ---------------------------------------------------------------------------

def test_job_round_trip():
    job = Job(id="abc", task="m.f", args=[1, "x", [2.5, None]], kwargs={"k": {"n": True}},
              tries=2, max_retries=3, timeout=1.5, reply_to="chan",
              errors=[{"type": "ValueError", "args": ["bad"], "traceback": "tb", "attempt": 1}],
              headers={"trace": "t"})
    again = decode(job.encode())
    assert again == job
    assert decode(job.encode().decode()) == job  # str works too


def test_minimal_envelope_gets_defaults():
    job = decode(b'{"id":"i","task":"t","args":[],"kwargs":{}}')
    assert (job.tries, job.max_retries, job.timeout, job.reply_to, job.errors) == (
        0, 0, None, None, [])


@pytest.mark.parametrize("raw", [
    b"not json", b"[1, 2]", b'"text"', b'{"task":"t","args":[],"kwargs":{}}',
    b'{"id":1,"task":"t","args":[],"kwargs":{}}', b'{"id":"i","task":"t","args":{},"kwargs":{}}',
    b'{"id":"i","task":"t","args":[],"kwargs":[]}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"tries":"many"}',
])
def test_malformed_envelopes_are_rejected(raw):
    with pytest.raises(ValueError):
        decode(raw)


def test_encode_rejects_unserialisable_and_oversized():
    with pytest.raises(SerializationError) as info:
        Job(id="i", task="m.f", args=[object()], kwargs={}).encode()
    assert isinstance(info.value, TypeError)
    assert "m.f" in str(info.value)
    big = Job(id="i", task="m.f", args=["x" * 500], kwargs={})
    with pytest.raises(PayloadTooLarge):
        big.encode(max_payload=100)
    assert orjson.loads(big.encode(max_payload=10_000))["args"] == ["x" * 500]


# -- URL masking --------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "masked"), [
    ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
    ("rediss://user:secret@host:6380/1", "rediss://user:***@host:6380/1"),
    ("redis://:secret@host", "redis://:***@host"),
    ("redis://secret@host", "redis://***@host"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("unix:///tmp/redis.sock?password=secret&db=1", "unix:///tmp/redis.sock?password=***&db=1"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked
    assert "secret" not in mask_url(url)


# -- tasks --------------------------------------------------------------------------------------

def test_default_task_name_is_module_dot_function():
    assert basic.add.name == "tests.apps.basic.add"
    assert basic.renamed.name == "custom.name"
    assert basic.app.tasks["custom.name"] is basic.renamed
    assert isinstance(basic.add, Task)


def test_local_task_names_and_retries():
    app = App(name="tests-unit", default_retries=4)

    @app.task
    def plain(x: int) -> int:
        """Doc."""
        return x + 1

    @app.task(retries=1, name="unit.other")
    def other() -> None:
        return None

    assert plain.name == f"{__name__}.test_local_task_names_and_retries.<locals>.plain"
    assert plain.retries == 4
    assert other.name == "unit.other" and other.retries == 1
    assert plain.__doc__ == "Doc."
    assert plain(1) == 2  # a direct call runs in-process


def test_duplicate_task_name_is_rejected():
    app = App(name="tests-unit")

    @app.task(name="same")
    def one() -> None: ...

    with pytest.raises(ConfigurationError):
        @app.task(name="same")
        def two() -> None: ...


def test_invalid_task_options():
    app = App(name="tests-unit")
    with pytest.raises(ConfigurationError):
        app.task(retries=-1)
    with pytest.raises(ConfigurationError):
        app.task(timeout=0)


def test_repr_masks_password():
    app = App(name="tests-unit", redis_url="redis://u:hunter2@h:1/0")
    assert "hunter2" not in repr(app)
    assert repr(basic.add) == "<SyncTask tests.apps.basic.add>"


def test_guide_documents_every_setting():
    from pathlib import Path

    guide = (Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    for f in dataclasses.fields(Settings):
        assert f"| `{f.name}` | `FENNEL_{f.name.upper()}` |" in guide, f.name
