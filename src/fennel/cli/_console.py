"""Where the CLI's tables and listings go: a terminal, or a pipe or file."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

#: Wide enough that no table cell or line is ever wrapped or cut outside a terminal.
_UNLIMITED = 100_000


def stdout_console() -> Console:
    """A console for command output on stdout.

    In a terminal, output fits its width. In a pipe or a file there is no width to fit, and
    a script reading the output needs every field whole on its line: nothing is wrapped,
    folded or cut, and no color codes are written.
    """
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, width=_UNLIMITED, soft_wrap=True, no_color=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one ``Error: ...`` line on stderr and a non-zero exit code."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    raise SystemExit(code or 1)
