"""Loading the user's app from ``module:attribute``."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from fennel.exceptions import AppNotFound

AppOption = Annotated[str, typer.Option(
    "--app", "-a", metavar="MODULE:ATTR", help="The app, as 'module:attribute'.")]
RedisUrlOption = Annotated[str | None, typer.Option(
    "--redis-url", metavar="URL",
    help="The Redis to use, e.g. redis://host:6379/0; wins over the app's redis_url setting "
         "and FENNEL_REDIS_URL.")]


def load_app(spec: str, redis_url: str | None = None, **overrides: Any) -> Any:
    """Import ``module:attribute`` (``attribute`` defaults to ``app``) and return the App.

    The current directory is put on ``sys.path`` first, as users expect from
    ``fennel worker --app mymodule:app`` run next to ``mymodule.py``. ``redis_url`` and the
    other ``overrides`` that are not None replace the app's settings (the command line wins).
    """
    from fennel.app import App

    if redis_url is not None:
        # Also for what the module builds at import and for process-pool children, which
        # load the app again: an app without its own redis_url reads this variable.
        os.environ["FENNEL_REDIS_URL"] = redis_url

    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise AppNotFound(f"--app {spec!r} names no module. Use 'module:attribute', "
                          "e.g. 'myproject.tasks:app'.")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        with _import_watchdog(module_name, spec):
            module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppNotFound(
                f"Cannot import module {module_name!r} for --app {spec!r} ({exc}). Run from "
                "the directory that contains it, or make it importable (pip install -e .)."
            ) from exc
        raise
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise AppNotFound(
            f"Module {module_name!r} has no attribute {attr!r} (--app {spec!r})."
        ) from None
    if not isinstance(app, App):
        raise AppNotFound(f"{spec!r} is a {type(app).__name__}, not a fennel.App.")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if redis_url is not None:
        changes["redis_url"] = redis_url
    if changes:
        app.update_settings(**changes)
    return app


#: Seconds an app module may take to import before the CLI warns that it may be blocked.
IMPORT_WARNING_AFTER = 5.0


@contextlib.contextmanager
def _import_watchdog(module_name: str, spec: str) -> Iterator[None]:
    """Warn on stderr when importing the app's module takes long: a module that waits at
    import (most often for a job result) would otherwise hang the command without a word."""
    importer = threading.get_ident()
    done = threading.Event()

    def watch() -> None:
        if done.wait(IMPORT_WARNING_AFTER):
            return
        where = _user_line(importer, module_name.partition(".")[0])
        text = (
            f"importing {module_name!r} for --app {spec!r} has taken more than "
            f"{IMPORT_WARNING_AFTER:.0f}s{f' and is still at {where}' if where else ''}. A "
            "module that blocks at import hangs here: most often it enqueues a job and waits "
            "for its result (.get(), gather, wait) at module level, and the job can only run "
            "once this worker has started. Move such code into a function or under "
            "'if __name__ == \"__main__\":'.")
        if logging.getLogger().handlers:
            # Log lines are set up already (JSON lines): the warning is one of them.
            logging.getLogger("fennel.cli").warning("Warning: %s", text)
            return
        sys.stderr.write(f"Warning: {text}\n")
        sys.stderr.flush()

    threading.Thread(target=watch, name="fennel-import-watchdog", daemon=True).start()
    try:
        yield
    finally:
        done.set()


def _user_line(thread_id: int, package: str) -> str | None:
    """``file:line`` of the innermost frame of ``package``'s code in that thread, if any."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if isinstance(name, str) and (name == package or name.startswith(package + ".")):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return None
