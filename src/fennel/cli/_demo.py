"""``fennel demo``: the whole loop on a private server, for a first look.

Starts a Redis-compatible server on a free port (or uses the one given with ``--redis-url``),
a real ``fennel worker`` subprocess whose log goes to a file, enqueues example jobs from sync
code, waits for them, shows a failing job landing in the DLQ and being read back, stops
everything, and says what to try next.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fennel._redis_url import mask_url
from fennel.cli._console import fail, stdout_console
from fennel.testing import RedisServer, find_redis_server

_APP = "fennel.examples.demo:app"


@contextlib.contextmanager
def _redis(redis_url: str | None) -> Iterator[tuple[str, str]]:
    """``(url, what it is)``: the given server, or a private one removed afterwards."""
    if redis_url is not None:
        _check_server(redis_url)
        yield redis_url, "your server"
        return
    elsewhere = "fennel demo --redis-url redis://127.0.0.1:6379/0"
    try:
        binary = find_redis_server()
    except FileNotFoundError as exc:
        fail(f"{exc} Or run the demo against a server you have: {elsewhere}")
    try:
        server = RedisServer(binary=binary).start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        fail(f"fennel demo could not start {binary} ({exc}). Or run it against a server you "
             f"have: {elsewhere}")
    try:
        yield server.url, (f"a private {os.path.basename(server.binary)} on a free port, "
                           "removed at the end")
    finally:
        server.close()


def _check_server(url: str) -> None:
    """End the demo at once, saying why, if the given server cannot be used: the worker
    would otherwise retry for its whole ``startup_timeout`` before the demo could tell."""
    import asyncio

    from fennel.broker import Broker
    from fennel.exceptions import BrokerError
    from fennel.keys import Keys

    async def ping() -> None:
        broker = Broker(url, Keys("fennel-demo"), connect_timeout=5.0, socket_timeout=5.0)
        try:
            await broker.ping()
        finally:
            await broker.aclose()

    try:
        asyncio.run(ping())
    except BrokerError as exc:
        fail(str(exc))


def _wait_started(worker: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "worker.started" not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
            fail(f"the demo's worker did not start; the end of its log "
                                       f"({log}):\n{tail}")
        time.sleep(0.05)


def run_demo(jobs: int, redis_url: str | None = None) -> None:
    console = stdout_console()
    with _redis(redis_url) as (url, what):
        console.print(f"[green]✓[/green] Redis at {mask_url(url)}: {what}.")
        log = Path(tempfile.mkstemp(prefix="fennel-demo-worker-", suffix=".log")[1])
        env = {**os.environ, "FENNEL_REDIS_URL": url, "FENNEL_LOG_FORMAT": "console",
               "FENNEL_LOG_LEVEL": "info"}
        with log.open("wb") as out:
            # Its log goes to a file: worker lines would otherwise land in the middle of ours.
            worker = subprocess.Popen(
                [sys.executable, "-m", "fennel", "worker", "--app", _APP],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_started(worker, log)
            console.print(f"[green]✓[/green] A worker is running in another process "
                          f"(pid {worker.pid}): `fennel worker --app {_APP}`. "
                          f"Its log: {log}")
            _show_jobs(console, jobs, url)
        finally:
            # A worker that exited by itself (it could not start) was not stopped by us.
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                code = worker.wait(timeout=60)
                if code == 0:
                    console.print("[green]✓[/green] The worker stopped gracefully on "
                                  "SIGTERM (exit code 0).")
                else:
                    console.print(f"[red]✗[/red] The worker exited with code {code} on "
                                  f"SIGTERM; its log: {log}")
    _next_steps(console, redis_url)


def _show_jobs(console: Console, jobs: int, url: str) -> None:
    os.environ["FENNEL_REDIS_URL"] = url
    from fennel.client import gather, read_dead
    from fennel.examples import demo

    try:
        console.print(f"\nThis process enqueues {jobs} square(n) jobs with square.delay(n); "
                      "the worker runs them and gather() waits for all the results:")
        started = time.perf_counter()
        handles = [demo.square.delay(i) for i in range(jobs)]
        total = demo.add.delay(2, 3)
        greeting = demo.greet.delay("fennel")
        values = gather(handles, timeout=60)
        table = Table(title=f"square(n) x {jobs}")
        table.add_column("n", justify="right")
        table.add_column("n²", justify="right")
        for i, v in enumerate(values):
            table.add_row(str(i), str(v))
        console.print(table)
        console.print(f"add(2, 3) = {total.get(timeout=30)}")
        console.print(f"greet('fennel') = {greeting.get(timeout=30)!r}  (an async task)")
        console.print(f"{jobs + 2} round trips in {time.perf_counter() - started:.2f}s: each job "
                      "went from .delay() through Redis to the worker, and its result back "
                      "through Redis to .get().")

        console.print("\nNow a task that fails: divide(1, 0) has retries=0, so its first error "
                      "is final. .get() raises TaskFailed, and the job is kept in the "
                      "dead-letter queue (DLQ) to be read, replayed or purged:")
        failing = demo.divide.delay(1, 0)
        try:
            failing.get(timeout=30)
        except Exception as exc:
            console.print(f"divide(1, 0) raised [red]{type(exc).__name__}[/red]: {exc}")
        for job in read_dead(demo.app):
            if job.id == failing.job_id:
                console.print(f"In the DLQ: {job.task} id={job.id} args={job.args} "
                              f"error={job.errors[-1]['type']}")
    finally:
        demo.app.close()


def _next_steps(console: Console, redis_url: str | None) -> None:
    url = mask_url(redis_url or "redis://127.0.0.1:6379/0")
    console.print(f"\nTry next, with a Redis of your own at {url}:")
    if sys.prefix != sys.base_prefix and os.environ.get("VIRTUAL_ENV") != sys.prefix:
        # Run from a virtualenv that is not active (scripts/demo.sh): `fennel` and the
        # `python` that has Fennel are on PATH only once it is.
        console.print(f"  . {Path(sys.prefix) / 'bin' / 'activate'}\n"
                      "      first, so that `fennel` and `python` are the ones with Fennel",
                      markup=False)
    for command, why in (
        (f"fennel worker --app {_APP} --redis-url {url}", "start a worker"),
        (f"FENNEL_REDIS_URL={url} python -c 'from fennel.examples.demo import square; "
         "print(square.delay(7).get(timeout=10))'",
         "in another shell: enqueue a job and wait for its result"),
        (f"fennel info --app {_APP} --redis-url {url}",
         "the queue and its workers at a glance (fennel dlq read: the failed jobs)"),
    ):
        console.print(f"  {command}\n      {why}", markup=False)
    console.print("The guide, docs/guide.md, starts from a tasks.py of your own.")
