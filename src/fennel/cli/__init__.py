"""The ``fennel`` command line (also ``python -m fennel``)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated, Any

import typer

from fennel.cli import dlq, ops
from fennel.cli._loader import load_app
from fennel.cli._logging import configure
from fennel.exceptions import FennelError

__all__ = ["cli", "main"]

cli = typer.Typer(
    name="fennel",
    help="Fennel: run workers, inspect and repair the dead-letter queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cli.add_typer(dlq.cli, name="dlq")
cli.command()(ops.health)
cli.command()(ops.info)

AppOption = Annotated[str, typer.Option("--app", "-a", help="The app, as 'module:attribute'.")]


@cli.command()
def worker(
    app: AppOption,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, help="Jobs run at once (default: the setting).")] = None,
    pool: Annotated[str | None, typer.Option(
        "--pool", "-p", help="Where sync tasks run: 'thread' or 'process'.")] = None,
    log_format: Annotated[str | None, typer.Option(help="'console' or 'json'.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
    health_port: Annotated[int | None, typer.Option(
        help="Serve /livez, /readyz and /metrics on this port.")] = None,
) -> None:
    """Run a worker that executes the app's jobs until SIGTERM/SIGINT."""
    from fennel.worker import Worker

    if pool is not None and pool not in ("thread", "process"):
        raise typer.BadParameter("must be 'thread' or 'process'", param_hint="--pool")
    the_app = load_app(app)
    s = the_app.settings
    configure(log_format or s.log_format, log_level or s.log_level)
    w = Worker(the_app, concurrency=concurrency, pool=pool, app_spec=app,
               health_port=health_port)
    code = run_async(w.run())
    sys.stdout.flush()
    sys.stderr.flush()
    # Abandoned task threads (time limits, grace period) must not keep the process alive.
    os._exit(code)


@cli.command()
def demo(
    jobs: Annotated[int, typer.Option(help="How many example jobs to enqueue.")] = 20,
) -> None:
    """Start a private Redis and a worker, run example jobs, and show the results."""
    from fennel.cli._demo import run_demo

    run_demo(jobs)


def run_async(coro: Any) -> Any:
    """``asyncio.run`` with uvloop when it is installed."""
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        uvloop = None
    # Outside the except clause: a loop started inside it would run every task with the
    # ImportError as the exception being handled (sys.exc_info(), chained tracebacks).
    if uvloop is None:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    try:
        cli()
    except FennelError as exc:
        typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
        raise SystemExit(2) from None
