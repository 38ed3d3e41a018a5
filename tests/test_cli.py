"""The ``fennel`` command line, run as a user would: subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

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
    # It says what it shows: the round trip and the dead-letter step.
    assert "round trips in" in out.stdout and "through Redis to the worker" in out.stdout
    assert "dead-letter queue (DLQ)" in out.stdout and "In the DLQ: " in out.stdout
    # The worker's log lines stay in their file, out of the demo's output.
    text = out.stdout + out.stderr
    for event in ("worker.started", "job.succeeded", "job.failed", "worker.stopped"):
        assert event not in text, text
    log = next(w for w in out.stdout.split() if "fennel-demo-worker-" in w)
    assert "worker.started" in Path(log).read_text()
    Path(log).unlink()
    # It ends with three commands to try next.
    tail = out.stdout[out.stdout.index("Try next"):].splitlines()
    commands = [ln.strip() for ln in tail if ("fennel" in ln and "--redis-url" in ln)
                or "FENNEL_REDIS_URL=" in ln]
    assert len(commands) == 3, tail


# -- one clean error line, choices, version, help -----------------------------------------------

def _one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    return lines[0]


def test_version():
    from fennel import __version__

    out = fennel("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"fennel {__version__}"


def test_invalid_choices_are_one_error_line():
    for option, value in (("--log-format", "xml"), ("--log-level", "bogus"),
                          ("--pool", "fiber")):
        line = _one_error_line(fennel("worker", "--app", "tests.apps.basic:app", option, value,
                                      timeout=30))
        assert option in line and value in line


def test_usage_errors_are_one_error_line():
    assert "--app" in _one_error_line(fennel("dlq", "purge"))
    assert "bogus" in _one_error_line(fennel("bogus"))
    assert "-1" in _one_error_line(fennel("worker", "--app", "tests.apps.basic:app",
                                          "--grace-period", "-1", timeout=30))


def test_choices_match_the_settings():
    from typing import get_args

    from fennel.cli import _LogFormat, _LogLevel, _Pool
    from fennel.settings import LogFormat, LogLevel, PoolKind

    for enum, literal in ((_LogFormat, LogFormat), (_LogLevel, LogLevel), (_Pool, PoolKind)):
        assert [e.value for e in enum] == list(get_args(literal))


COMMANDS = [(), ("worker",), ("demo",), ("health",), ("info",), ("dlq",), ("dlq", "read"),
            ("dlq", "replay"), ("dlq", "purge")]


def test_help_of_every_command_is_plain_text():
    for command in COMMANDS:
        out = fennel(*command, "--help")
        assert out.returncode == 0, out.stderr
        text = out.stdout
        for markup in ("``", ":class:", ":func:", "<bool>", "<list[", "[bold]"):
            assert markup not in text, (command, markup, text)
        flag_lines = [ln for ln in text.splitlines() if ln.strip().startswith("--help")]
        assert flag_lines and all(ln.split()[:1] == ["--help"] and "Show" in ln.split()[1]
                                  for ln in flag_lines), text  # a flag takes no value
        if command and command != ("dlq",):
            assert "--redis-url" in text, command
    worker_help = fennel("worker", "--help").stdout
    assert "--grace-period" in worker_help
    purge_help = fennel("dlq", "purge", "--help").stdout
    assert "--yes" in purge_help and "--dry-run" in purge_help
    assert "--dry-run" in fennel("dlq", "replay", "--help").stdout


def test_demo_without_a_server_binary_is_one_error_line(tmp_path):
    out = fennel("demo", cwd=tmp_path, env={"FENNEL_REDIS_SERVER": str(tmp_path / "nothing")})
    line = _one_error_line(out)
    assert "FENNEL_REDIS_SERVER" in line and "--redis-url" in line



def test_demo_against_an_unreachable_server_is_one_error_line(tmp_path):
    # Nothing listens on port 1: the demo says so at once, without starting a worker that
    # would retry for its whole startup_timeout, and claims nothing went well.
    out = fennel("demo", "--redis-url", "redis://:pw@127.0.0.1:1/0", cwd=tmp_path)
    line = _one_error_line(out)
    assert "Cannot reach Redis at redis://:***@127.0.0.1:1/0" in line, line
    assert "✓" not in out.stdout and "pw@" not in out.stdout + out.stderr, out.stdout

# -- --redis-url and --grace-period ------------------------------------------------------------

HARD_CODED = """
from fennel import App

# A hard-coded URL where no server listens: the command line must win over it.
app = App(name="tests-url", redis_url="redis://127.0.0.1:1/0", default_retries=0)

@app.task
def double(n: int) -> int:
    return 2 * n
