"""``fennel demo``: the whole loop on a private server, for a first look.

Starts a Redis-compatible server on a free port, a real ``fennel worker`` subprocess, enqueues
example jobs from sync code, waits for them, shows a failing job landing in the DLQ and being
read back, then stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

from fennel.testing import RedisServer


def run_demo(jobs: int) -> None:
    console = Console()
    with RedisServer() as server:
        console.print(f"[green]✓[/green] Redis-compatible server on {server.url} "
                      f"({os.path.basename(server.binary)})")
        env = {**os.environ, "FENNEL_REDIS_URL": server.url, "FENNEL_LOG_LEVEL": "warning"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "fennel", "worker", "--app", "fennel.examples.demo:app"],
            env=env,
        )
        try:
            os.environ["FENNEL_REDIS_URL"] = server.url
            from fennel.client import gather, read_dead
            from fennel.examples import demo

            console.print(f"[green]✓[/green] worker started (pid {worker.pid})")
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
            console.print(f"[dim]{jobs + 2} round trips in "
                          f"{time.perf_counter() - started:.2f}s[/dim]")

            failing = demo.divide.delay(1, 0)
            try:
                failing.get(timeout=30)
            except Exception as exc:
                console.print(f"divide(1, 0) raised [red]{type(exc).__name__}[/red]: {exc}")
            for job in read_dead(demo.app):
                console.print(f"DLQ: {job.task} id={job.id} args={job.args} "
                              f"error={job.errors[-1]['type']}")
            demo.app.close()
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=60)
            console.print(f"[green]✓[/green] worker stopped gracefully (exit code {code})")
