"""Fennel: a task queue for Python on Redis, equally at home in sync and async code.

::

    from fennel import App

    app = App(name="myapp", redis_url="redis://127.0.0.1")

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    add.delay(1, 2).get()   # 3, once a `fennel worker --app mymodule:app` runs
"""

from fennel.app import App
from fennel.job import Job, Status
from fennel.middleware import Middleware
from fennel.task import AsyncTask, Signature, SyncTask, Task, call, chain

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncTask",
    "Job",
    "Middleware",
    "Signature",
    "Status",
    "SyncTask",
    "Task",
    "__version__",
    "call",
    "chain",
]