"""


def test_redis_url_option_wins_over_the_apps_setting(tmp_path, redis_server):
    (tmp_path / "hardcoded.py").write_text(HARD_CODED)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FENNEL_REDIS_URL")}
    env.update(FENNEL_LOG_FORMAT="json")
    url = redis_server.url
    w = WorkerIn([sys.executable, "-m", "fennel", "worker", "--app", "hardcoded:app",
                  "--redis-url", url, "--grace-period", "7"], env, cwd=tmp_path)
    try:
        assert w.wait_for("worker.started", timeout=30)["redis"] == url
        producer = App(name="tests-url")

        @producer.task(name="hardcoded.double")
        def double(n: int) -> int:
            raise AssertionError("runs on the worker, not here")

        assert double.delay(21).get(timeout=20) == 42
        info = fennel("info", "--app", "hardcoded:app", "--redis-url", url, cwd=tmp_path,
                      env=env)
        assert info.returncode == 0, info.stderr
        assert "Workers" in info.stdout
        # Without the option, the app's own (unreachable) URL is used: one clear error.
        line = _one_error_line(fennel("info", "--app", "hardcoded:app", cwd=tmp_path, env=env))
        assert "127.0.0.1:1" in line
        producer.close()
    finally:
        w.signal(signal.SIGTERM)
        assert w.wait(30) == 0
    assert w.wait_for("worker.stopping", timeout=5)["grace_period"] == 7.0


# -- output for pipes -----------------------------------------------------------------------------

def test_tables_and_listings_are_whole_lines_in_a_pipe(start_worker):
    w = start_worker()
    long_message = "x" * 150 + "-end"
    job = basic.fail.delay(long_message)
    from fennel.client import read_dead
    from tests.reliability.conftest import wait_until

    wait_until(lambda: read_dead(basic.app), 30, what="the job to be dead")
    out = fennel("dlq", "read", "--app", "tests.apps.basic:app", env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(job.job_id in ln and "tests.apps.basic.fail" in ln for ln in lines), out.stdout
    assert any(f'args=["{long_message}"]' in ln for ln in lines), out.stdout
    assert any(f"Exception('{long_message}')" in ln for ln in lines), out.stdout

    consumer = w.wait_for("worker.started")["consumer"]
    info = fennel("info", "--app", "tests.apps.basic:app", env={"COLUMNS": "80"})
    assert info.returncode == 0, info.stderr
    row = [ln for ln in info.stdout.splitlines() if consumer in ln]
    assert row and "ago" in row[0], info.stdout  # the whole row on one line, name uncut
    assert "\x1b[" not in info.stdout + out.stdout  # no color codes in a pipe


BLOCKS_AT_IMPORT = """
from fennel import App

app = App(name="tests-blocking")


@app.task
def add(a: int, b: int) -> int:
    return a + b


# The guide's two snippets pasted into one file: this waits for a worker at import.
print(add.delay(1, 2).get())
"""


def test_worker_warns_when_the_app_module_blocks_at_import(tmp_path, redis_server):
    (tmp_path / "blocking.py").write_text(BLOCKS_AT_IMPORT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    w = WorkerIn([sys.executable, "-m", "fennel", "worker", "--app", "blocking:app"], env,
                 cwd=tmp_path)
    try:
        from tests.reliability.conftest import wait_until

        line = wait_until(lambda: next((ln for ln in list(w.raw) if "Warning" in ln), None),
                          60, what="the import warning")
        assert "'blocking'" in line and ".get()" in line
        stuck = BLOCKS_AT_IMPORT.splitlines().index("print(add.delay(1, 2).get())") + 1
        assert f"{tmp_path / 'blocking.py'}:{stuck}" in line  # where it is stuck
    finally:
        w.kill()




RAISES_AT_IMPORT = """
def connect():
    raise RuntimeError("cannot reach the billing service")


connect()
"""


def test_an_app_module_that_raises_at_import_shows_its_own_traceback_and_one_error(tmp_path):
    (tmp_path / "broken.py").write_text(RAISES_AT_IMPORT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for command in (("worker",), ("info",), ("dlq", "read")):
        out = subprocess.run([sys.executable, "-m", "fennel", *command, "--app", "broken:app"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert lines[0] == "Traceback (most recent call last):", out.stderr
        assert "broken.py" in lines[1], out.stderr  # the module's frame comes first
        assert not any("typer" in ln or "click" in ln for ln in lines), out.stderr
        assert lines[-1].startswith("Error: Importing module 'broken'"), out.stderr
        assert "RuntimeError: cannot reach the billing service" in lines[-1], out.stderr


def test_with_json_logs_the_workers_last_words_are_json_too(tmp_path):
    import orjson

    (tmp_path / "broken.py").write_text(RAISES_AT_IMPORT)
    (tmp_path / "hardcoded.py").write_text(HARD_CODED)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FENNEL_REDIS_URL")}
    env.update(FENNEL_STARTUP_TIMEOUT="1")
    for spec, said in (("broken:app", "Error: Importing module 'broken'"),
                       ("hardcoded:app", "Error: Cannot reach Redis")):
        out = subprocess.run([sys.executable, "-m", "fennel", "worker", "--app", spec,
                              "--log-format", "json"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        events = [orjson.loads(ln) for ln in out.stderr.strip().splitlines()]  # all JSON
        assert events[-1]["event"].startswith(said), events[-1]
        assert events[-1]["level"] == "error", events[-1]


def test_worker_with_a_health_port_it_cannot_use_is_one_error_line(tmp_path, redis_server):
    import socket

    env = {k: v for k, v in os.environ.items() if k != "FENNEL_REDIS_URL"}
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for value in (str(port), "70000"):
            out = fennel("worker", "--app", "tests.apps.basic:app", "--redis-url",
                         redis_server.url, "--health-port", value, env=env)
            line = _one_error_line(out)
            assert "--health-port" in line or "health_port" in line, line

NOISY_AT_IMPORT = """
import logging
import os
import time
import warnings

