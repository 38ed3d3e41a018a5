"""Loading the user's app from ``module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from fennel.exceptions import AppNotFound


def load_app(spec: str) -> Any:
    """Import ``module:attribute`` (``attribute`` defaults to ``app``) and return the App.

    The current directory is put on ``sys.path`` first, as users expect from
    ``fennel worker --app mymodule:app`` run next to ``mymodule.py``.
    """
    from fennel.app import App

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
    return app
