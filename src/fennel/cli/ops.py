"""``fennel health`` (an exec probe) and ``fennel info`` (a snapshot for operators)."""

from __future__ import annotations

import asyncio
import enum
import socket
import time
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.table import Table

from fennel._redis_url import mask_url
from fennel.broker import Broker, QueueStats
from fennel.cli._console import stdout_console
from fennel.cli._loader import AppOption, RedisUrlOption, load_app
from fennel.exceptions import BrokerError


class _Check(str, enum.Enum):
    ready = "ready"
    live = "live"


def health(
    app: AppOption,
    check: Annotated[_Check, typer.Option(
        help="Readiness (Redis and the consumer group) or liveness (also a recent heartbeat "
             "of a worker on this host).")] = _Check.ready,
    port: Annotated[int | None, typer.Option(
        metavar="PORT",
        help="Ask the worker's health server on this port (default: the health_port "
             "setting). Without one, Redis is checked directly.")] = None,
    timeout: Annotated[float, typer.Option(
        metavar="SECONDS", help="Seconds before giving up.")] = 5.0,
    redis_url: RedisUrlOption = None,
) -> None:
    """Exit 0 if the worker on this host is healthy, 1 if not: for Kubernetes exec probes.

    With a health port, the verdict is the worker's own /readyz or /livez. Without, 'ready'
    means Redis answers and the consumer group exists, and 'live' also needs a worker on this
    host whose heartbeat (sent from its event loop) is recent.
    """
    the_app = load_app(app, redis_url)
    port = port if port is not None else the_app.settings.health_port
    if port:
        ok, reason = _ask_worker(port, check.value, timeout)
    else:
        ok, reason = asyncio.run(_ask_redis(the_app, check.value, timeout))
    typer.echo(f"{check.value}: {'ok' if ok else 'FAIL'} ({reason})")
    raise typer.Exit(0 if ok else 1)


def _ask_worker(port: int, check: str, timeout: float) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}/{'readyz' if check == 'ready' else 'livez'}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode().strip() or str(exc)
    except OSError as exc:
        return False, f"no answer from {url}: {exc}"


async def _ask_redis(app: Any, check: str, timeout: float) -> tuple[bool, str]:
    s = app.settings
    broker = Broker(s.redis_url, app.keys, connect_timeout=min(timeout, s.connect_timeout),
                    socket_timeout=timeout)
    try:
        stats = await asyncio.wait_for(broker.queue_stats(), timeout)
    except (BrokerError, asyncio.TimeoutError) as exc:
        return False, str(exc) or "Redis did not answer in time"
    finally:
        await broker.aclose()
    if not stats.group_exists:
        return False, "consumer group missing (no worker has started yet?)"
    if check == "ready":
        return True, "ok"
    host = socket.gethostname()
    fresh = max(15.0, 3 * min(5.0, s.lease_timeout / 3))
    mine = [n for n, w in stats.workers.items() if w.get("host") == host]
    if not mine:
        return False, f"no worker on host {host} has sent a heartbeat"
    if min(stats.workers[n]["seen_ago"] for n in mine) > fresh:
        return False, f"the heartbeat of the worker on {host} is older than {fresh:.0f}s"
    return True, "ok"


def info(app: AppOption, redis_url: RedisUrlOption = None) -> None:
    """Show the app's queue, its workers, and throughput over the last minute."""
    the_app = load_app(app, redis_url)
    s = the_app.settings
    stats = asyncio.run(_stats(the_app))
    console = stdout_console()
    summary = Table(title=f"Fennel app {the_app.name!r} on {mask_url(s.redis_url)}")
    for col in ("ready", "in flight", "scheduled", "dead", "workers", "done / last minute"):
        summary.add_column(col, justify="right")
    summary.add_row(str(stats.queue), str(stats.pending), str(stats.scheduled),
                    str(stats.dead), str(len(stats.workers)),
                    str(sum(int(w.get("last_minute", 0)) for w in stats.workers.values())))
    console.print(summary)
    if not stats.workers:
        console.print("No live workers.")
        return
    workers = Table(title="Workers")
    for col in ("name", "pool", "concurrency", "in flight", "processed", "last minute",
                "up", "last seen"):
        workers.add_column(col)
    for name, w in sorted(stats.workers.items()):
        up = time.time() - float(w.get("started_at", time.time()))
        workers.add_row(name, str(w.get("pool", "?")), str(w.get("concurrency", "?")),
                        str(w.get("in_flight", "?")), str(w.get("processed", "?")),
                        str(w.get("last_minute", "?")), f"{up:.0f}s",
                        f"{w['seen_ago']:.1f}s ago")
    console.print(workers)


async def _stats(app: Any) -> QueueStats:
    s = app.settings
    broker = Broker(s.redis_url, app.keys, connect_timeout=s.connect_timeout,
                    socket_timeout=s.socket_timeout)
    try:
        return await broker.queue_stats()
    finally:
        await broker.aclose()