from fennel import App

app = App(name="tests-noisy-import")
logging.getLogger("noisy.setup").warning("no SMTP host set, using localhost")
warnings.warn("an old option is used")
time.sleep(float(os.environ["NOISY_IMPORT_SECONDS"]))  # a slow import


@app.task
def add(a: int, b: int) -> int:
    return a + b
"""


def test_json_logs_cover_what_happens_while_the_app_is_imported(tmp_path, redis_server):
    from fennel.cli._loader import IMPORT_WARNING_AFTER
    from tests.reliability.conftest import wait_until

    (tmp_path / "noisy.py").write_text(NOISY_AT_IMPORT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # Slow enough that the import watchdog speaks too.
    env.update(NOISY_IMPORT_SECONDS=str(IMPORT_WARNING_AFTER + 1.0))
    w = WorkerIn([sys.executable, "-m", "fennel", "worker", "--app", "noisy:app",
                  "--log-format", "json", "--redis-url", redis_server.url], env, cwd=tmp_path)
    try:
        w.wait_for("worker.started", timeout=60)
        wait_until(lambda: len(w.raw) >= 4, 10, what="the import-time lines")
        events = {e.get("event", ""): e for e in w.events}
        assert "no SMTP host set, using localhost" in events, w.raw
        assert any("an old option is used" in e for e in events), w.raw
        assert any(e.startswith("Warning: importing 'noisy'") for e in events), w.raw
        assert len(w.events) == len(w.raw), [ln for ln in w.raw if not ln.startswith("{")]
    finally:
        w.kill()

def test_demo_against_a_running_server(tmp_path, redis_server):
    env = {k: v for k, v in os.environ.items() if k != "FENNEL_REDIS_URL"}
    out = subprocess.run([sys.executable, "-m", "fennel", "demo", "--jobs", "2", "--redis-url",
                          redis_server.url], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Redis at {redis_server.url}: your server." in out.stdout
    assert "add(2, 3) = 5" in out.stdout
    assert f"--redis-url {redis_server.url}" in out.stdout  # the next steps use it too
    Path(next(w for w in out.stdout.split() if "fennel-demo-worker-" in w)).unlink()



def test_demo_next_steps_say_to_activate_the_virtualenv_it_ran_from(tmp_path, redis_server):
    # scripts/demo.sh runs .venv/bin/fennel without activating .venv: the `fennel` and
    # `python` of the next steps are found only once it is.
    if sys.prefix == sys.base_prefix:
        import pytest

        pytest.skip("the tests do not run in a virtualenv")
    env = {k: v for k, v in os.environ.items() if k not in ("FENNEL_REDIS_URL", "VIRTUAL_ENV")}
    out = subprocess.run([sys.executable, "-m", "fennel", "demo", "--jobs", "1", "--redis-url",
                          redis_server.url], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    steps = out.stdout.split("Try next")[1]
    assert f". {Path(sys.prefix) / 'bin' / 'activate'}" in steps, steps
    assert steps.index("activate") < steps.index("fennel worker"), steps
    Path(next(w for w in out.stdout.split() if "fennel-demo-worker-" in w)).unlink()

def test_update_settings_validates_like_the_constructor():
    import pytest

    from fennel.exceptions import ConfigurationError

    app = App(name="tests-update", redis_url="redis://127.0.0.1:1/0")
    app.update_settings(redis_url="redis://:pw@127.0.0.1:2/0", grace_period=3)
    assert app.settings.redis_url.endswith(":2/0") and app.settings.grace_period == 3
    with pytest.raises(ConfigurationError, match="grace_period"):
        app.update_settings(grace_period=0)
    with pytest.raises(ConfigurationError, match="no_such_setting"):
        app.update_settings(no_such_setting=1)
    assert app.settings.grace_period == 3
