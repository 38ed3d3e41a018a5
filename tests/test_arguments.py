"""Arguments are checked when they are sent: against the task's signature (``TypeError``) and
against what JSON carries faithfully (``SerializationError``). Nothing is written either way."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import pytest

from fennel import call
from fennel.exceptions import SerializationError
from fennel.job import Job, Status
from fennel.testing import RedisServer
from tests.apps import basic


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@dataclasses.dataclass
class Point:
    x: int
    y: int


UNFAITHFUL: list[Any] = [
    datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.date(2024, 1, 2), datetime.time(3, 4),
    uuid.UUID(int=7), Point(1, 2), Color.RED, Level.HIGH, Name("x"), decimal.Decimal("1.5"),
    float("nan"), float("inf"), float("-inf"), {1, 2}, b"bytes",
    {"nested": [1, {"deep": uuid.UUID(int=8)}]}, [1.0, [float("nan")]], {"when": Color.RED},
]


@pytest.fixture
def nothing_written(redis_server: RedisServer):
    before = redis_server.command("DBSIZE")
    yield
    assert redis_server.command("DBSIZE") == before


@pytest.mark.parametrize("call_args", [
    ((1,), {"countdown": 5}),      # an option mistaken for an argument
    ((), {}),                      # missing both
    ((1,), {}),                    # missing one
    ((1, 2, 3), {}),               # one too many
    ((1,), {"a": 2}),              # the same parameter twice
])
def test_delay_checks_arguments_against_the_signature(nothing_written, call_args):
    args, kwargs = call_args
    with pytest.raises(TypeError, match=r"Task 'tests.apps.basic.add' cannot be called") as info:
        basic.add.delay(*args, **kwargs)
    assert not isinstance(info.value, SerializationError)
    assert "(it takes (a, b))" in str(info.value)


def test_every_way_of_sending_checks_arguments(nothing_written):
    with pytest.raises(TypeError, match="countdown"):
        basic.add.options(on_success=basic.count).delay(1, 2, countdown=5)
    with pytest.raises(TypeError, match="missing"):
        basic.add.map([(1, 2), (1,)])  # nothing of the batch is sent
    with pytest.raises(TypeError, match="unexpected keyword"):
        basic.add.map([call(1, 2), call(1, 2, c=3)])
    with pytest.raises(TypeError, match="too many"):
        basic.app.delay_many([(basic.add, (1, 2), {}), (basic.count, ("k", 2), {})])
    with pytest.raises(TypeError, match="too many"):
        basic.add.s(1, 2, 3)           # more than the function takes, even before the result
    with pytest.raises(TypeError, match="missing"):
        basic.add.s(1).delay()         # enqueued as a first step, it lacks b
    with pytest.raises(TypeError, match="too many"):
        # As a callback, add(1, 2) would be given the result as a third argument.
        basic.count.options(on_success=basic.add.s(1, 2)).delay("k")
    with pytest.raises(TypeError, match="too many"):
        basic.count.s("k").then(basic.add.s(1).then(basic.add.s(1, 2))).delay()


def test_valid_calls_are_accepted():
    handles = [basic.add.delay(1, 2), basic.add.delay(1, b=2), basic.add.delay(a=1, b=2),
               basic.echo.delay(1, 2, x=3), *basic.add.map([(1, 2), call(1, b=2)]),
               basic.count.options(on_success=basic.add.s(1)).delay("k"),  # add(1, result)
               basic.add.s(1, 2).then(basic.count).delay()]
    basic.add.s(1)  # a partial signature is fine until it is enqueued
    assert {h.status() for h in handles} == {Status.SENT}


@pytest.mark.parametrize("value", UNFAITHFUL, ids=repr)
def test_values_json_cannot_carry_faithfully_are_refused(nothing_written, value):
    with pytest.raises(SerializationError, match="not JSON-serialisable"):
        basic.echo.delay(value)
    with pytest.raises(SerializationError):
        basic.echo.delay(x=value)
    with pytest.raises(SerializationError):
        basic.echo.map([("fine",), (value,)])
    with pytest.raises(SerializationError):
        basic.count.options(on_success=basic.echo.s(value)).delay("k")


def test_plain_json_values_pass_and_come_back_equal():
    plain = [None, True, 0, -(2**63), 2**64 - 1, 1.5, -0.0, "s", "", [], {}, (1, 2),
             {"a": [1, {"b": None, "c": [1.5, "x"]}]}]
    job = Job(id="x", task="t", args=plain, kwargs={"k": plain})
    job.encode()


def test_checking_stays_cheap():
    """Flat arguments: one set of types; a few microseconds at most even on a busy box."""
    import timeit

    job = Job(id="0" * 32, task="t", args=[1, "user", 1.5], kwargs={"flag": True})
    per_call = min(timeit.repeat(job.encode, number=2000, repeat=5)) / 2000
    assert per_call < 20e-6
