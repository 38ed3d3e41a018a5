"""Loading the user's app from ``module:attribute``."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from fennel.exceptions import AppNotFound, FennelError

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
        _print_user_traceback(exc)
        raise AppNotFound(_import_failed(module_name, spec, exc)) from None
    except FennelError:
        raise  # says what is wrong in one line (e.g. an invalid setting)
    except Exception as exc:
        _print_user_traceback(exc)
        raise AppNotFound(_import_failed(module_name, spec, exc)) from None
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


def _import_failed(module_name: str, spec: str, exc: BaseException) -> str:
    return (f"Importing module {module_name!r} for --app {spec!r} raised "
            f"{type(exc).__name__}: {exc} (its traceback is above). Fix the module, then "
            "start again.")


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback of an exception raised while importing the app's module, from the
    module's own code on: the command line's and importlib's frames above it say nothing."""
    tb = exc.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename == __file__
                              or "importlib" in tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if logging.getLogger().handlers:
        # Log lines are set up already (JSON lines): the traceback is one of them.
        logging.getLogger("fennel.cli").error("The app's module raised at import",
                                              exc_info=(type(exc), exc, tb))
    elif sys.stderr is not None:
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)


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
