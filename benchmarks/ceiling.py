"""Scenario E: what Redis itself does on this machine, driven by redis-py (hiredis) from one
Python process, with none of a task queue's logic. The denominators for Fennel's figures.

* ``xadd_pipelined``: N ``XADD``s of a small envelope, 1,000 per pipelined round trip;
* ``xadd_single``: one ``XADD`` per round trip (what an un-batched ``delay()`` can reach);
* ``xreadgroup_xack``: a consumer loop ``XREADGROUP COUNT 100`` then one ``XACK`` of those ids,
  until the N entries are consumed (what a worker that does nothing else can reach).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import redis

ENVELOPE = b'{"id":"0123456789abcdef0123456789abcdef","task":"noop","args":[],"kwargs":{}}'
STREAM = "fennel-bench:ceiling"
GROUP = "g"


def measure(url: str, n: int) -> dict[str, float]:
    r = redis.Redis.from_url(url)
    r.delete(STREAM)
    out: dict[str, float] = {}

    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        pipe = r.pipeline(transaction=False)
        for _ in range(min(1000, n - start)):
            pipe.xadd(STREAM, {"j": ENVELOPE})
        pipe.execute()
    out["xadd_pipelined"] = n / (time.perf_counter() - t0)

    r.xgroup_create(STREAM, GROUP, id="0")
    t0 = time.perf_counter()
    consumed = 0
    while consumed < n:
        reply = r.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=100)
        ids = [eid for _s, entries in reply for eid, _f in entries]
        if not ids:
            break
        r.xack(STREAM, GROUP, *ids)
        consumed += len(ids)
    out["xreadgroup_xack"] = consumed / (time.perf_counter() - t0)

    r.delete(STREAM)
    single = max(1000, n // 4)
    t0 = time.perf_counter()
    for _ in range(single):
        r.xadd(STREAM, {"j": ENVELOPE})
    out["xadd_single"] = single / (time.perf_counter() - t0)
    r.delete(STREAM)
    r.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=20000)
    a = p.parse_args()
    sys.stdout.write("RESULT " + json.dumps(measure(a.url, a.n)) + "\n")


if __name__ == "__main__":
    main()
