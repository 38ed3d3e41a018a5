"""``fennel dlq read|replay|purge``: the dead-letter queue from the shell."""

from __future__ import annotations

import contextlib
import datetime
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fennel.cli._console import fail, stdout_console
from fennel.cli._loader import AppOption, RedisUrlOption, load_app
from fennel.job import Job

cli = typer.Typer(help="Read, replay or purge the dead-letter queue.", no_args_is_help=True,
                  rich_markup_mode=None)

TaskOption = Annotated[str | None, typer.Option(
    "--task", "-t", metavar="NAME", help="Only dead jobs of this task name.")]
IdOption = Annotated[list[str] | None, typer.Option(
    "--id", metavar="ID", help="Only the dead job with this id (repeatable).")]
DryRunOption = Annotated[bool, typer.Option(
    "--dry-run", help="Only list the dead jobs that would be affected; change nothing.")]


def _filter(task: str | None, ids: list[str] | None) -> Any:
    if task is None and not ids:
        return None
    wanted = set(ids or ())
    return lambda job: (task is None or job.task == task) and (not wanted or job.id in wanted)


@cli.command()
def read(app: AppOption, task: TaskOption = None, id: IdOption = None,
         json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
         redis_url: RedisUrlOption = None) -> None:
    """Print every dead job: task, id, arguments and the error of each attempt."""
    from fennel.client import read_dead

    the_app = load_app(app, redis_url)
    keep = _filter(task, id)
    dead = read_dead(the_app)
    jobs = [j for j in dead if keep is None or keep(j)]
    if json:
        for j in jobs:
            typer.echo(orjson.dumps(j.to_dict()).decode())
        return
    console = stdout_console()
    if not dead:
        console.print(f"The dead-letter queue of app {the_app.name!r} is empty.")
        return
    if not jobs:
        console.print(f"No dead job of app {the_app.name!r} matches (of {len(dead)} in the "
                      "dead-letter queue).")
        return
    for j in jobs:
        console.print(_describe(j))
    console.print(f"{len(jobs)} dead job(s).")


def _describe(job: Job) -> str:
    try:
        at = datetime.datetime.fromtimestamp(job.enqueued_at, datetime.timezone.utc)
        when = f"{at:%Y-%m-%d %H:%M:%S}Z"
    except (OverflowError, ValueError, OSError):  # a record written around Fennel
        when = repr(job.enqueued_at)
    lines = [
        f"[bold]{escape(job.task)}[/bold]  id={escape(job.id)}  enqueued={escape(when)}",
        escape(f"  args={orjson.dumps(job.args).decode()} "
               f"kwargs={orjson.dumps(job.kwargs).decode()}"),
    ]
    if job.attempts_failed > len(job.errors):
        lines.append(f"  {job.attempts_failed} failed attempts; the last {len(job.errors)}:")
    for err in job.errors:
        raw_args = err.get("args", [])
        args = ", ".join(repr(a) for a in (raw_args if isinstance(raw_args, list) else [raw_args]))
        lines.append(escape(f"  attempt {err.get('attempt', '?')}: {err.get('type')}({args})"))
    return "\n".join(lines)


@cli.command()
def replay(app: AppOption, task: TaskOption = None, id: IdOption = None,
           dry_run: DryRunOption = False, redis_url: RedisUrlOption = None) -> None:
    """Put dead jobs back on the queue with a fresh retry budget."""
    from fennel.client import replay_dead

    the_app = load_app(app, redis_url)
    if dry_run:
        _report(_matching(the_app, task, id), "would be replayed", "would replay")
        return
    with _bar("Replaying") as progress:
        jobs = replay_dead(the_app, filter=_filter(task, id), progress=progress)
    _report(jobs, "replayed")


@cli.command()
def purge(app: AppOption, task: TaskOption = None, id: IdOption = None,
          dry_run: DryRunOption = False,
          yes: Annotated[bool, typer.Option(
              "--yes", "-y", help="Do not ask for confirmation (for scripts).")] = False,
          redis_url: RedisUrlOption = None) -> None:
    """Delete dead jobs for good, after showing how many and asking (or with --yes)."""
    from fennel.client import purge_dead

    the_app = load_app(app, redis_url)
    keep = _filter(task, id)
    if dry_run or not yes:
        jobs = _matching(the_app, task, id)
        if dry_run:
            _report(jobs, "would be purged", "would purge")
            return
        if not jobs:
            typer.echo("No dead job matches: nothing to purge.")
            return
        what = f"{len(jobs)} dead job(s) of app {the_app.name!r}"
        if not sys.stdin.isatty():
            fail(f"Refusing to purge {what} without confirmation: there is no terminal to "
                 "ask on. Pass --yes to purge them, or --dry-run to list them.")
        if not typer.confirm(f"Purge {what} for good?"):
            typer.echo("Nothing purged.")
            raise typer.Exit(1)
        # Exactly the jobs counted: one that died since the question is not purged unseen.
        wanted = {j.id for j in jobs}
        keep = lambda job: job.id in wanted  # noqa: E731
    with _bar("Purging") as progress:
        purged = purge_dead(the_app, filter=keep, progress=progress)
    _report(purged, "purged")


def _matching(app: Any, task: str | None, ids: list[str] | None) -> list[Job]:
    from fennel.client import read_dead

    keep = _filter(task, ids)
    return [j for j in read_dead(app) if keep is None or keep(j)]


def _report(jobs: list[Job], verb: str, line_verb: str | None = None) -> None:
    for j in jobs:
        typer.echo(f"{line_verb or verb} {j.task} {j.id}")
    typer.echo(f"{len(jobs)} job(s) {verb}.")


@contextlib.contextmanager
def _bar(what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (shown only on a terminal), fed by ``progress(done, total)``."""
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task_id = bar.add_task(what, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=total)

        yield advance
