"""Runnable examples of Fennel (see each module's docstring)."""
