"""The ``fennel`` command line, run as a user would: subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

from fennel import App
from tests.apps import basic
from tests.conftest import ROOT, WorkerProcess


class WorkerIn(WorkerProcess):
    """A worker process started in a directory of our choosing."""

    def __init__(self, args: list[str], env: dict[str, str], cwd) -> None:
        self.args = args
        self.events = []
        self.raw = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


def fennel(*args: str, cwd=ROOT, env=None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fennel", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def test_help():
    out = fennel("--help")
    assert out.returncode == 0, out.stderr
    for command in ("worker", "dlq", "demo"):
        assert command in out.stdout
    worker_help = fennel("worker", "--help")
    assert worker_help.returncode == 0
    for option in ("--app", "--concurrency", "--pool"):
        assert option in worker_help.stdout


def test_worker_with_missing_module_fails_clearly():
    out = fennel("worker", "--app", "nonexistent:app", timeout=30)
    assert out.returncode != 0
    assert "nonexistent" in out.stderr
    assert "Traceback" not in out.stderr


def test_worker_with_missing_attribute_fails_clearly():
    out = fennel("worker", "--app", "tests.apps.basic:nope", timeout=30)
    assert out.returncode != 0
    assert "nope" in out.stderr
    assert "Traceback" not in out.stderr


def test_worker_finds_module_in_current_directory(tmp_path, redis_server):
    (tmp_path / "mytasks.py").write_text(textwrap.dedent("""
        from fennel import App

        app = App(name="tests-cwd", default_retries=0)

        @app.task
        def triple(n: int) -> int:
            return 3 * n
    """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(FENNEL_LOG_FORMAT="json", FENNEL_GRACE_PERIOD="2")
    w = WorkerIn([sys.executable, "-m", "fennel", "worker", "--app", "mytasks:app"], env,
                      cwd=tmp_path)
    try:
        w.wait_for("worker.started", timeout=30)
        # The producer side: the same app name and task name, defined here.
        producer = App(name="tests-cwd")

        @producer.task(name="mytasks.triple")
        def triple(n: int) -> int:
            raise AssertionError("runs on the worker, not here")

        assert triple.delay(14).get(timeout=20) == 42
    finally:
        w.signal(signal.SIGTERM)
        assert w.wait(30) == 0


def test_sigterm_and_sigint_exit_zero(start_worker):
    for sig in (signal.SIGTERM, signal.SIGINT):
        w = start_worker()
        assert basic.add.delay(1, 2).get(timeout=20) == 3
        w.wait_for("job.succeeded", timeout=10)  # idle: nothing in flight
        w.signal(sig)
        try:
            code = w.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker ignored {sig!r}:\n" + "\n".join(w.raw[-20:])) from None
        assert code == 0, "\n".join(w.raw[-20:])
        w.wait_for("worker.stopped", timeout=5)


def test_sigterm_lets_a_running_job_finish(start_worker):
    for _ in range(3):
        w = start_worker()
        x = basic.foo.delay(0.5)
        w.wait_for("job.started", timeout=20)
        w.signal(signal.SIGTERM)
        assert x.get(timeout=20) == 0.5
        try:
            code = w.wait(10)
        except subprocess.TimeoutExpired:
            w.kill()
            raise AssertionError("worker did not exit after draining:\n"
                                 + "\n".join(w.raw[-5:])) from None
        assert code == 0


def test_concurrency_and_pool_options(start_worker):
    w = start_worker("tests.apps.basic:app", "--concurrency", "3", "--pool", "thread")
    assert basic.add.delay(2, 3).get(timeout=20) == 5
    assert w.stop() == 0
    w = start_worker("tests.apps.basic:app", "-c", "2", "--pool", "process")
    assert basic.add.delay(4, 5).get(timeout=30) == 9
    assert w.stop() == 0


def test_invalid_pool_is_rejected():
    out = fennel("worker", "--app", "tests.apps.basic:app", "--pool", "fiber", timeout=30)
    assert out.returncode != 0
    assert "--pool" in out.stderr


def test_demo_runs_to_completion(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FENNEL_REDIS_URL"}
    out = subprocess.run([sys.executable, "-m", "fennel", "demo", "--jobs", "3"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "add(2, 3) = 5" in out.stdout
