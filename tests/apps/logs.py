"""An app for the logging tests: tasks that log through the stdlib, and middleware whose
failing hooks hold secrets in local variables (which no traceback may show)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from fennel import App, Middleware
from fennel.job import Job

if os.environ.get("FENNEL_TEST_APP_BASICCONFIG") == "1":
    # An app that configures logging for itself on import; under `fennel worker` the CLI's
    # single format must still win.
    logging.basicConfig(format="PLAIN %(levelname)s %(message)s")

TOKEN = "tok_live_4c1d3f00d"
CARD = "4111111111111111"

app_log = logging.getLogger("tests.apps.logs")


class LeakyHooks(Middleware):
    """Fails in ``before_enqueue`` (a token in a local) and, on workers started with
    ``FENNEL_TEST_LEAKY_WORKER=1``, in ``before_execute`` (a card number from the args)."""

    def before_enqueue(self, app: App[Any], job: Job) -> None:
        if job.task.endswith("charge"):
            token = TOKEN
            raise RuntimeError(f"payment gateway refused a token of {len(token)} characters")

    def before_execute(self, app: App[Any], job: Job) -> None:
        if os.environ.get("FENNEL_TEST_LEAKY_WORKER") == "1":
            card = job.args[0]
            raise ValueError(f"card ending in {str(card)[-4:]} declined")


app = App(name="tests-logs", default_retries=0, middleware=[LeakyHooks()])


@app.task
def charge(card: str) -> str:
    app_log.warning("charged card ending in %s", card[-4:])
    return card[-4:]


@app.task
def say(text: str) -> str:
    app_log.info("saying %s", text)
    return text


@app.task
def crash_a_thread() -> None:
    """A helper thread dies: Python prints that itself, unless told otherwise."""
    thread = threading.Thread(target=lambda: 1 / 0, name="doomed")
    thread.start()
    thread.join()
