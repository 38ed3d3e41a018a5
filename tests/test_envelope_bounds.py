"""The envelope's own bookkeeping is bounded and its decoding strict (pure core, no Redis)."""

from __future__ import annotations

import pytest

from fennel.exceptions import PayloadTooLarge
from fennel.job import (
    MAX_ERRORS,
    MAX_TRACEBACK,
    Job,
    MalformedEnvelope,
    decode,
    error_record,
    leading_id,
    safe_repr,
)


def _record(i: int, size: int = 10) -> dict[str, object]:
    return {"type": "E", "args": ["a" * size], "traceback": "t" * size, "attempt": i, "at": 0.0}


def test_the_error_history_keeps_the_newest_records_and_counts_them_all():
    job = Job(id="j", task="t", args=[], kwargs={}, max_retries=100)
    for i in range(25):
        job = job.with_error(_record(i))
    assert len(job.errors) == MAX_ERRORS
    assert [e["attempt"] for e in job.errors] == list(range(25 - MAX_ERRORS, 25))
    assert job.failures == job.attempts_failed == 25 and job.tries == 25
    assert decode(job.encode()) == job


def test_an_old_envelope_counts_its_records():
    job = Job(id="j", task="t", args=[], kwargs={}, errors=[_record(1), _record(2)])
    assert job.attempts_failed == 2
    assert job.with_error(_record(3)).failures == 3


def test_encode_fitting_sheds_history_never_the_job():
    job = Job(id="j", task="t", args=["x" * 5000], kwargs={},
              errors=[_record(i, 1500) for i in range(MAX_ERRORS)], failures=12)
    assert len(job.encode()) > 30_000
    for limit, kept in ((30_000, MAX_ERRORS), (7_500, 1), (5_200, 0)):
        data = job.encode_fitting(limit)
        assert len(data) <= limit
        back = decode(data)
        assert back.args == job.args and back.failures == 12 and len(back.errors) == kept
    with pytest.raises(PayloadTooLarge):
        job.encode_fitting(4_000)


def test_error_records_are_bounded_and_never_raise():
    class NoRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    rec = error_record(ValueError("m" * 100_000, NoRepr(), float("nan"), 2**70), 1,
                       "tb" * 10_000)
    assert len(rec["traceback"]) == MAX_TRACEBACK
    assert len(rec["args"]) == 1 and rec["args"][0].endswith("(truncated)")
    small = error_record(ValueError(NoRepr(), float("nan"), 2**70), 1, "")
    assert small["args"] == ["<NoRepr object; repr() raised RuntimeError>", "nan",
                             str(2**70)]
    assert safe_repr("z" * 10, limit=4) == "'zzz... (truncated)"


@pytest.mark.parametrize("body", [
    b'{"id":"i","task":"t","args":[],"kwargs":{},"tries":18446744073709551616}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"max_retries":1.5}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"max_retries":true}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"tries":-1}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"on_success":[1]}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"on_success":[{"task":"x","args":{}}]}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"on_failure":{"task":"x"}}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"errors":"oops"}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"headers":[]}',
    b'{"id":"i","task":"t","args":[],"kwargs":{},"timeout":"soon"}',
    b'{"id":"i","task":3,"args":[],"kwargs":{},"reply_to":"chan"}',
])
def test_decode_refuses_what_it_could_not_encode_again_and_keeps_the_id(body):
    with pytest.raises(MalformedEnvelope) as info:
        decode(body)
    assert info.value.job_id == "i"
    assert isinstance(info.value, ValueError)


def test_foreign_error_records_are_kept_readable():
    job = decode(b'{"id":"i","task":"t","args":[],"kwargs":{},"errors":["boom",{"type":"X"}]}')
    assert job.errors[0] == {"type": "MalformedErrorRecord", "args": ["boom"], "traceback": ""}
    assert job.errors[1] == {"type": "X"}


def test_the_id_of_an_unparsable_envelope():
    assert leading_id(b'{"id":"abc","task":"t","args":[') == "abc"
    assert leading_id(b' { "id" : "abc" ') == "abc"
    assert leading_id(b'{"task":"t","id":"abc"}') == ""
    assert leading_id(b"\x80garbage") == ""
    with pytest.raises(MalformedEnvelope) as info:
        decode(b'{"id":"abc","task":"t","args":[')
    assert info.value.job_id == "abc"
