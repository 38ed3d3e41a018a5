"""An app whose module is slow to import in a process-pool child when
``FENNEL_TEST_SLOW_CHILD`` (seconds) is set; the worker process itself imports it at once."""

from __future__ import annotations

import multiprocessing
import os
import time

from fennel import App

_delay = os.environ.get("FENNEL_TEST_SLOW_CHILD")
if _delay and multiprocessing.parent_process() is not None:
    time.sleep(float(_delay))

app = App(name="slow-child")


@app.task
def double(x: int) -> int:
    return 2 * x
