"""Flask with a sync Fennel app: views that call ``foo.delay(...).get()``.

The sync facade is thread-safe, so Flask's threaded server (or gunicorn with threads) can
enqueue and wait from many requests at once. Run it next to a Redis::

    export FENNEL_REDIS_URL=redis://127.0.0.1:6379/0
    fennel worker --app examples.flask_app:app &
    flask --app examples.flask_app:web run
    curl 'localhost:5000/add?a=2&b=3'        # {"result": 5}
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from fennel import App
from fennel.exceptions import TaskFailed, Timeout

app = App(name="example-flask", redis_url=os.environ.get("FENNEL_REDIS_URL"),
          default_retries=0)
web = Flask(__name__)


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task(retries=0)
def send_email(to: str) -> str:
    if "@" not in to:
        raise ValueError(f"not an address: {to}")
    return f"sent to {to}"


@web.get("/add")
def add_view() -> ResponseReturnValue:
    a = request.args.get("a", 0, type=int)
    b = request.args.get("b", 0, type=int)
    try:
        return jsonify(result=add.delay(a, b).get(timeout=30))
    except Timeout:
        return jsonify(error="the worker did not answer in time"), 504


@web.post("/email/<to>")
def email_view(to: str) -> ResponseReturnValue:
    x = send_email.delay(to)
    if request.args.get("wait"):
        try:
            return jsonify(result=x.get(timeout=30))
        except TaskFailed as exc:
            return jsonify(error=exc.original_type, args=exc.original_args), 422
    return jsonify(job_id=x.job_id), 202
