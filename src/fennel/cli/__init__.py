"""The ``fennel`` command line (also ``python -m fennel``)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fennel.cli import dlq, ops
from fennel.cli._console import fail
from fennel.cli._loader import AppOption, RedisUrlOption, load_app
from fennel.cli._logging import configure, flush_logs, json_lines
from fennel.exceptions import FennelError

if TYPE_CHECKING:
    from fennel.worker import Worker

__all__ = ["cli", "main"]

cli = typer.Typer(
    name="fennel",
    help="Fennel: run workers, inspect and repair the dead-letter queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: flags shown without a value, and readable when piped.
    rich_markup_mode=None,
)
cli.add_typer(dlq.cli, name="dlq")
cli.command()(ops.health)
cli.command()(ops.info)


def _show_version(value: bool) -> None:
    if value:
        from fennel import __version__

        typer.echo(f"fennel {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_show_version,
        help="Print the version and exit.")] = False,
) -> None:
    """Fennel: run workers, inspect and repair the dead-letter queue."""


# Enums, because typer shows their values as the choices and rejects anything else; the
# settings' Literal types list the same values (checked in the tests).
class _LogFormat(str, enum.Enum):
    console = "console"
    json = "json"


class _LogLevel(str, enum.Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


class _Pool(str, enum.Enum):
    thread = "thread"
    process = "process"


@cli.command()
def worker(
    app: AppOption,
    redis_url: RedisUrlOption = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, metavar="N",
        help="Jobs run at once (default: the setting).")] = None,
    pool: Annotated[_Pool | None, typer.Option(
        "--pool", "-p", help="Where sync tasks run (default: the setting).")] = None,
    grace_period: Annotated[float | None, typer.Option(
        metavar="SECONDS", help="After SIGTERM/SIGINT, how long running jobs may finish before "
        "they are handed back to the queue (default: the setting).")] = None,
    log_format: Annotated[_LogFormat | None, typer.Option(
        case_sensitive=False,
        help="Log lines for people or one JSON object per line (default: the setting).")] = None,
    log_level: Annotated[_LogLevel | None, typer.Option(
        case_sensitive=False,
        help="The least severe level logged (default: the setting).")] = None,
    health_port: Annotated[int | None, typer.Option(
        min=0, max=65535, metavar="PORT",
        help="Serve /livez, /readyz and /metrics on this port.")] = None,
) -> None:
    """Run a worker that executes the app's jobs until SIGTERM/SIGINT."""
    from fennel.worker import Worker

    # JSON asked for on the command line or in the environment: what is logged or warned
    # while the app module is imported comes out as JSON lines too, not as plain text.
    early = (log_format.value if log_format is not None
             else os.environ.get("FENNEL_LOG_FORMAT", "").strip().lower(),
             log_level.value if log_level is not None
             else os.environ.get("FENNEL_LOG_LEVEL", "info").strip().lower())
    configured = early[0] == "json" and early[1] in _LogLevel.__members__
    if configured:
        configure(*early)
    the_app = load_app(app, redis_url, grace_period=grace_period,
                       log_format=log_format and log_format.value,
                       log_level=log_level and log_level.value)
    s = the_app.settings
    if not configured or (s.log_format, s.log_level) != early:
        configure(s.log_format, s.log_level)
    w = Worker(the_app, concurrency=concurrency, pool=pool and pool.value, app_spec=app,
               health_port=health_port)
    code = run_worker(w)
    flush_logs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # started without one (e.g. stdout closed by a supervisor)
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    # Abandoned task threads (time limits, grace period) must not keep the process alive.
    os._exit(code)


@cli.command()
def demo(
    jobs: Annotated[int, typer.Option(
        min=1, metavar="N", help="How many example jobs to enqueue.")] = 20,
    redis_url: Annotated[str | None, typer.Option(
        "--redis-url", metavar="URL",
        help="Use this running Redis instead of starting a private one.")] = None,
) -> None:
    """Start a private Redis and a worker, run example jobs, and show the results."""
    from fennel.cli._demo import run_demo

    run_demo(jobs, redis_url)


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


def run_worker(worker: Worker) -> int:
    """Run a worker on a new event loop (uvloop's when it is installed) until it exits.

    A KeyboardInterrupt or SystemExit raised in a task that a job spawned (``gather``,
    ``create_task``) is re-raised by asyncio out of the event loop itself: the worker would
    stop and hand the job back, to stop the next worker alike. Once the worker runs, its
    signal handlers are installed, so neither came from a signal: the loop is resumed. The
    exception is set on the task that raised it, so the job awaiting that task gets it and
    it is recorded as that job's failure.
    """
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        uvloop = None
    loop: asyncio.AbstractEventLoop = (
        asyncio.new_event_loop() if uvloop is None else uvloop.new_event_loop())
    asyncio.set_event_loop(loop)
    try:
        main = loop.create_task(worker.run())
        while True:
            try:
                return loop.run_until_complete(main)
            except (KeyboardInterrupt, SystemExit):
                if main.done() or worker.state not in ("running", "stopping"):
                    raise
    finally:
        try:
            # Bounded: a task that swallows its cancellation, or a thread of the default
            # executor stuck in a call, must not keep the worker from exiting (the command
            # ends with os._exit).
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=2.0))
            with contextlib.suppress(asyncio.TimeoutError):
                loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), 2.0))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def main() -> None:
    """The ``fennel`` command: every error ends as one ``Error:`` line and a non-zero exit."""
    try:
        code = cli(standalone_mode=False)
    except FennelError as exc:
        if json_lines():
            # The worker's log lines are JSON: its last one is too, for the log shipper.
            logging.getLogger("fennel.cli").error("Error: %s", exc)
            flush_logs()
            raise SystemExit(2) from None
        fail(str(exc), 2)
    except _clickexc.UsageError as exc:
        if isinstance(exc, _NO_ARGS_IS_HELP):
            exc.show()  # the help text, as for --help
            raise SystemExit(exc.exit_code) from None
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        fail(exc.format_message() + hint, exc.exit_code)
    except _clickexc.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except _ABORT:
        fail("Aborted.", 1)
    raise SystemExit(code if isinstance(code, int) else 0)


# Click's exceptions, from the module typer raises them from: click itself, or the copy that
# newer typers ship (whose classes are not click's).
_clickexc: Any = sys.modules[typer.BadParameter.__module__]
_ABORT: Any = (getattr(_clickexc, "Abort", typer.Abort), typer.Abort)
# Raised (click >= 8.2) for a group run without arguments; older click prints help and exits.
_NO_ARGS_IS_HELP: Any = tuple(
    t for t in (getattr(_clickexc, "NoArgsIsHelpError", None),) if t is not None)
