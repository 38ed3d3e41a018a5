"""Loading the user's app from ``module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import typer

from fennel.exceptions import AppNotFound

AppOption = Annotated[str, typer.Option("--app", "-a", help="The app, as 'module:attribute'.")]
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
